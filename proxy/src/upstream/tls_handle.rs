//! Starting TLS to one cluster's endpoints, counting and logging every handshake.

use crate::metrics::{Labels, SecurityPolicy, UpstreamCounters};
use crate::tls::{self, Alpn, ClientTls};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A cluster's TLS context, with what its handshakes are counted under.
#[derive(Clone)]
pub struct UpstreamTls {
    pub context: Arc<ClientTls>,
    pub counters: UpstreamCounters,
    pub labels: Labels,
    pub cluster: String,
}

/// A handshake that failed, with its metric label.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with {address} failed ({reason}): {error}")]
pub struct HandshakeError {
    pub address: SocketAddr,
    pub reason: &'static str,
    /// The source, so a handshake cut by the connect timeout reads as a timeout (`TimedOut`).
    #[source]
    pub error: std::io::Error,
}

/// What an upstream connection showed: its local address and, over TLS, the identities of both sides. Every
/// response that came over it carries it (for `%UPSTREAM_LOCAL_ADDRESS%` and Istio's principals).
#[derive(Clone, Debug, Default)]
pub struct UpstreamConnection(pub Arc<ConnectionInfo>);

#[derive(Debug, Default)]
pub struct ConnectionInfo {
    pub local: Option<SocketAddr>,
    pub peer: crate::metrics::istio::UpstreamPeer,
}

impl UpstreamConnection {
    /// A plaintext connection's.
    pub fn plain(stream: &TcpStream) -> Self {
        UpstreamConnection(Arc::new(ConnectionInfo {
            local: stream.local_addr().ok(),
            peer: Default::default(),
        }))
    }

    /// A TLS connection's, with the SPIFFE IDs of both certificates.
    pub fn tls(stream: &tokio_rustls::client::TlsStream<TcpStream>, context: &ClientTls) -> Self {
        let (tcp, session) = stream.get_ref();
        let peer_uri = session
            .peer_certificates()
            .and_then(tls::Identity::from_chain)
            .and_then(|i| i.uris.into_iter().next())
            .map(Arc::from);
        UpstreamConnection(Arc::new(ConnectionInfo {
            local: tcp.local_addr().ok(),
            peer: crate::metrics::istio::UpstreamPeer {
                local_uri: context.local_uri(),
                peer_uri,
            },
        }))
    }
}

impl UpstreamTls {
    pub async fn connect(
        &self,
        stream: TcpStream,
        alpn: Alpn,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HandshakeError> {
        let address = stream
            .peer_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        match tls::connect(&self.context, alpn, stream, timeout).await {
            Ok(stream) => {
                self.counters.handshakes.get_or_create(&self.labels).inc();
                Ok(stream)
            }
            Err(error) => {
                let reason = tls::verify::failure_reason(&error);
                let policy = if !self.context.config.common.has_certificate() {
                    SecurityPolicy::Tls
                } else {
                    SecurityPolicy::MutualTls
                };
                self.counters.failure(&self.labels, reason, policy);
                tracing::warn!(
                    cluster = %self.cluster, upstream = %address, reason, error = %error,
                    hint = tls::verify::hint(reason),
                    "upstream TLS handshake failed"
                );
                Err(HandshakeError {
                    address,
                    reason,
                    error,
                })
            }
        }
    }
}
