//! Where the control plane is: the first endpoint of the static cluster `ads_config` (or an SDS
//! `api_config_source`) names, spoken to in HTTP/2, plaintext (h2c) or over TLS when the cluster has an
//! `UpstreamTlsContext`, with the cluster's HTTP/2 `connection_keepalive`; connected anew on every attempt.

mod connector;

use super::CONNECT_TIMEOUT;
pub use connector::TlsConnect;
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::core::Host;
use outrigger_config::model::http::Keepalive;
pub use rustls::ClientConfig;
pub use rustls::pki_types::ServerName;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};

/// How to reach the control plane, connected anew on every attempt.
#[derive(Clone)]
pub struct Server {
    /// The static cluster it came from, for messages.
    pub cluster: String,
    /// `http://host:port`, or `https://host:port` over TLS.
    pub uri: String,
    /// `host:port` as the endpoint gives it (a DNS name is resolved on each attempt).
    authority: String,
    tls: Option<Arc<dyn TlsConnect>>,
    keepalive: Option<Keepalive>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("cluster", &self.cluster)
            .field("uri", &self.uri)
            .field("tls", &self.tls.is_some())
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

impl Server {
    /// The first endpoint of the static cluster that `ads_config` names (an IP address or a DNS name, resolved
    /// on each connection attempt). A cluster with an `UpstreamTlsContext` needs `tls`: what builds the rustls
    /// configuration for each attempt (the proxy's own, for that cluster).
    pub fn from_cluster(
        cluster: &Cluster,
        tls: Option<Arc<dyn TlsConnect>>,
    ) -> Result<Server, String> {
        let name = &cluster.name;
        if cluster
            .transport_socket_matches
            .iter()
            .any(|m| m.tls.is_some())
        {
            return Err(format!(
                "cluster {name:?} reaches the control plane with transport_socket_matches, which Outrigger \
                 does not apply to the control plane's connection; give the cluster one transport_socket"
            ));
        }
        let tls = match (&cluster.tls, tls) {
            (None, _) => None,
            (Some(_), Some(tls)) => Some(tls),
            (Some(_), None) => {
                return Err(format!(
                    "cluster {name:?} reaches the control plane over TLS, but no TLS connector was given \
                     (an Outrigger bug: please report it)"
                ));
            }
        };
        if matches!(
            cluster.discovery,
            Discovery::Eds { .. } | Discovery::OriginalDst
        ) {
            return Err(format!(
                "cluster {name:?} reaches the control plane but has no static endpoints; use a STATIC, \
                 STRICT_DNS or LOGICAL_DNS cluster with a load_assignment"
            ));
        }
        let endpoint = cluster.endpoints().next().ok_or_else(|| {
            format!("cluster {name:?} reaches the control plane but has no endpoint")
        })?;
        let host = match &endpoint.host {
            Host::Ip(ip) if ip.is_ipv6() => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        let authority = format!("{host}:{}", endpoint.port);
        Ok(Server {
            cluster: name.clone(),
            uri: format!(
                "{}://{authority}",
                if tls.is_some() { "https" } else { "http" }
            ),
            authority,
            tls,
            keepalive: cluster.http2.keepalive,
        })
    }

    /// A plaintext (h2c) server at `authority` (`host:port`), with no keepalive: for tests and tools.
    pub fn plaintext(cluster: impl Into<String>, authority: impl Into<String>) -> Server {
        let authority = authority.into();
        Server {
            cluster: cluster.into(),
            uri: format!("http://{authority}"),
            authority,
            tls: None,
            keepalive: None,
        }
    }

    /// With `connection_keepalive` (a PING every `interval`, answered within `timeout`).
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Server {
        self.keepalive = keepalive;
        self
    }

    /// An HTTP/2 channel to the control plane (after the TLS handshake, when over TLS).
    pub(super) async fn channel(&self) -> Result<Channel, String> {
        // The connector dials this address itself; tonic's own TLS is not used, so the scheme stays `http`
        // here and `origin` puts `https` in the requests.
        let mut endpoint = Endpoint::from_shared(format!("http://{}", self.authority))
            .map_err(|e| format!("{} is not a valid address: {e}", self.uri))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        // Envoy's `connection_keepalive`: a PING every `interval`, the connection closed when one is not
        // answered within `timeout` (whether streams are open or not).
        if let Some(Keepalive {
            interval: Some(interval),
            timeout,
        }) = self.keepalive
        {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        let connected = match &self.tls {
            None => endpoint.connect().await,
            Some(tls) => {
                let origin = self
                    .uri
                    .parse()
                    .map_err(|e| format!("{} is not a valid address: {e}", self.uri))?;
                endpoint
                    .origin(origin)
                    .connect_with_connector(connector::Connector::new(tls.clone()))
                    .await
            }
        };
        connected.map_err(|e| format!("cannot connect to {}: {}", self.uri, source_chain(&e)))
    }
}

/// Envoy's gRPC client accepts responses this large (tonic's default is 4 MiB, too small for a mesh's
/// listeners).
pub(super) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An error with its causes (`tonic::transport::Error` hides the useful part in its source).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
