//! Outrigger's benchmarks: a load generator, a fixed backend and the runner that measures Outrigger next to
//! Envoy, haproxy and nginx (see `benches/README.md`), plus the generated configurations the criterion
//! micro-benchmarks load.

#![forbid(unsafe_code)]

pub mod backend;
pub mod generate;
pub mod grpc;
pub mod load;
pub mod run;

/// The body every plain HTTP response of the backend carries: 1 KiB.
pub const RESPONSE_BYTES: usize = 1024;
/// The path of the backend's gRPC unary echo method.
pub const GRPC_PATH: &str = "/bench.Echo/Unary";
