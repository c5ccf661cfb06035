//! The demo services of the local mesh: `demo-web` (HTTP/1.1 on 8080) and `demo-greeter` (gRPC on 50051). Each
//! calls the other by its compose (or Kubernetes Service) name in plaintext, unaware of the sidecars that carry
//! the call over mutual TLS, and shows what its sidecar told it about the caller: the
//! `x-forwarded-client-cert` header, which holds the caller's SPIFFE ID.
//!
//! The gRPC service `demo.Greeter` is written by hand (prost messages, tonic's generic client and server), so the
//! crate needs no `protoc` and no build script.

#![forbid(unsafe_code)]

pub mod greeter;
pub mod http_client;

/// The header a sidecar sets on inbound mesh requests (Envoy's `forward_client_cert_details`).
pub const XFCC: &str = "x-forwarded-client-cert";
/// The header in which a sidecar explains a local reply (`UF`: the upstream connection failed).
pub const RESPONSE_FLAGS: &str = "x-outrigger-response-flags";

/// An environment variable, or its default.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Resolves on SIGTERM or SIGINT. As PID 1 of a container a process gets no default action for SIGTERM, so
/// without this `docker stop` would wait its full grace period.
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
