//! Envoy's warming of dynamic resources: which version of each listener and cluster an update carries.
//!
//! A cluster added or changed by CDS warms until the endpoints of its EDS service arrive; a listener added or
//! changed by LDS until the route configurations (RDS) and secrets (SDS) it names arrive. Each dependency has
//! its config source's `initial_fetch_timeout` (Envoy's default 15 s, `0s` waits for ever): once every missing
//! one has run out, the resource goes into force without it (a cluster with no endpoints answers 503 UH, a
//! listener whose routes never came 404 NR, one whose secret never came fails its handshakes).
//!
//! While a resource warms, the version in force before it keeps serving; a new one is not in force at all (a
//! route to a new cluster answers 503 NC, a new listener is not bound). Static listeners that take routes or
//! secrets over ADS warm the same way, from the start.
//!
//! All of it is a pure function of the client's accepted state, what was in force and the time, so the sink
//! can run it again when a deadline passes.

use outrigger_config::Snapshot;
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::core::ConfigSource;
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::tls::{CommonTls, SecretSource};
use outrigger_config::model::{Cluster, Listener};
use outrigger_control_api::ads_client::{Kind, Resources, Versioned};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One resource a listener or cluster waits for, with its config source's `initial_fetch_timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub kind: Kind,
    pub name: String,
    /// `None`: wait for ever (`0s`).
    pub timeout: Option<Duration>,
}

/// What a cluster waits for: the endpoints of its EDS service and the secrets its TLS contexts take from SDS
/// (Envoy 1.40 counts such a cluster in `warming_clusters` until its secret arrives or times out).
pub fn cluster_dependencies(cluster: &Cluster) -> Vec<Dependency> {
    let endpoints = match &cluster.discovery {
        Discovery::Eds {
            service_name,
            config_source,
        } => Some(Dependency {
            kind: Kind::Endpoints,
            name: if service_name.is_empty() {
                cluster.name.clone()
            } else {
                service_name.clone()
            },
            timeout: timeout_of(config_source),
        }),
        _ => None,
    };
    let contexts = cluster.tls.iter().chain(
        cluster
            .transport_socket_matches
            .iter()
            .filter_map(|m| m.tls.as_ref()),
    );
    let mut all: Vec<Dependency> = endpoints
        .into_iter()
        .chain(contexts.flat_map(|tls| secrets(&tls.common)))
        .collect();
    all.dedup();
    all
}

/// The secrets a TLS context takes from SDS.
fn secrets(common: &CommonTls) -> impl Iterator<Item = Dependency> + '_ {
    common.secrets().filter_map(|secret| match &secret.source {
        SecretSource::Ads {
            initial_fetch_timeout,
        }
        | SecretSource::Grpc {
            initial_fetch_timeout,
            ..
        } => Some(Dependency {
            kind: Kind::Secret,
            name: secret.name.clone(),
            timeout: *initial_fetch_timeout,
        }),
        SecretSource::Static => None,
    })
}

/// What a listener waits for: the route configurations its connection managers take from RDS and the
/// secrets its TLS contexts take from SDS.
pub fn listener_dependencies(listener: &Listener) -> Vec<Dependency> {
    let chains = || {
        listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.iter())
    };
    let routes = chains()
        .flat_map(|c| c.filters.iter())
        .filter_map(|filter| match filter {
            NetworkFilter::HttpConnectionManager(hcm) => match &hcm.routes {
                RouteSource::Rds {
                    route_config_name,
                    config_source,
                } => Some(Dependency {
                    kind: Kind::Route,
                    name: route_config_name.clone(),
                    timeout: timeout_of(config_source),
                }),
                RouteSource::Static(_) => None,
            },
            _ => None,
        });
    let secrets = chains()
        .filter_map(|c| c.tls.as_ref())
        .flat_map(|tls| secrets(&tls.common));
    let mut all: Vec<Dependency> = routes.chain(secrets).collect();
    all.dedup();
    all
}

fn timeout_of(source: &ConfigSource) -> Option<Duration> {
    match source {
        ConfigSource::Ads {
            initial_fetch_timeout,
        } => *initial_fetch_timeout,
    }
}

fn held(resources: &Resources, dependency: &Dependency) -> bool {
    let name = &dependency.name;
    match dependency.kind {
        Kind::Endpoints => resources.endpoints.contains_key(name),
        Kind::Route => resources.routes.contains_key(name),
        Kind::Secret => resources.secrets.contains_key(name),
        Kind::Listener => resources.listeners.contains_key(name),
        Kind::Cluster => resources.clusters.contains_key(name),
    }
}

/// Whether a resource warming since `since` may go into force at `now`.
enum Warm {
    Yes {
        /// It goes without these: their initial_fetch_timeout ran out.
        timed_out: Vec<Dependency>,
    },
    /// Not yet (the round's deadline says when it goes anyway, if it does).
    Waiting,
}

/// When each route configuration and secret began to be waited for. Envoy has one subscription per route
/// configuration and per secret, shared by whoever names it, whose timeout runs from when it started: a
/// resource naming one that already timed out does not wait again. An EDS subscription is its cluster's own.
type Shared = BTreeMap<(Kind, String), Instant>;

/// One selection: what is held, the time, the shared subscriptions, the earliest deadline found.
struct Round<'a> {
    held: &'a Resources,
    now: Instant,
    shared: &'a mut Shared,
    deadline: Option<Instant>,
}

impl Round<'_> {
    /// Whether a resource warming since `since` with these dependencies goes into force now.
    fn warm(&mut self, dependencies: Vec<Dependency>, since: Instant) -> Warm {
        let missing: Vec<Dependency> = dependencies
            .into_iter()
            .filter(|d| !held(self.held, d))
            .collect();
        // In force once the last missing one has run out (each its own subscription, with its own timeout).
        let mut at = Some(since);
        for dependency in &missing {
            let started = match dependency.kind {
                Kind::Route | Kind::Secret => *self
                    .shared
                    .entry((dependency.kind, dependency.name.clone()))
                    .or_insert(since),
                _ => since,
            };
            at = match (at, dependency.timeout) {
                (Some(at), Some(timeout)) => Some(at.max(started + timeout)),
                _ => None,
            };
        }
        match at {
            Some(at) if at <= self.now => Warm::Yes { timed_out: missing },
            at => {
                earliest(&mut self.deadline, at);
                Warm::Waiting
            }
        }
    }
}

/// A resource's warming: the version that waits, and since when.
struct Waiting<T> {
    version: Versioned<T>,
    since: Instant,
}

impl<T> Clone for Waiting<T> {
    fn clone(&self) -> Self {
        Self {
            version: self.version.clone(),
            since: self.since,
        }
    }
}

/// What is in force and what warms, kept between updates.
#[derive(Clone)]
pub struct Warming {
    started: Instant,
    listeners: BTreeMap<String, Versioned<Listener>>,
    clusters: BTreeMap<String, Versioned<Cluster>>,
    warming_listeners: BTreeMap<String, Waiting<Listener>>,
    warming_clusters: BTreeMap<String, Waiting<Cluster>>,
    /// Static listeners not in force yet, and static clusters still waiting for endpoints or secrets (these are in force;
    /// they only hold readiness back, as in Envoy's initialization).
    static_listeners: BTreeSet<String>,
    static_clusters: BTreeSet<String>,
    /// The routes, endpoints and secrets the last selection carried: a version kept in force while its
    /// successor warms keeps what it used even when the client no longer follows it.
    carried: Resources,
    /// The shared subscriptions (route configurations, secrets) still waited for, and since when.
    shared: Shared,
    /// When the next warming resource goes into force without its dependencies.
    pub deadline: Option<Instant>,
}

impl Warming {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            listeners: BTreeMap::new(),
            clusters: BTreeMap::new(),
            warming_listeners: BTreeMap::new(),
            warming_clusters: BTreeMap::new(),
            static_listeners: BTreeSet::new(),
            static_clusters: BTreeSet::new(),
            carried: Resources::default(),
            shared: Shared::new(),
            deadline: None,
        }
    }

    /// The resources to put in force for the accepted state `next` at `now`: each listener and cluster in
    /// the version that is warm (the new one, else the one in force before, else none), the routes, endpoints
    /// and secrets they use. Also returns the static listeners to leave out.
    pub fn select(
        &mut self,
        bootstrap: &Snapshot,
        next: &Resources,
        now: Instant,
    ) -> (Resources, BTreeSet<String>) {
        let mut round = Round {
            held: next,
            now,
            shared: &mut self.shared,
            deadline: None,
        };
        choose(
            &next.listeners,
            &mut self.listeners,
            &mut self.warming_listeners,
            listener_dependencies,
            &mut round,
        );
        choose(
            &next.clusters,
            &mut self.clusters,
            &mut self.warming_clusters,
            cluster_dependencies,
            &mut round,
        );
        let started = self.started;
        let mut statics = |dependencies: Vec<Dependency>| {
            matches!(round.warm(dependencies, started), Warm::Waiting)
        };
        self.static_listeners = bootstrap
            .listeners
            .iter()
            .filter(|l| statics(listener_dependencies(l)))
            .map(|l| l.name.clone())
            .collect();
        self.static_clusters = bootstrap
            .clusters
            .iter()
            .filter(|c| statics(cluster_dependencies(c)))
            .map(|c| c.name.clone())
            .collect();
        self.deadline = round.deadline;
        // A shared subscription ends when what it waits for arrived or nothing names it any more.
        let named: BTreeSet<(Kind, String)> = next
            .listeners
            .values()
            .flat_map(|l| listener_dependencies(&l.value))
            .chain(bootstrap.listeners.iter().flat_map(listener_dependencies))
            .chain(
                next.clusters
                    .values()
                    .flat_map(|c| cluster_dependencies(&c.value)),
            )
            .chain(bootstrap.clusters.iter().flat_map(cluster_dependencies))
            .filter(|d| !held(next, d))
            .map(|d| (d.kind, d.name))
            .collect();
        self.shared.retain(|key, _| named.contains(key));

        let mut selected = Resources {
            listeners: self.listeners.clone(),
            clusters: self.clusters.clone(),
            routes: next.routes.clone(),
            endpoints: next.endpoints.clone(),
            secrets: next.secrets.clone(),
        };
        // A version kept while its successor warms may use what the client no longer follows.
        let kept = self
            .listeners
            .values()
            .filter(|l| !next_has(&next.listeners, l))
            .flat_map(|l| listener_dependencies(&l.value))
            .chain(
                self.clusters
                    .values()
                    .filter(|c| !next_has(&next.clusters, c))
                    .flat_map(|c| cluster_dependencies(&c.value)),
            );
        for dependency in kept {
            carry(&self.carried, &mut selected, &dependency);
        }
        self.carried = Resources {
            routes: selected.routes.clone(),
            endpoints: selected.endpoints.clone(),
            secrets: selected.secrets.clone(),
            ..Resources::default()
        };
        (selected, self.static_listeners.clone())
    }

    /// Static listeners to leave out of the first configuration (nothing has arrived yet).
    pub fn initial(&mut self, bootstrap: &Snapshot) -> BTreeSet<String> {
        self.select(bootstrap, &Resources::default(), self.started)
            .1
    }

    /// The dynamic listeners and clusters warming, by name with their versions (for `/config_dump`).
    pub fn warming_versions(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (
            self.warming_listeners
                .iter()
                .map(|(name, w)| (name.clone(), w.version.version.clone()))
                .collect(),
            self.warming_clusters
                .iter()
                .map(|(name, w)| (name.clone(), w.version.version.clone()))
                .collect(),
        )
    }

    /// The warming EDS clusters no version of which is in force: name, EDS service, `track_remaining`.
    pub fn new_eds_clusters(&self) -> Vec<(String, String, bool)> {
        self.warming_clusters
            .iter()
            .filter(|(name, _)| !self.clusters.contains_key(*name))
            .flat_map(|(name, w)| {
                let cluster = &w.version.value;
                cluster_dependencies(cluster)
                    .into_iter()
                    .filter(|d| d.kind == Kind::Endpoints)
                    .map(move |d| {
                        (
                            name.clone(),
                            d.name,
                            cluster.circuit_breakers.default.track_remaining,
                        )
                    })
            })
            .collect()
    }

    /// Listeners warming (dynamic and static), dynamic ones in force, and static ones left out.
    pub fn listener_counts(&self) -> (usize, usize, usize) {
        (
            self.warming_listeners.len() + self.static_listeners.len(),
            self.listeners.len(),
            self.static_listeners.len(),
        )
    }

    /// Clusters warming and in force (dynamic).
    pub fn cluster_counts(&self) -> (usize, usize) {
        (self.warming_clusters.len(), self.clusters.len())
    }

    /// Nothing waits for a dependency: the initialization Envoy's readiness waits for is over.
    pub fn settled(&self) -> bool {
        self.warming_listeners.is_empty()
            && self.warming_clusters.is_empty()
            && self.static_listeners.is_empty()
            && self.static_clusters.is_empty()
    }
}

fn next_has<T>(next: &BTreeMap<String, Versioned<T>>, version: &Versioned<T>) -> bool {
    next.values().any(|n| Arc::ptr_eq(&n.value, &version.value))
}

fn earliest(deadline: &mut Option<Instant>, at: Option<Instant>) {
    if let Some(at) = at {
        *deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
}

/// Puts `dependency` from `carried` into `selected` when `selected` lacks it.
fn carry(carried: &Resources, selected: &mut Resources, dependency: &Dependency) {
    fn one<T>(
        from: &BTreeMap<String, Versioned<T>>,
        to: &mut BTreeMap<String, Versioned<T>>,
        name: &str,
    ) {
        if !to.contains_key(name)
            && let Some(version) = from.get(name)
        {
            to.insert(name.to_string(), version.clone());
        }
    }
    let name = &dependency.name;
    match dependency.kind {
        Kind::Route => one(&carried.routes, &mut selected.routes, name),
        Kind::Endpoints => one(&carried.endpoints, &mut selected.endpoints, name),
        Kind::Secret => one(&carried.secrets, &mut selected.secrets, name),
        Kind::Listener | Kind::Cluster => {}
    }
}

/// For one type: moves each resource of `next` that is warm into `active`, keeps the others warming (with
/// the version in force before, if any, staying in `active`), and drops what `next` no longer has.
fn choose<T>(
    next: &BTreeMap<String, Versioned<T>>,
    active: &mut BTreeMap<String, Versioned<T>>,
    warming: &mut BTreeMap<String, Waiting<T>>,
    dependencies: impl Fn(&T) -> Vec<Dependency>,
    round: &mut Round,
) {
    let now = round.now;
    active.retain(|name, _| next.contains_key(name));
    warming.retain(|name, _| next.contains_key(name));
    for (name, version) in next {
        if active
            .get(name)
            .is_some_and(|a| Arc::ptr_eq(&a.value, &version.value))
        {
            warming.remove(name);
            continue;
        }
        let since = match warming.get(name) {
            Some(w) if Arc::ptr_eq(&w.version.value, &version.value) => w.since,
            _ => now,
        };
        match round.warm(dependencies(&version.value), since) {
            Warm::Yes { timed_out } => {
                if !timed_out.is_empty() {
                    let names: Vec<String> = timed_out
                        .iter()
                        .map(|d| format!("{} {:?}", d.kind, d.name))
                        .collect();
                    tracing::info!(
                        resource = name,
                        "initial_fetch_timeout passed; in force without {}",
                        names.join(", ")
                    );
                }
                active.insert(name.clone(), version.clone());
                warming.remove(name);
            }
            Warm::Waiting => {
                if !warming.contains_key(name) {
                    tracing::info!(
                        resource = name,
                        kept = active.contains_key(name),
                        "warming: not in force until what it names arrives (the version before, if any, serves)"
                    );
                }
                warming.insert(
                    name.clone(),
                    Waiting {
                        version: version.clone(),
                        since,
                    },
                );
            }
        }
    }
}

pub mod apply;
#[cfg(test)]
mod tests;
