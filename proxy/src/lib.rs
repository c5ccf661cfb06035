//! The Outrigger data path: listeners, protocol detection, filter chains, the TCP proxy and the HTTP
//! connection manager, upstream clusters, the admin API, statistics and draining.

#![forbid(unsafe_code)]

pub mod admin;
pub mod chain;
pub mod detect;
pub mod drain;
pub mod http;
pub mod io;
pub mod listener;
pub mod metrics;
mod network_rate_limit;
pub mod rbac;
pub mod tcp;
pub mod tls;
mod token_bucket;
pub mod upstream;

use outrigger_config::Snapshot;
use outrigger_config::model::Listener as ListenerConfig;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Everything the data path shares, in one place.
pub struct Inputs {
    pub snapshot: Arc<Snapshot>,
    pub clusters: upstream::Clusters,
    /// Each HTTP connection manager's route stacks and rate limiters, built once.
    pub http: http::Managers,
    /// The buckets of the network local rate limit filters.
    pub network_rate_limits: network_rate_limit::NetworkRateLimits,
    /// Server-side TLS contexts (the clusters hold their client-side ones).
    pub tls: tls::Contexts,
    pub metrics: metrics::Metrics,
    pub drain: drain::Drain,
    pub started: Instant,
    /// Addresses the proxy itself listens on; never an upstream destination.
    pub listener_addresses: Vec<SocketAddr>,
    /// Listeners that only receive connections handed over by `use_original_dst`.
    handoff: Vec<Arc<ListenerConfig>>,
    /// Set by `POST /healthcheck/fail`, cleared by `POST /healthcheck/ok`: `/ready` then answers 503.
    pub health_check_failed: AtomicBool,
    /// Changes the log level (`POST /logging?level=`); installed by whoever set up logging.
    pub log_control: OnceLock<LogControl>,
}

/// Sets the log filter from a level or filter string, or says why it cannot.
pub type LogControl = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

impl Inputs {
    pub fn own_addresses(&self, connection_local: SocketAddr) -> Vec<SocketAddr> {
        let mut own = self.listener_addresses.clone();
        own.push(connection_local);
        own
    }

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

/// A proxy whose sockets are bound and whose tasks run on the current runtime.
pub struct Proxy {
    pub inputs: Arc<Inputs>,
    pub addresses: Vec<(String, SocketAddr)>,
    pub admin_address: Option<SocketAddr>,
}

impl Proxy {
    /// Binds every listener and the admin server, resolves DNS clusters, and starts serving.
    pub async fn start(snapshot: Snapshot) -> Result<Self, StartError> {
        let snapshot = Arc::new(snapshot);
        let mut bound = Vec::new();
        for config in snapshot.listeners.iter().filter(|l| l.bind_to_port) {
            bound.push(listener::Listener::bind(config).await?);
        }
        let handoff = snapshot
            .listeners
            .iter()
            .filter(|l| !l.bind_to_port)
            .map(|l| Arc::new(l.clone()))
            .collect();
        let addresses: Vec<(String, SocketAddr)> = bound
            .iter()
            .filter_map(|l| l.local_addr().map(|a| (l.name().to_string(), a)))
            .collect();
        let tls = tls::Contexts::new(&snapshot).map_err(StartError::Tls)?;
        let metrics = metrics::Metrics::new();
        let clusters = upstream::Clusters::new(&snapshot.clusters, &tls, &metrics);
        let http = http::Managers::new(&snapshot, &metrics);
        let network_rate_limits = network_rate_limit::NetworkRateLimits::new(&snapshot, &metrics);
        tls.watch(tls::RELOAD_INTERVAL);
        let inputs = Arc::new(Inputs {
            snapshot: snapshot.clone(),
            clusters: clusters.clone(),
            http,
            network_rate_limits,
            tls,
            metrics,
            drain: drain::Drain::default(),
            started: Instant::now(),
            listener_addresses: addresses.iter().map(|(_, a)| *a).collect(),
            handoff,
            health_check_failed: AtomicBool::new(false),
            log_control: OnceLock::new(),
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
        for listener in bound {
            tokio::spawn(listener.run(inputs.clone()));
        }
        Ok(Self {
            inputs,
            addresses,
            admin_address,
        })
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
