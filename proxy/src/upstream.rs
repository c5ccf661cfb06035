//! Clusters at run time: their current endpoints (resolved by DNS for DNS clusters), load balancing, and the
//! pooled HTTP clients that reach them.

mod balancer;
mod client;
mod tls_handle;

pub use balancer::Balancer;
pub use client::{BoxError, SendError, UpstreamBody, UpstreamClient};
pub use tls_handle::UpstreamTls;

use crate::{metrics, tls};
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::{Discovery, Endpoint};
use outrigger_config::model::core::Host;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// One endpoint traffic can go to, with its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub address: SocketAddr,
    pub weight: u32,
    /// The DNS name it was resolved from (DNS clusters), for `auto_host_rewrite`.
    pub hostname: Option<String>,
    /// Which of the cluster's transports reaches it (see `ClusterState::transport`).
    pub transport: usize,
}

/// Where the next request or connection goes, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picked {
    pub address: SocketAddr,
    /// Index into the cluster's transports: 0 is its `transport_socket`, then its `transport_socket_matches`.
    pub transport: usize,
}

/// A cluster's live state.
pub struct ClusterState {
    pub config: Cluster,
    targets: RwLock<Arc<Vec<Target>>>,
    balancer: Balancer,
    pub http: UpstreamClient,
    /// `None` is plaintext. Index 0: the cluster's `transport_socket`; then one per `transport_socket_matches`.
    transports: Vec<Option<UpstreamTls>>,
}

/// Why no endpoint could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickError {
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    #[error("the original destination is unknown")]
    NoOriginalDestination,
    #[error(
        "the original destination {0} is this proxy's own listener; refusing to connect to myself"
    )]
    Loop(SocketAddr),
}

impl ClusterState {
    pub fn new(
        config: Cluster,
        tls: &tls::Contexts,
        counters: &metrics::UpstreamCounters,
    ) -> Arc<Self> {
        let labels = metrics::cluster(&config.name);
        let handle = |context: Option<&outrigger_config::model::tls::UpstreamTls>| {
            context
                .and_then(|c| tls.client(c))
                .map(|context| UpstreamTls {
                    context,
                    counters: counters.clone(),
                    labels: labels.clone(),
                    cluster: config.name.clone(),
                })
        };
        let transports: Vec<Option<UpstreamTls>> = std::iter::once(handle(config.tls.as_ref()))
            .chain(
                config
                    .transport_socket_matches
                    .iter()
                    .map(|m| handle(m.tls.as_ref())),
            )
            .collect();
        let targets = static_targets(&config);
        let connections = counters.connections.get_or_create(&labels).clone();
        let http = UpstreamClient::new(&config, &transports, connections);
        let balancer = Balancer::new(config.lb_policy);
        Arc::new(Self {
            config,
            targets: RwLock::new(Arc::new(targets)),
            balancer,
            http,
            transports,
        })
    }

    /// The TLS a transport uses; `None` is plaintext.
    pub fn transport(&self, index: usize) -> Option<&UpstreamTls> {
        self.transports.get(index).and_then(Option::as_ref)
    }

    pub fn targets(&self) -> Arc<Vec<Target>> {
        match self.targets.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_targets(&self, targets: Vec<Target>) {
        match self.targets.write() {
            Ok(mut t) => *t = Arc::new(targets),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(targets),
        }
    }

    /// The endpoint for the next request or connection. `original_destination` serves ORIGINAL_DST clusters;
    /// `own_listeners` are refused as destinations, so a connection cannot loop back into the proxy.
    pub fn pick(
        &self,
        original_destination: Option<SocketAddr>,
        own_listeners: &[SocketAddr],
    ) -> Result<Picked, PickError> {
        if self.config.discovery == Discovery::OriginalDst {
            let destination = original_destination.ok_or(PickError::NoOriginalDestination)?;
            if own_listeners
                .iter()
                .any(|own| is_same_socket(*own, destination))
            {
                return Err(PickError::Loop(destination));
            }
            // No endpoint metadata to match: the cluster's own transport socket.
            return Ok(Picked {
                address: destination,
                transport: 0,
            });
        }
        let targets = self.targets();
        let address = self
            .balancer
            .pick(&targets)
            .ok_or(PickError::NoHealthyUpstream)?;
        let transport = if self.transports.len() > 1 {
            targets
                .iter()
                .find(|t| t.address == address)
                .map(|t| t.transport)
                .unwrap_or(0)
        } else {
            0
        };
        Ok(Picked { address, transport })
    }

    /// The DNS name behind a resolved endpoint, if it came from one.
    pub fn hostname_of(&self, address: SocketAddr) -> Option<String> {
        self.targets()
            .iter()
            .find(|t| t.address == address)
            .and_then(|t| t.hostname.clone())
    }

    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }
}

/// `own` is a listener address (maybe the wildcard 0.0.0.0:15001) or the local address a connection arrived
/// on; a destination matching it is the proxy itself.
fn is_same_socket(own: SocketAddr, destination: SocketAddr) -> bool {
    own.port() == destination.port()
        && (own.ip() == destination.ip()
            || (own.ip().is_unspecified() && destination.ip().is_loopback()))
}

fn static_targets(config: &Cluster) -> Vec<Target> {
    config
        .endpoints()
        .filter(|e| e.health_status.receives_traffic())
        .filter_map(|e| match e.host {
            Host::Ip(ip) => Some(Target {
                hostname: None,
                address: SocketAddr::new(ip, e.port),
                weight: e.weight.max(1),
                transport: transport_index(config, e),
            }),
            Host::Name(_) => None,
        })
        .collect()
}

/// Envoy's rule: the first `transport_socket_matches` entry whose `match` is contained in the endpoint's
/// `envoy.transport_socket_match` metadata wins (an empty `match` takes every endpoint); else the cluster's
/// `transport_socket`.
fn transport_index(config: &Cluster, endpoint: &Endpoint) -> usize {
    let metadata = endpoint
        .metadata
        .get("envoy.transport_socket_match")
        .and_then(|m| m.as_object());
    config
        .transport_socket_matches
        .iter()
        .position(|m| {
            m.criteria
                .iter()
                .all(|(key, value)| metadata.and_then(|md| md.get(key)) == Some(value))
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// Every cluster by name.
#[derive(Clone, Default)]
pub struct Clusters {
    by_name: Arc<HashMap<String, Arc<ClusterState>>>,
}

impl Clusters {
    pub fn new(
        clusters: &[Cluster],
        tls: &tls::Contexts,
        counters: &metrics::UpstreamCounters,
    ) -> Self {
        let by_name = clusters
            .iter()
            .map(|c| (c.name.clone(), ClusterState::new(c.clone(), tls, counters)))
            .collect();
        Self {
            by_name: Arc::new(by_name),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ClusterState>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ClusterState>> {
        self.by_name.values()
    }

    /// Resolves DNS clusters now, then keeps re-resolving them at their refresh rate (until the runtime ends).
    pub async fn start_dns(&self) {
        for cluster in self.by_name.values() {
            if !matches!(
                cluster.config.discovery,
                Discovery::StrictDns | Discovery::LogicalDns
            ) {
                continue;
            }
            resolve(cluster).await;
            let cluster = cluster.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(cluster.config.dns.refresh_rate).await;
                    resolve(&cluster).await;
                }
            });
        }
    }
}

/// STRICT_DNS: every address of every name is an endpoint. LOGICAL_DNS: the first address of its one name.
async fn resolve(cluster: &ClusterState) {
    let logical = cluster.config.discovery == Discovery::LogicalDns;
    let mut targets = Vec::new();
    for endpoint in cluster
        .config
        .endpoints()
        .filter(|e| e.health_status.receives_traffic())
    {
        let addresses = lookup(endpoint).await;
        let take = if logical { 1 } else { addresses.len() };
        let hostname = match &endpoint.host {
            Host::Name(name) => Some(name.clone()),
            Host::Ip(_) => None,
        };
        let transport = transport_index(&cluster.config, endpoint);
        targets.extend(addresses.into_iter().take(take).map(|address| Target {
            hostname: hostname.clone(),
            address,
            weight: endpoint.weight.max(1),
            transport,
        }));
    }
    if targets.is_empty() {
        tracing::warn!(cluster = %cluster.config.name, "DNS resolution found no addresses; keeping the previous ones");
        if !cluster.targets().is_empty() {
            return;
        }
    }
    cluster.set_targets(targets);
}

async fn lookup(endpoint: &Endpoint) -> Vec<SocketAddr> {
    match &endpoint.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, endpoint.port)],
        Host::Name(name) => match tokio::net::lookup_host((name.as_str(), endpoint.port)).await {
            Ok(addresses) => addresses.collect(),
            Err(e) => {
                tracing::warn!(host = %name, error = %e, "DNS lookup failed");
                Vec::new()
            }
        },
    }
}
