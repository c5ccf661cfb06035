//! The Outrigger data path: listeners, protocol detection, filter chains, the TCP proxy and the HTTP
//! connection manager, upstream clusters, the admin API, statistics and draining.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod chain;
mod connection_limit;
pub mod detect;
pub mod drain;
/// For the fuzz targets in `tests/fuzz/` only.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod io;
pub mod listener;
pub mod load_report;
pub mod log_limit;
pub mod metrics;
mod network_rate_limit;
pub mod rbac;
pub mod tcp;
pub mod tls;
mod token_bucket;
pub mod trace;
pub mod udp;
pub mod upstream;

use outrigger_config::Snapshot;
use outrigger_config::model::Listener as ListenerConfig;
use outrigger_config::model::RouteConfig;
use outrigger_config::model::tls::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Everything the data path shares, in one place. It lives as long as the proxy; what a configuration update
/// replaces is the `Generation` inside (and the cluster map inside `clusters`).
pub struct Inputs {
    generation: arc_swap::ArcSwap<Generation>,
    pub clusters: upstream::Clusters,
    pub metrics: metrics::Metrics,
    pub drain: drain::Drain,
    pub started: Instant,
    /// Set by `POST /healthcheck/fail`, cleared by `POST /healthcheck/ok`: `/ready` then answers 503.
    pub health_check_failed: AtomicBool,
    /// False until the first configuration from the control plane is in place (or its initial fetch timed
    /// out): `/ready` answers 503 and no listener accepts until then (Envoy starts its workers once its
    /// initialization is done; connections wait in the backlog). True from the start without a control plane.
    pub initialized: tokio::sync::watch::Sender<bool>,
    /// Changes the log level (`POST /logging?level=`); installed by whoever set up logging.
    pub log_control: OnceLock<LogControl>,
    /// Connections open that count against the overload manager's `global_downstream_max_connections`.
    pub global_connections: Arc<connection_limit::Count>,
}

/// What one configuration becomes at run time, built once per update; a connection keeps the generation it
/// was accepted under.
pub struct Generation {
    /// The configuration but its clusters (`Inputs::clusters` holds them, with their current endpoints).
    pub snapshot: Arc<Snapshot>,
    /// Route configurations delivered by RDS, by name.
    pub routes: HashMap<String, Arc<RouteConfig>>,
    /// For `/config_dump`: what the control plane sent, each type's and resource's version and update time.
    pub dynamic: Option<DynamicDump>,
    /// Each HTTP connection manager's route stacks and rate limiters.
    pub http: http::Managers,
    /// The buckets of the network local rate limit filters.
    pub network_rate_limits: network_rate_limit::NetworkRateLimits,
    /// The counts of the connection limit filters.
    pub connection_limits: connection_limit::ConnectionLimits,
    /// TLS contexts (server side for the listeners, client side for the clusters).
    pub tls: tls::Contexts,
    /// Addresses the proxy itself listens on; never an upstream destination.
    pub listener_addresses: Vec<SocketAddr>,
    /// Listeners that only receive connections handed over by `use_original_dst`.
    handoff: Vec<Arc<ListenerConfig>>,
}

/// Sets the log filter from a level or filter string, or says why it cannot.
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

impl Inputs {
    /// The configuration in force now.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    /// Whether the initial configuration is in place (see `initialized`).
    pub fn is_initialized(&self) -> bool {
        *self.initialized.borrow()
    }

    /// The initial configuration is in place: `/ready` turns ready and the listeners start accepting. Returns
    /// whether it was not already.
    pub fn finish_initializing(&self) -> bool {
        self.initialized
            .send_if_modified(|done| !std::mem::replace(done, true))
    }

    /// Returns once the initial configuration is in place.
    pub async fn wait_initialized(&self) {
        let mut initialized = self.initialized.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = initialized.wait_for(|done| *done).await;
    }

    pub fn own_addresses(&self, connection_local: SocketAddr) -> Vec<SocketAddr> {
        let mut own = self.generation.load().listener_addresses.clone();
        own.push(connection_local);
        own
    }
}

impl Generation {
    /// The `bind_to_port: false` listener for `destination`: exact address first, then the wildcard on its port.
    pub fn handoff_listener(&self, destination: SocketAddr) -> Option<Arc<ListenerConfig>> {
        let exact = self.handoff.iter().find(|l| l.address == destination);
        let wildcard = || {
            self.handoff
                .iter()
                .find(|l| l.address.port() == destination.port() && l.address.ip().is_unspecified())
        };
        exact.or_else(wildcard).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot start the admin server on {address}: {source}")]
    Admin {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// After a drain starts, exit when no connection is left, or at this deadline.
    pub drain_time: Duration,
}

/// A configuration to apply: the snapshot (static and dynamic listeners and clusters, EDS endpoints already
/// in the clusters) and the route configurations RDS delivered.
pub struct Update {
    pub snapshot: Snapshot,
    pub routes: HashMap<String, Arc<RouteConfig>>,
    /// Secrets SDS delivered, by name: TLS contexts naming them get their certificates and trust bundles from
    /// them (a new version is swapped in for the next handshake, nothing else is rebuilt).
    pub secrets: HashMap<String, Arc<Secret>>,
    /// For `/config_dump`: versions and update times of the dynamic resources (none without a control plane).
    pub dynamic: Option<DynamicDump>,
}

/// Writes the dynamic resources' versions for `/config_dump` when it is asked for (a mesh's thousands of entries
/// are not kept as JSON all the time).
pub type DynamicDump = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// A proxy whose sockets are bound and whose tasks run on the current runtime.
pub struct Proxy {
    pub inputs: Arc<Inputs>,
    pub admin_address: Option<SocketAddr>,
    listeners: tokio::sync::Mutex<listener::Running>,
    /// The bound listeners' names and addresses, as of the last update.
    addresses: std::sync::Mutex<Vec<(String, SocketAddr)>>,
}

impl Proxy {
    /// Binds every listener and the admin server, resolves DNS clusters, and starts serving.
    pub async fn start(snapshot: Snapshot) -> Result<Self, StartError> {
        let initializing = snapshot.dynamic_resources.is_some();
        Self::start_initializing(snapshot, initializing).await
    }

    /// The same; with `initializing`, the listeners are bound but accept nothing, and `/ready` answers 503,
    /// until [`Inputs::finish_initializing`] (the xDS client calls it once the control plane's first
    /// configuration is in place).
    pub async fn start_initializing(
        mut snapshot: Snapshot,
        initializing: bool,
    ) -> Result<Self, StartError> {
        // A listener waiting for SDS secrets is not given here: the xDS layer (`src/xds/warming.rs`) adds it
        // once they arrive (or its initial_fetch_timeout passes).
        let tls = tls::Contexts::new(&snapshot).map_err(StartError::Tls)?;
        let mut metrics = metrics::Metrics::new();
        metrics.enable_istio(&snapshot.node.metadata);
        let drain = drain::Drain::default();
        let mut running = listener::Running::default();
        let plan = running.plan(&snapshot).await?;
        let clusters =
            upstream::Clusters::new(std::mem::take(&mut snapshot.clusters), &tls, &metrics);
        let snapshot = Arc::new(plan.snapshot(snapshot));
        let generation = Generation {
            http: http::Managers::new(&snapshot, &metrics, &clusters),
            network_rate_limits: network_rate_limit::NetworkRateLimits::new(&snapshot, &metrics),
            connection_limits: connection_limit::ConnectionLimits::update(
                &snapshot,
                &metrics,
                &connection_limit::ConnectionLimits::default(),
            ),
            listener_addresses: plan.addresses(),
            handoff: handoff(&snapshot),
            routes: HashMap::new(),
            dynamic: None,
            tls,
            snapshot: snapshot.clone(),
        };
        generation.tls.watch(tls::RELOAD_INTERVAL);
        let inputs = Arc::new(Inputs {
            generation: arc_swap::ArcSwap::from_pointee(generation),
            clusters: clusters.clone(),
            metrics,
            drain,
            started: Instant::now(),
            health_check_failed: AtomicBool::new(false),
            initialized: tokio::sync::watch::channel(!initializing).0,
            log_control: OnceLock::new(),
            global_connections: Arc::default(),
        });
        let admin_address =
            match &snapshot.admin {
                Some(admin) => Some(admin::start(admin.address, inputs.clone()).map_err(
                    |source| StartError::Admin {
                        address: admin.address,
                        source,
                    },
                )?),
                None => None,
            };
        clusters.start_dns().await;
        running.commit(plan, &inputs);
        Ok(Self {
            inputs,
            admin_address,
            addresses: std::sync::Mutex::new(running.addresses()),
            listeners: tokio::sync::Mutex::new(running),
        })
    }

    /// The bound listeners' names and addresses.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        match self.addresses.lock() {
            Ok(addresses) => addresses.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies a new configuration as Envoy applies an xDS update, without dropping traffic: clusters first
    /// (kept where unchanged, see `Clusters::update`), then listeners: a new one binds and serves, an unchanged
    /// one keeps serving untouched, a changed one is replaced on the same socket (nothing is refused) and the
    /// connections of the old one drain, a removed one stops accepting and its connections drain. RDS route
    /// configurations apply from the next request on, also on open connections. On an error (a port taken, a
    /// certificate unreadable) nothing changes.
    pub async fn apply(&self, update: Update) -> Result<(), String> {
        let mut running = self.listeners.lock().await;
        let previous = self.inputs.generation();
        let mut next = update.snapshot;
        let secrets = tls::Secrets::new(&next, update.secrets);
        let (tls, secrets_pending) = tls::Contexts::update(&next, secrets, &previous.tls)?;
        let plan = running.plan(&next).await.map_err(|e| e.to_string())?;
        secrets_pending.commit();
        let metrics = &self.inputs.metrics;
        // The clusters keep their configurations; the running snapshot holds the rest.
        self.inputs
            .clusters
            .update(std::mem::take(&mut next.clusters), &tls, metrics)
            .await;
        let snapshot = Arc::new(plan.snapshot(next));
        let generation = Generation {
            http: http::Managers::update(&snapshot, metrics, &self.inputs.clusters, &previous.http),
            network_rate_limits: network_rate_limit::NetworkRateLimits::update(
                &snapshot,
                metrics,
                &previous.network_rate_limits,
            ),
            connection_limits: connection_limit::ConnectionLimits::update(
                &snapshot,
                metrics,
                &previous.connection_limits,
            ),
            listener_addresses: plan.addresses(),
            handoff: handoff(&snapshot),
            routes: update.routes,
            dynamic: update.dynamic,
            tls,
            snapshot,
        };
        generation
            .http
            .set_route_configs(&generation.routes, metrics);
        generation.tls.watch(tls::RELOAD_INTERVAL);
        self.inputs.generation.store(Arc::new(generation));
        running.commit(plan, &self.inputs);
        let addresses = running.addresses();
        match self.addresses.lock() {
            Ok(mut current) => *current = addresses,
            Err(poisoned) => *poisoned.into_inner() = addresses,
        }
        Ok(())
    }

    /// Starts the drain (if not started) and waits until no connection is open or `deadline` passes.
    pub async fn drain(&self, deadline: Duration) {
        self.inputs.drain.start();
        self.inputs.metrics.server_live.set(0);
        let waiting = async {
            while self.inputs.drain.open_connections() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(deadline, waiting).await.is_err() {
            tracing::info!(
                open = self.inputs.drain.open_connections(),
                "drain deadline reached; exiting anyway"
            );
        }
    }
}

fn handoff(snapshot: &Snapshot) -> Vec<Arc<ListenerConfig>> {
    snapshot
        .listeners
        .iter()
        .filter(|l| !l.bind_to_port)
        .map(|l| Arc::new(l.clone()))
        .collect()
}
