//! Outrigger's configuration: Envoy v3 bootstrap files (YAML or JSON) and xDS resources, turned into one
//! validated, immutable [`Snapshot`].
//!
//! ```text
//! YAML/JSON --(proto3 JSON mapping, by reflection)--> DynamicMessage --(field rules, support table)--\
//!                                                                                                   +--> protos --> Snapshot
//! xDS Any -----------------------------------------> DynamicMessage --(field rules, support table)--/
//! ```
//! Every problem is reported with the path of the field that caused it, all at once.

#![forbid(unsafe_code)]

mod arena;
/// For the micro-benchmarks in `benches/` only.
#[doc(hidden)]
pub mod benchmarks;
mod convert;
mod descriptors;
mod diagnostic;
/// For the fuzz targets in `tests/fuzz/` only.
#[doc(hidden)]
pub mod fuzzing;
mod lenient;
mod load;
pub mod model;
mod pgv;
pub mod resource;
mod source;
mod support;
mod walk;

pub use diagnostic::{Diagnostic, Diagnostics, Path, Severity};
pub use load::{Loaded, load_bytes, load_file};
pub use model::Snapshot;
pub use source::{Format, MAX_INPUT_BYTES};

/// The embedded default: a transparent sidecar (outbound capture on 15001, inbound on 15006, admin on
/// 127.0.0.1:15000, Prometheus on 15090, readiness on 15021), written as an Envoy v3 bootstrap.
pub const DEFAULT_CONFIG: &str = include_str!("../default.yaml");

/// Loads [`DEFAULT_CONFIG`].
pub fn load_default() -> Result<Loaded, Diagnostics> {
    load_bytes(DEFAULT_CONFIG.as_bytes(), Format::Yaml)
}
