//! Where the control plane is: the first endpoint of the static cluster `ads_config` names, spoken to in
//! plaintext HTTP/2 (h2c), connected anew on every attempt.

use super::CONNECT_TIMEOUT;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::core::Host;
use tonic::transport::{Channel, Endpoint};

/// How to reach the control plane: a plaintext HTTP/2 (h2c) address, connected anew on every attempt.
#[derive(Clone, Debug)]
pub struct Server {
    /// The static cluster it came from, for messages.
    pub cluster: String,
    /// `http://host:port`.
    pub uri: String,
}

impl Server {
    /// The first endpoint of the static cluster that `ads_config` names (an IP address or a DNS name, resolved
    /// on each connection attempt).
    pub fn from_cluster(cluster: &Cluster) -> Result<Server, String> {
        let name = &cluster.name;
        if cluster.tls.is_some()
            || cluster
                .transport_socket_matches
                .iter()
                .any(|m| m.tls.is_some())
        {
            return Err(format!(
                "cluster {name:?} reaches the control plane over TLS; mTLS to the control plane is not \
                 supported yet: use a plaintext (h2c) cluster, for example to a local xDS proxy"
            ));
        }
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
        Ok(Server {
            cluster: name.clone(),
            uri: format!("http://{host}:{}", endpoint.port),
        })
    }

    pub(super) async fn connect(
        &self,
    ) -> Result<AggregatedDiscoveryServiceClient<Channel>, String> {
        let endpoint = Endpoint::from_shared(self.uri.clone())
            .map_err(|e| format!("{} is not a valid address: {e}", self.uri))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", self.uri, source_chain(&e)))?;
        Ok(AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Envoy's gRPC client accepts responses this large (tonic's default is 4 MiB, too small for a mesh's
/// listeners).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An error with its causes (`tonic::transport::Error` hides the useful part in its source).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
