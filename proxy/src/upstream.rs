//! Clusters at run time: their current endpoints (resolved by DNS for DNS clusters), load balancing, and the
//! pooled HTTP clients that reach them.

mod balancer;
pub mod breaker;
mod client;
mod destinations;
mod ejections;
mod h2_idle;
mod hash_balancer;
mod health_check;
mod locality;
mod outlier;
#[cfg(test)]
mod pool_tests;
mod priority;
mod tls_handle;

use crate::metrics::managers::Changes;
pub use balancer::Balancer;
pub use client::{BoxError, SendError, UpstreamBody, UpstreamClient};
pub use outlier::Outcome;
pub use tls_handle::{UpstreamConnection, UpstreamTls};

use crate::metrics::{self, ClusterStats, Metrics};
use crate::tls;
use breaker::Breaker;
use ejections::Ejections;
use health_check::HealthChecker;
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::{Discovery, Endpoint, EndpointHealthCheck, Locality};
use outrigger_config::model::core::Host;
use prometheus_client::metrics::counter::Counter;
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
    /// Envoy's default: 0, the highest.
    pub priority: u32,
    /// False when its `health_status` says it gets no traffic (UNHEALTHY, DRAINING, TIMEOUT). It still counts
    /// in its priority's health, and panic mode may use it.
    pub healthy: bool,
    /// `health_check_config`: where active health checks reach it, when not its own address.
    pub health_check: Option<Arc<EndpointHealthCheck>>,
    /// Which `LocalityLbEndpoints` entry it came from (its index in the cluster's list).
    pub locality: u32,
    /// That entry's `load_balancing_weight` (0 when unset), read under `locality_weighted_lb_config`.
    pub locality_weight: u32,
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
    /// As first configured: an update that changes only the endpoints keeps the state and replaces `targets`,
    /// so read the endpoints from `targets()`, not from here.
    pub config: Cluster,
    targets: RwLock<Arc<Vec<Target>>>,
    balancer: Balancer,
    pub http: UpstreamClient,
    /// `None` is plaintext. Index 0: the cluster's `transport_socket`; then one per `transport_socket_matches`.
    transports: Vec<Option<UpstreamTls>>,
    pub breaker: Arc<Breaker>,
    /// Outlier detection, when configured.
    ejections: Option<Arc<Ejections>>,
    /// Active health checking, when configured (its tasks stop when the cluster goes).
    health: Option<HealthChecker>,
    /// Shared with the breaker and outlier detection.
    pub stats: Arc<ClusterStats>,
    pub counters: ClusterCounters,
    /// ORIGINAL_DST: the destinations it has connections to (its hosts, on `/clusters`).
    destinations: Option<Arc<destinations::Destinations>>,
    /// Per-host counts for load reports, from when a load reporting service first asks for the cluster.
    pub load: std::sync::OnceLock<Arc<crate::load_report::Loads>>,
    /// The localities of the current endpoints, by `Target::locality` (for load reports).
    localities: RwLock<Arc<Vec<Option<Locality>>>>,
}

/// The cluster's request counters, resolved once.
pub struct ClusterCounters {
    pub rq_total: Counter,
    pub rq_timeout: Counter,
    pub cx_connect_fail: Counter,
    /// `upstream_rq_xx` by class, 1xx to 5xx.
    rq_class: [Counter; 5],
}

impl ClusterCounters {
    fn new(metrics: &Metrics, name: &str) -> Self {
        let labels = metrics::cluster(name);
        let class = |c: u16| {
            metrics
                .cluster_rq_xx
                .get_or_create(&metrics::with_class(labels.clone(), c * 100))
                .clone()
        };
        Self {
            rq_total: metrics.cluster_rq.get_or_create(&labels).clone(),
            rq_timeout: metrics.cluster_rq_timeout.get_or_create(&labels).clone(),
            cx_connect_fail: metrics
                .cluster_cx_connect_fail
                .get_or_create(&labels)
                .clone(),
            rq_class: [class(1), class(2), class(3), class(4), class(5)],
        }
    }

    /// Counts a response in its class (`upstream_rq_2xx`, ...).
    pub fn count_class(&self, status: u16) {
        if let Some(counter) = usize::from(status / 100)
            .checked_sub(1)
            .and_then(|i| self.rq_class.get(i))
        {
            counter.inc();
        }
    }
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
    pub fn new(config: Cluster, tls: &tls::Contexts, metrics: &Metrics) -> Arc<Self> {
        let counters = &metrics.upstream_counters();
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
        let balancer = Balancer::new(config.lb_policy);
        let stats = Arc::new(metrics.resilience.cluster(
            &config.name,
            config.circuit_breakers.default.track_remaining,
        ));
        let breaker = Breaker::new(config.circuit_breakers.default.clone(), stats.clone());
        let active = counters.active.get_or_create(&labels).clone();
        let destinations = (config.discovery == Discovery::OriginalDst)
            .then(|| Arc::new(destinations::Destinations::default()));
        let http = UpstreamClient::new(
            &config,
            &transports,
            connections.clone(),
            active,
            destinations.clone(),
            breaker.clone(),
        );
        let ejections = config
            .outlier_detection
            .as_ref()
            .map(|o| Ejections::new(o, stats.clone()));
        if let Some(ejections) = &ejections {
            let hosts: Vec<SocketAddr> = targets.iter().map(|t| t.address).collect();
            ejections.set_hosts(&hosts);
        }
        stats.set_members(targets.len(), targets.iter().filter(|t| t.healthy).count());
        let health = config.health_check.clone().map(|check| {
            let checker = HealthChecker::new(
                check,
                &config.name,
                metrics.resilience.health_check(
                    &config.name,
                    config.circuit_breakers.default.track_remaining,
                ),
                connections.clone(),
                transports.clone(),
                ejections.clone().filter(|_| config.health_check_unejects),
            );
            checker.set_hosts(&targets);
            checker
        });
        let cluster = Arc::new(Self {
            counters: ClusterCounters::new(metrics, &config.name),
            config,
            targets: RwLock::new(Arc::new(targets)),
            balancer,
            http,
            transports,
            breaker,
            ejections,
            health,
            stats,
            destinations,
            load: std::sync::OnceLock::new(),
            localities: RwLock::new(Arc::new(Vec::new())),
        });
        cluster.set_localities(&cluster.config);
        if let Some(ejections) = &cluster.ejections {
            let weak = Arc::downgrade(&cluster);
            ejections.start(move || {
                weak.upgrade()
                    .map(|c| c.targets().iter().map(|t| t.address).collect())
                    .unwrap_or_default()
            });
        }
        if cluster.config.discovery == Discovery::OriginalDst {
            forget_idle_destinations(&cluster);
        }
        cluster
    }

    /// An ORIGINAL_DST cluster's current hosts: the destinations it is connected to, or was within its
    /// `cleanup_interval`. Empty for other clusters.
    pub fn original_destinations(&self) -> Vec<SocketAddr> {
        self.destinations
            .as_ref()
            .map(|d| d.addresses())
            .unwrap_or_default()
    }

    /// The host's load-report counts, when a load reporting service asked for this cluster.
    pub fn load_of(&self, host: SocketAddr) -> Option<Arc<crate::load_report::HostLoad>> {
        self.load.get().map(|loads| loads.host(host))
    }

    /// The locality of endpoints whose `Target::locality` is `index`.
    pub fn locality(&self, index: u32) -> Option<Locality> {
        let localities = match self.localities.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        localities
            .get(usize::try_from(index).ok()?)
            .cloned()
            .flatten()
    }

    fn set_localities(&self, config: &Cluster) {
        let localities = Arc::new(
            config
                .localities
                .iter()
                .map(|l| l.locality.clone())
                .collect(),
        );
        match self.localities.write() {
            Ok(mut l) => *l = localities,
            Err(poisoned) => *poisoned.into_inner() = localities,
        }
    }

    /// Tells outlier detection how a request or connection to `host` went.
    pub fn report(&self, host: SocketAddr, outcome: Outcome) {
        if let Some(ejections) = &self.ejections {
            ejections.report(host, outcome);
        }
    }

    /// Whether outlier detection has ejected `host` (`failed_outlier_check` on `/clusters`).
    pub fn is_ejected(&self, host: SocketAddr) -> bool {
        self.ejections.as_ref().is_some_and(|e| e.is_ejected(host))
    }

    /// Envoy's `health_flags` on `/clusters`: `healthy`, or the reasons the host takes no traffic, each after a `/`.
    pub fn health_flags(&self, host: SocketAddr) -> String {
        let health = self.health.as_ref().and_then(|h| h.host(host));
        let mut flags = String::new();
        if health.as_ref().is_some_and(|h| h.failed()) {
            flags.push_str("/failed_active_hc");
        }
        if self.is_ejected(host) {
            flags.push_str("/failed_outlier_check");
        }
        if health.as_ref().is_some_and(|h| h.degraded()) {
            flags.push_str("/degraded_active_hc");
        }
        if health.as_ref().is_some_and(|h| h.timed_out()) {
            flags.push_str("/active_hc_timeout");
        }
        if flags.is_empty() {
            flags.push_str("healthy");
        }
        flags
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
        self.stats
            .set_members(targets.len(), targets.iter().filter(|t| t.healthy).count());
        if let Some(ejections) = &self.ejections {
            let hosts: Vec<SocketAddr> = targets.iter().map(|t| t.address).collect();
            ejections.set_hosts(&hosts);
        }
        // Pooled connections to endpoints that left go with them.
        let keep: std::collections::HashSet<SocketAddr> =
            targets.iter().map(|t| t.address).collect();
        self.http.retain_endpoints(&keep);
        if let Some(health) = &self.health {
            health.set_hosts(&targets);
        }
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
        self.pick_avoiding(original_destination, own_listeners, None, None)
    }

    /// Like `pick`, redrawing (up to `avoid.max_redraws` times) a host that an earlier attempt of the same
    /// request already tried; after that, the last draw is kept (Envoy's `host_selection_retry_max_attempts`).
    /// `hash` is the request's (`hash_policy`), for the consistent-hash balancers.
    pub fn pick_avoiding(
        &self,
        original_destination: Option<SocketAddr>,
        own_listeners: &[SocketAddr],
        avoid: Option<&crate::http::PreviousHosts>,
        hash: Option<u64>,
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
        let all = self.targets();
        let targets = self.hosts_for_pick(&all, hash);
        let mut address = self
            .balancer
            .pick_hashed(&targets, hash)
            .ok_or(PickError::NoHealthyUpstream)?;
        if let Some(avoid) = avoid.filter(|a| !a.hosts.is_empty()) {
            for _ in 0..avoid.max_redraws {
                if !avoid.hosts.contains(&address) {
                    break;
                }
                address = self
                    .balancer
                    .pick_hashed(&targets, hash)
                    .ok_or(PickError::NoHealthyUpstream)?;
            }
        }
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

    /// The endpoints this pick balances over: Envoy's priority levels, less the hosts that are unhealthy (by
    /// their EDS status or active health checks) or ejected by outlier detection, unless panic mode says to use
    /// them all. A consistent-hash pick chooses the priority by its hash, as Envoy does.
    fn hosts_for_pick<'a>(
        &self,
        targets: &'a [Target],
        hash: Option<u64>,
    ) -> std::borrow::Cow<'a, [Target]> {
        let ejections = self.ejections.as_ref().filter(|e| e.ejected_count() > 0);
        let health = self
            .health
            .as_ref()
            .filter(|h| h.any_unhealthy())
            .map(HealthChecker::snapshot);
        let failed = |t: &Target| {
            health
                .as_ref()
                .and_then(|h| h.get(&t.address))
                .is_some_and(|h| h.failed())
        };
        let hashed = hash.filter(|_| self.config.lb_policy.hashes());
        let choice = priority::choose(
            targets,
            |t| t.healthy && !failed(t) && !ejections.is_some_and(|e| e.is_ejected(t.address)),
            self.config.healthy_panic_threshold,
            self.overprovisioning(),
            |n| match hashed {
                Some(h) => u32::try_from(h % u64::from(n.max(1))).unwrap_or(0),
                None => fastrand::u32(..n),
            },
        );
        if choice.panic {
            // Envoy's panic mode uses all hosts of the priority, whatever their locality.
            self.stats.healthy_panic.inc();
            return choice.hosts;
        }
        let hosts = match &health {
            Some(health) => degraded_split(targets, choice.hosts, health, self.overprovisioning()),
            None => choice.hosts,
        };
        if self.config.locality_weighted {
            return locality::choose(targets, hosts, self.overprovisioning(), |total| {
                fastrand::f64() * total
            });
        }
        hosts
    }

    /// The endpoints' `policy.overprovisioning_factor` as a factor (Envoy's default 140: 1.4).
    fn overprovisioning(&self) -> f64 {
        f64::from(self.config.overprovisioning_factor) / 100.0
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

/// Envoy sends a priority's load to its degraded hosts (`x-envoy-degraded` on their health checks) only as far
/// as its healthy ones cannot take it: the healthy share is `1.4 * healthy / hosts` (at most all), the degraded
/// share what is left, up to `1.4 * degraded / hosts` (1.4: the overprovisioning factor).
fn degraded_split<'a>(
    all: &[Target],
    hosts: std::borrow::Cow<'a, [Target]>,
    health: &HashMap<SocketAddr, Arc<health_check::HostHealth>>,
    overprovisioning: f64,
) -> std::borrow::Cow<'a, [Target]> {
    let is_degraded = |t: &Target| health.get(&t.address).is_some_and(|h| h.degraded());
    let Some(first) = hosts.iter().find(|t| is_degraded(t)) else {
        return hosts;
    };
    let in_priority = all
        .iter()
        .filter(|t| t.priority == first.priority)
        .count()
        .max(1) as f64;
    let (degraded, healthy): (Vec<Target>, Vec<Target>) =
        hosts.iter().cloned().partition(|t| is_degraded(t));
    let healthy_share = (overprovisioning * 100.0 * healthy.len() as f64 / in_priority).min(100.0);
    let degraded_share =
        (overprovisioning * 100.0 * degraded.len() as f64 / in_priority).min(100.0 - healthy_share);
    if healthy.is_empty() || fastrand::f64() * (healthy_share + degraded_share) >= healthy_share {
        std::borrow::Cow::Owned(degraded)
    } else {
        std::borrow::Cow::Owned(healthy)
    }
}

/// ORIGINAL_DST (Envoy's `cleanup_interval`): every interval, destinations without a connection since the
/// previous sweep are forgotten, so a sidecar calling many destinations does not grow for ever. Runs while the
/// cluster exists.
fn forget_idle_destinations(cluster: &Arc<ClusterState>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(cluster);
    let interval = cluster.config.cleanup_interval;
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            if let Some(destinations) = &cluster.destinations {
                destinations.sweep();
            }
        }
    });
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
        .localities
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.endpoints.iter().map(move |e| (l, i, e)))
        .filter_map(|(l, i, e)| match e.host {
            Host::Ip(ip) => Some(Target {
                priority: l.priority,
                locality: u32::try_from(i).unwrap_or(u32::MAX),
                locality_weight: l.load_balancing_weight.unwrap_or(0),
                hostname: None,
                address: SocketAddr::new(ip, e.port),
                weight: e.weight.max(1),
                transport: transport_index(config, e),
                healthy: e.health_status.receives_traffic(),
                health_check: e.health_check.clone().map(Arc::new),
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

/// Every cluster by name. A configuration update replaces the map at once; requests in flight keep the
/// cluster they picked.
#[derive(Clone, Default)]
pub struct Clusters {
    by_name: Arc<arc_swap::ArcSwap<HashMap<String, Arc<ClusterState>>>>,
    /// Set when load reports are configured: every cluster, also one added later, counts its hosts' requests.
    count_load: Arc<std::sync::atomic::AtomicBool>,
}

impl Clusters {
    /// Takes the configurations: the clusters keep them (the running snapshot does not hold a second copy).
    pub fn new(clusters: Vec<Cluster>, tls: &tls::Contexts, metrics: &Metrics) -> Self {
        let by_name: HashMap<String, Arc<ClusterState>> = clusters
            .into_iter()
            .map(|c| (c.name.clone(), ClusterState::new(c, tls, metrics)))
            .collect();
        metrics.managers.clusters(&Changes {
            added: by_name.len() as u64,
            active: by_name.len(),
            ..Changes::default()
        });
        Self {
            by_name: Arc::new(arc_swap::ArcSwap::from_pointee(by_name)),
            count_load: Arc::default(),
        }
    }

    /// Load reports are configured: from now on every cluster counts its hosts' requests (as Envoy's host
    /// statistics always do), so a cluster a service asks for later has its requests in progress counted.
    pub fn count_load(&self) {
        self.count_load
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for cluster in self.all() {
            cluster.load.get_or_init(Arc::default);
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<ClusterState>> {
        self.by_name.load().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ClusterState>> {
        self.by_name.load().values().cloned().collect()
    }

    /// Installs `clusters` as Envoy applies a CDS/EDS update: a cluster whose configuration is unchanged keeps its
    /// state (pools, balancer, breaker counters, outlier detection); when only its endpoints changed it keeps that
    /// state too and takes the new endpoints (pooled connections to the endpoints it still has stay). A new or
    /// changed cluster starts fresh; a removed one goes once its requests in flight are done. DNS clusters added
    /// here start resolving.
    pub async fn update(&self, clusters: Vec<Cluster>, tls: &tls::Contexts, metrics: &Metrics) {
        let previous = self.by_name.load_full();
        let mut by_name = HashMap::with_capacity(clusters.len());
        let mut added = Vec::new();
        let mut changes = Changes::default();
        for config in clusters {
            match previous.get(&config.name) {
                None => changes.added += 1,
                Some(old) if !same_apart_from_endpoints(&old.config, &config) => {
                    changes.modified += 1;
                }
                Some(_) => {}
            }
            let kept = previous
                .get(&config.name)
                .filter(|old| same_apart_from_endpoints(&old.config, &config));
            let state = match kept {
                Some(old) => {
                    // DNS clusters resolve their own names; `config` (kept from the first version) still names them.
                    let resolves = matches!(
                        config.discovery,
                        Discovery::StrictDns | Discovery::LogicalDns
                    );
                    let targets = static_targets(&config);
                    if !resolves && *old.targets() != targets {
                        old.set_targets(targets);
                    }
                    if !resolves {
                        old.set_localities(&config);
                    }
                    old.clone()
                }
                None => {
                    let state = ClusterState::new(config, tls, metrics);
                    if self.count_load.load(std::sync::atomic::Ordering::Relaxed) {
                        state.load.get_or_init(Arc::default);
                    }
                    added.push(state.clone());
                    state
                }
            };
            by_name.insert(state.config.name.clone(), state);
        }
        for cluster in &added {
            start_dns(cluster).await;
        }
        changes.removed = previous
            .keys()
            .filter(|n| !by_name.contains_key(*n))
            .count() as u64;
        changes.active = by_name.len();
        metrics.managers.clusters(&changes);
        self.by_name.store(Arc::new(by_name));
    }

    /// Resolves DNS clusters now, then keeps re-resolving them at their refresh rate (while the cluster exists).
    pub async fn start_dns(&self) {
        for cluster in self.all() {
            start_dns(&cluster).await;
        }
    }
}

/// Whether two configurations of a cluster differ at most in their endpoints.
fn same_apart_from_endpoints(old: &Cluster, new: &Cluster) -> bool {
    let without_endpoints = |c: &Cluster| {
        let mut c = c.clone();
        c.localities.clear();
        serde_json::to_string(&c).ok()
    };
    // Inline TLS bytes are not serialized: compare the TLS settings themselves too.
    without_endpoints(old) == without_endpoints(new)
        && old.tls == new.tls
        && old
            .transport_socket_matches
            .iter()
            .map(|m| &m.tls)
            .eq(new.transport_socket_matches.iter().map(|m| &m.tls))
}

/// A DNS cluster resolves now, then at its refresh rate for as long as a configuration holds it.
async fn start_dns(cluster: &Arc<ClusterState>) {
    if !matches!(
        cluster.config.discovery,
        Discovery::StrictDns | Discovery::LogicalDns
    ) {
        return;
    }
    resolve(cluster).await;
    let weak = Arc::downgrade(cluster);
    let refresh = cluster.config.dns.refresh_rate;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(refresh).await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            resolve(&cluster).await;
        }
    });
}

/// STRICT_DNS: every address of every name is an endpoint. LOGICAL_DNS: the first address of its one name.
async fn resolve(cluster: &ClusterState) {
    let logical = cluster.config.discovery == Discovery::LogicalDns;
    let mut targets = Vec::new();
    let mut endpoints = Vec::new();
    for (i, locality) in cluster.config.localities.iter().enumerate() {
        endpoints.extend(locality.endpoints.iter().map(|e| (locality, i, e)));
    }
    let previous = cluster.targets();
    for (locality, index, endpoint) in endpoints {
        let priority = locality.priority;
        cluster.stats.update_attempt.inc();
        let addresses = match lookup(endpoint).await {
            Lookup::Found(addresses) => addresses,
            // Envoy 1.40: a name the DNS says does not exist (NXDOMAIN) is a successful, empty resolution for
            // STRICT_DNS, so its hosts go; LOGICAL_DNS counts it as a failure and keeps its host.
            Lookup::NoSuchName if !logical => {
                cluster.stats.update_success.inc();
                continue;
            }
            Lookup::NoSuchName | Lookup::Failed => Vec::new(),
        };
        if addresses.is_empty() {
            cluster.stats.update_failure.inc();
            // As Envoy: a name that fails to resolve keeps the hosts it had.
            if let Host::Name(name) = &endpoint.host {
                targets.extend(
                    previous
                        .iter()
                        .filter(|t| {
                            t.hostname.as_deref() == Some(name.as_str())
                                && t.address.port() == endpoint.port
                        })
                        .cloned(),
                );
            }
            continue;
        }
        cluster.stats.update_success.inc();
        let take = if logical { 1 } else { addresses.len() };
        let hostname = match &endpoint.host {
            Host::Name(name) => Some(name.clone()),
            Host::Ip(_) => None,
        };
        let transport = transport_index(&cluster.config, endpoint);
        let health_check = endpoint.health_check.clone().map(Arc::new);
        targets.extend(addresses.into_iter().take(take).map(|address| Target {
            hostname: hostname.clone(),
            address,
            weight: endpoint.weight.max(1),
            transport,
            priority,
            healthy: endpoint.health_status.receives_traffic(),
            health_check: health_check.clone(),
            locality: u32::try_from(index).unwrap_or(u32::MAX),
            locality_weight: locality.load_balancing_weight.unwrap_or(0),
        }));
    }
    if targets.is_empty() {
        tracing::warn!(cluster = %cluster.config.name, "DNS resolution found no addresses");
    }
    cluster.set_targets(targets);
}

/// What a DNS lookup of an endpoint gave.
enum Lookup {
    Found(Vec<SocketAddr>),
    /// The name does not exist (or has no address): the DNS answered.
    NoSuchName,
    /// No answer: the resolver timed out, failed or could not be reached.
    Failed,
}

/// The endpoint's addresses, through the system resolver (getaddrinfo).
async fn lookup(endpoint: &Endpoint) -> Lookup {
    match &endpoint.host {
        Host::Ip(ip) => Lookup::Found(vec![SocketAddr::new(*ip, endpoint.port)]),
        Host::Name(name) => match tokio::net::lookup_host((name.as_str(), endpoint.port)).await {
            Ok(addresses) => Lookup::Found(addresses.collect()),
            Err(e) => {
                tracing::warn!(host = %name, error = %e, "DNS lookup failed");
                // The standard library reports getaddrinfo's errors only as text (gai_strerror, in the C
                // locale the proxy never changes): EAI_NONAME and EAI_NODATA are the DNS's answer that the
                // name has no address; anything else (EAI_AGAIN: a timeout or SERVFAIL) is a failure.
                let text = e.to_string();
                if text.contains("Name or service not known")
                    || text.contains("No address associated with hostname")
                {
                    Lookup::NoSuchName
                } else {
                    Lookup::Failed
                }
            }
        },
    }
}
