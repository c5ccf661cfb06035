//! What hostile or broken clients leave in the statistics, named as Envoy 1.40 names them (checked by running it):
//! `http.<prefix>.downstream_cx_protocol_error` (every HTTP/1 codec refusal, every h2 connection error the codec
//! detects), the global `http2.header_overflow` (a header block over the limits: CONTINUATION floods), the global
//! `http2.outbound_control_flood` (SETTINGS and PING floods whose acknowledgements are not read) and
//! `listener.<scope>.ssl.connection_error` (a TLS protocol error, in the handshake or after it; not a client
//! closing mid-handshake, not a certificate verification failure, as Envoy counts).

use super::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Default)]
pub struct Families {
    pub cx_protocol_error: Family<Labels, Counter>,
    pub http2_header_overflow: Counter,
    pub http2_outbound_control_flood: Counter,
    pub ssl_connection_error: Family<Labels, Counter>,
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Families::default();
        registry.register(
            "envoy_http_downstream_cx_protocol_error",
            "Connections ended by a protocol error of the client (malformed HTTP/1, h2 connection errors)",
            f.cx_protocol_error.clone(),
        );
        registry.register(
            "envoy_http2_header_overflow",
            "h2 connections ended because a header block went over the limits (CONTINUATION floods)",
            f.http2_header_overflow.clone(),
        );
        registry.register(
            "envoy_http2_outbound_control_flood",
            "h2 connections closed because too many acknowledgements (SETTINGS, PING) waited for a client not reading",
            f.http2_outbound_control_flood.clone(),
        );
        registry.register(
            "envoy_listener_ssl_connection_error",
            "Inbound TLS connections ended by a TLS protocol error (in the handshake or after it)",
            f.ssl_connection_error.clone(),
        );
        f
    }
}
