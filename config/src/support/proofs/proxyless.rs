//! Listeners served to proxyless gRPC clients (`support/proxyless.rs`): real grpcio and grpc-js clients resolve
//! them through `outrigger control-plane`, and the control plane's checks refuse what they cannot run.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.listener.v3.Listener.api_listener",
        Tests(&[PROXYLESS_GRPCIO, PROXYLESS_GRPC_JS, PROXYLESS_CHECKS]),
    ),
    (
        "envoy.config.listener.v3.ApiListener.api_listener",
        Tests(&[PROXYLESS_GRPCIO, PROXYLESS_GRPC_JS, PROXYLESS_CHECKS]),
    ),
];
