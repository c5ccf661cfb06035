//! TLS errors of inbound connections, counted in `listener.<scope>.ssl.connection_error` as Envoy 1.40 counts
//! them (checked by running it): a protocol error in the handshake (a ClientHello followed by garbage, an alert
//! from the client) or after it (garbage or a corrupt record). A client that closes mid-handshake, a handshake
//! that times out and a certificate that fails verification are not connection errors (Envoy counts those
//! elsewhere; we in `outrigger_tls_handshake_failure` by reason). One log line per cause per second at most.

use crate::log_limit;
use prometheus_client::metrics::counter::Counter;

/// Whether a failed handshake (its `verify::failure_reason`) is a connection error for Envoy.
pub fn in_handshake(reason: &str) -> bool {
    matches!(reason, "protocol" | "peer_alert")
}

/// Watches an accepted TLS connection after its handshake: the first read the TLS layer refuses is counted and
/// (at most once a second) logged.
pub struct AfterHandshake {
    pub counter: Counter,
    pub listener: String,
}

impl AfterHandshake {
    pub fn record(self, error: &std::io::Error) {
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let Some(tls) = tls else {
            return;
        };
        self.counter.inc();
        static AFTER: log_limit::Once = log_limit::Once::per_second();
        if AFTER.allow() {
            tracing::warn!(
                listener = %self.listener, error = %tls,
                "TLS error after the handshake (garbage or a corrupt record from the client); connection closed \
                 (at most one such line a second)"
            );
        }
    }
}
