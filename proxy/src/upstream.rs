//! Clusters at run time: their current endpoints (resolved by DNS for DNS clusters), load balancing, and the
//! pooled HTTP clients that reach them.

mod balancer;
mod client;

pub use balancer::Balancer;
pub use client::{BoxError, SendError, UpstreamBody, UpstreamClient};

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
}

/// A cluster's live state.
pub struct ClusterState {
    pub config: Cluster,
    targets: RwLock<Arc<Vec<Target>>>,
    balancer: Balancer,
    pub http: UpstreamClient,
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
    pub fn new(config: Cluster) -> Arc<Self> {
        let targets = static_targets(&config);
        let http = UpstreamClient::new(&config);
        let balancer = Balancer::new(config.lb_policy);
        Arc::new(Self {
            config,
            targets: RwLock::new(Arc::new(targets)),
            balancer,
            http,
        })
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
    ) -> Result<SocketAddr, PickError> {
        if self.config.discovery == Discovery::OriginalDst {
            let destination = original_destination.ok_or(PickError::NoOriginalDestination)?;
            if own_listeners
                .iter()
                .any(|own| is_same_socket(*own, destination))
            {
                return Err(PickError::Loop(destination));
            }
            return Ok(destination);
        }
        let targets = self.targets();
        self.balancer
            .pick(&targets)
            .ok_or(PickError::NoHealthyUpstream)
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
            }),
            Host::Name(_) => None,
        })
        .collect()
}

/// Every cluster by name.
#[derive(Clone, Default)]
pub struct Clusters {
    by_name: Arc<HashMap<String, Arc<ClusterState>>>,
}

impl Clusters {
    pub fn new(clusters: &[Cluster]) -> Self {
        let by_name = clusters
            .iter()
            .map(|c| (c.name.clone(), ClusterState::new(c.clone())))
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
        targets.extend(addresses.into_iter().take(take).map(|address| Target {
            hostname: hostname.clone(),
            address,
            weight: endpoint.weight.max(1),
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
