//! TLS to a control plane (the ADS cluster, an SDS gRPC source): the rustls configuration the proxy builds for
//! that cluster's `UpstreamTlsContext` (SNI, ALPN h2, trust bundle, SAN matchers, client certificate), built
//! anew for each connection attempt so that rotated files are used at the next reconnect.

use outrigger_config::Snapshot;
use outrigger_config::model::tls::UpstreamTls;
use outrigger_control_api::ads_client::{ClientConfig, ServerName, TlsConnect};
use outrigger_proxy::tls::{Alpn, ClientTls, Secrets};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct ClusterTls {
    cluster: String,
    context: UpstreamTls,
    /// The bootstrap's static secrets (the only ones a control plane's cluster may name).
    secrets: Secrets,
}

impl ClusterTls {
    /// For the static cluster `name`, when it has an `UpstreamTlsContext`.
    pub fn of(bootstrap: &Snapshot, name: &str) -> Option<Arc<dyn TlsConnect>> {
        let cluster = bootstrap.cluster(name)?;
        let context = cluster.tls.clone()?;
        Some(Arc::new(ClusterTls {
            cluster: name.to_string(),
            context,
            secrets: Secrets::new(bootstrap, Default::default()),
        }))
    }
}

impl TlsConnect for ClusterTls {
    fn client_config(
        &self,
        peer: SocketAddr,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
        let context = ClientTls::new(&self.context, &self.secrets)
            .map_err(|e| format!("cluster {:?}, transport_socket: {e}", self.cluster))?;
        let config = context.current(Alpn::Http2).ok_or_else(|| {
            format!(
                "cluster {:?}: its TLS context names a secret that has not arrived",
                self.cluster
            )
        })?;
        Ok((config, context.server_name(peer)))
    }
}
