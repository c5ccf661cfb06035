//! The support table's proxyless section: a listener the control plane serves to proxyless gRPC clients
//! (`xds:///target` resolves the Listener named `target`), which holds an HttpConnectionManager in
//! `api_listener.api_listener` and no address.
//!
//! These entries count only where such listeners are read (`Reader::ProxylessClient`: the control plane's
//! resource documents); there they replace the main table's entry for the same message. The proxy itself never
//! serves an `api_listener`: for it the field stays refused, with [`FOR_PROXY`] as the reason.

use super::{MessageSupport, msg};

pub(super) const MESSAGES: &[MessageSupport] = &[
    msg("envoy.config.listener.v3.Listener", "name api_listener"),
    msg("envoy.config.listener.v3.ApiListener", "api_listener"),
];

/// Why a proxy refuses `api_listener` (Envoy 1.40 refuses it too: "missing the API listener extension", which
/// only Envoy Mobile builds carry).
pub(super) const FOR_PROXY: &str = "`api_listener` is read only by in-process clients (Envoy builds it only in \
     Envoy Mobile, and refuses it otherwise: \"missing the API listener extension\"); a proxy serves no traffic \
     on it. Serve this listener to proxyless gRPC clients from `outrigger control-plane`, or give it an `address` \
     and `filter_chains` for the proxy";

/// Why a listener served to proxyless gRPC clients refuses its other fields.
pub(super) const FOR_CLIENTS: &str = "a listener with `api_listener` is for proxyless gRPC clients, which read \
     only its `name` and `api_listener`; remove this field (a listener the proxy serves has an `address` and \
     `filter_chains`, and no `api_listener`)";
