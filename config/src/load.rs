//! The one path by which configuration enters the proxy.

use crate::convert;
use crate::diagnostic::{Diagnostics, Path};
use crate::model::Snapshot;
use crate::source::{self, Format};
use crate::walk;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// A configuration that loaded, with the warnings about what it contains that Outrigger ignores.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub warnings: Diagnostics,
}

/// YAML or JSON to the typed bootstrap, with Envoy's field rules checked on the way.
fn reflect(bytes: &[u8], format: Format) -> Result<(Bootstrap, Diagnostics), Diagnostics> {
    let message = source::parse_dynamic(bytes, format, BOOTSTRAP)?;
    let mut diagnostics = Diagnostics::default();
    walk::check(&message, &Path::root(), &mut diagnostics);
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    let bootstrap: Bootstrap = source::to_struct(&message).map_err(|e| {
        let mut d = diagnostics.clone();
        d.error(&Path::root(), e);
        d
    })?;
    Ok((bootstrap, diagnostics))
}

/// Loads a bootstrap file; the format follows the extension (`.json`, else YAML), as in Envoy.
pub fn load_file(path: &std::path::Path) -> Result<Loaded, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        let mut d = Diagnostics::default();
        d.error(&Path::root(), format!("cannot read the file: {e}"));
        d
    })?;
    load_bytes(&bytes, Format::from_file_name(&path.to_string_lossy()))
}

/// Loads a bootstrap from bytes. On error, every problem found is returned, warnings included.
pub fn load_bytes(bytes: &[u8], format: Format) -> Result<Loaded, Diagnostics> {
    // Reflection (the Envoy descriptors, several MB decoded even when only their core is, and the dynamic
    // message) runs on a thread of its own: its allocations stay in that thread's malloc arena and are given
    // back together once freed, instead of fragmenting the heap the proxy then serves from. Only the typed
    // bootstrap crosses over.
    // That thread's arena is grown first in a few large steps (`arena.rs`): about 2 ms less than growing it
    // page by page during the load.
    let reflected = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                crate::arena::grow_for_load();
                reflect(bytes, format)
            })
            .join()
    });
    let (bootstrap, mut diagnostics) = reflected.unwrap_or_else(|_| {
        let mut d = Diagnostics::default();
        d.error(
            &Path::root(),
            "reading the configuration failed unexpectedly (a bug: please report it)",
        );
        Err(d)
    })?;
    let snapshot = convert::bootstrap::snapshot(&bootstrap, &mut diagnostics);
    // A resource that failed to convert is missing from the snapshot; checking references then would only
    // repeat that failure as "unknown cluster".
    if !diagnostics.has_errors() {
        convert::references::check(&snapshot, &mut diagnostics);
    }
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    Ok(Loaded {
        snapshot,
        warnings: diagnostics,
    })
}
