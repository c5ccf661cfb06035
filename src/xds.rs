//! `outrigger run` with `dynamic_resources`: the ADS client (`outrigger_control_api::ads_client`) feeds the
//! running proxy. Each state the client would accept becomes one `Update` (the bootstrap's static resources, the
//! dynamic listeners and clusters, EDS endpoints put into their clusters, RDS route configurations by name) and
//! goes through `Proxy::apply`; an update the proxy cannot apply (a port taken, a certificate unreadable, a
//! dynamic resource named like a static one) is NACKed with the reason, and the last good configuration stays.

mod control_plane_tls;
mod sds;
mod warming;

use outrigger_config::Snapshot;
use outrigger_config::model::cluster::Discovery;
use outrigger_control_api::ads_client::{self, Event, Kind, Resources, Versioned};
use outrigger_proxy::metrics::xds::Api;
use outrigger_proxy::{Proxy, Update};
use sds::{Part, PartSink, Parts};
use std::collections::BTreeMap;
use std::sync::Arc;
pub use warming::apply::initial;

/// The ADS client's own thread: stops the client when dropped.
pub struct Client {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the ADS client when the bootstrap asks for one, and an SDS client per gRPC source its static
/// listeners and clusters name; `Ok(None)` when it needs neither. The clients run on a thread of their own
/// (decoding and converting a large push must not hold a data-path worker), and each update is applied on the
/// proxy runtime's blocking pool for the same reason.
pub fn start(proxy: Arc<Proxy>, bootstrap: Snapshot) -> Result<Option<Client>, String> {
    let ads = match (
        ads_client::Options::from_snapshot(&bootstrap),
        bootstrap
            .dynamic_resources
            .as_ref()
            .and_then(|d| d.ads.as_ref()),
    ) {
        (Some(options), Some(ads)) => {
            let cluster = bootstrap.cluster(&ads.cluster).ok_or_else(|| {
                format!(
                    "dynamic_resources.ads_config names the cluster {:?}, which static_resources does not have",
                    ads.cluster
                )
            })?;
            let tls = control_plane_tls::ClusterTls::of(&bootstrap, &ads.cluster);
            let server = ads_client::Server::from_cluster(cluster, tls)?;
            tracing::info!(
                control_plane = %server.uri,
                node = %bootstrap.node.id,
                delta = options.delta,
                "taking the configuration from the control plane over ADS"
            );
            Some((server, options))
        }
        _ => None,
    };
    // The SDS streams the static resources need, each checked now so that a bad source fails at startup.
    let mut streams = Vec::new();
    for source in ads_client::secret_sources(&bootstrap) {
        let server = sds::server(&bootstrap, &source)?;
        tracing::info!(
            sds_server = %server.uri,
            delta = source.delta,
            "taking secrets from an SDS gRPC source"
        );
        streams.push((source, server));
    }
    if ads.is_none() && streams.is_empty() {
        proxy.inputs.finish_initializing();
        return Ok(None);
    }
    // Readiness also waits for LDS and CDS to answer and for what they bring to warm (`warming/apply.rs`).
    let warm = warming::apply::State::new(&bootstrap);
    let readiness = warming::apply::Readiness::new(&bootstrap, &warm);
    let sink = Arc::new(ProxySink {
        proxy,
        bootstrap,
        runtime: tokio::runtime::Handle::current(),
        parts: std::sync::Mutex::new(Parts::default()),
        initial_fetches: std::sync::Mutex::new(
            streams
                .iter()
                .map(|(source, _)| Part::Sds(source.clone()))
                .collect(),
        ),
        warm: std::sync::Mutex::new(warm),
        readiness,
        rds_managers: std::sync::Mutex::new(Vec::new()),
        warming_eds: std::sync::Mutex::new(Vec::new()),
        cds_paused: tokio::sync::watch::channel(false).0,
    });
    // Static listeners waiting for a secret or routes have a deadline from the start.
    if let Err(e) = sink.apply_warm(Kind::Listener, Arc::default()) {
        tracing::warn!("the static resources' warming not applied: {e}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the xDS client's runtime: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("xds-client".into())
        .spawn(move || {
            runtime.block_on(async move {
                let client = ads.map(|(server, options)| {
                    let part = Arc::new(PartSink {
                        shared: sink.clone(),
                        part: Part::Ads,
                    });
                    ads_client::spawn(server, options, part)
                });
                for (source, server) in streams {
                    sink.spawn_sds(source, server);
                }
                let _ = stopped.await;
                if let Some(client) = client {
                    client.shutdown().await;
                }
                sink.shutdown_sds().await;
            });
        })
        .map_err(|e| format!("cannot start the xDS client's thread: {e}"))?;
    Ok(Some(Client {
        stop: Some(stop),
        thread: Some(thread),
    }))
}

struct ProxySink {
    proxy: Arc<Proxy>,
    bootstrap: Snapshot,
    runtime: tokio::runtime::Handle,
    /// What each client (ADS, each SDS stream) last had accepted.
    parts: std::sync::Mutex<Parts>,
    /// SDS streams started with the proxy whose initial fetch is not done (apart from `parts`: a client's
    /// events may come while `parts` is held).
    initial_fetches: std::sync::Mutex<Vec<Part>>,
    /// Which version of each listener and cluster is in force (Envoy's warming); taken after `parts`.
    warm: std::sync::Mutex<warming::apply::State>,
    readiness: warming::apply::Readiness,
    /// Every connection manager of the accepted listeners (static, dynamic, warming) that follows an RDS
    /// route configuration: its `stat_prefix` and the route configuration's name (for the RDS statistics).
    rds_managers: std::sync::Mutex<Vec<(String, String)>>,
    /// New EDS clusters not in force yet (warming): name, EDS service, `track_remaining`.
    warming_eds: std::sync::Mutex<Vec<(String, String, bool)>>,
    /// Envoy's CDS pause: `true` while a cluster warms once the initial configuration is in place (the ADS
    /// stream then holds its CDS ACK back; `ads_client::Sink::cds_pause`).
    cds_paused: tokio::sync::watch::Sender<bool>,
}

impl ProxySink {
    /// Applies a whole configuration on the proxy's runtime.
    fn apply_update(&self, kind: Kind, update: Update) -> Result<(), String> {
        // Called on the client's own thread, which may wait: the update runs on the proxy's runtime (its
        // listeners' tasks belong there), on the blocking pool, so no data-path worker carries it.
        let (done, result) = std::sync::mpsc::channel();
        let (proxy, runtime) = (self.proxy.clone(), self.runtime.clone());
        self.runtime.spawn_blocking(move || {
            let _ = done.send(runtime.block_on(proxy.apply(update)));
        });
        match result.recv() {
            Ok(applied) => applied.map_err(|e| format!("{kind} update not applied: {e}")),
            Err(_) => Err(format!(
                "{kind} update not applied: the proxy is shutting down"
            )),
        }
    }

    fn event(&self, part: &Part, event: Event) {
        let inputs = &self.proxy.inputs;
        if let Part::Sds(_) = part {
            // An SDS stream counts for readiness and on its secrets' `sds.<name>.*`; `control_plane.*` is the
            // ADS stream's.
            match event {
                Event::InitialFetchDone => return self.initial_fetch_done(part),
                // Counted below, on `sds.<name>.*`.
                Event::Subscribed(..) | Event::Delivered(..) | Event::Refused(..) => {}
                _ => return,
            }
        }
        let xds = &inputs.metrics.xds;
        match event {
            Event::Connected => {
                xds.connected_state.set(1);
            }
            Event::Disconnected => {
                xds.connected_state.set(0);
            }
            Event::InitialFetchTimedOut => {
                self.answered(&[Kind::Listener, Kind::Cluster]);
                // Envoy counts it on each wildcard subscription still waiting; here on those the client has.
                let dynamic = self.bootstrap.dynamic_resources.as_ref();
                if dynamic.is_some_and(|d| d.lds.is_some()) {
                    xds.stats(&Api::Lds).init_fetch_timeout.inc();
                }
                if dynamic.is_some_and(|d| d.cds.is_some()) {
                    xds.stats(&Api::Cds).init_fetch_timeout.inc();
                }
            }
            // The ADS stream's: readiness follows warming (`check_ready`), as what arrived may still warm.
            Event::InitialFetchDone => tracing::info!("initial fetch from the control plane done"),
            Event::UpdateAttempt(kind) => self.count(kind, |s| {
                s.attempt.inc();
            }),
            Event::UpdateRejected(kind) => {
                self.answered(&[kind]);
                self.count(kind, |s| {
                    s.rejected.inc();
                });
            }
            Event::UpdateSuccess(kind, version) => {
                self.answered(&[kind]);
                self.count(kind, |s| {
                    s.success.inc();
                    s.set_version(&version);
                });
                // The update is in place and its conversion's temporaries are gone: give back what they took.
                let started = std::time::Instant::now();
                let released = crate::memory::release_free_memory();
                tracing::debug!(released, took = ?started.elapsed(), "free memory given back after an update");
            }
            // Envoy counts an attempt when a subscription starts, then one per update it takes part in.
            Event::Subscribed(kind, names) => self.count_named(
                kind,
                &names,
                |s| {
                    s.attempt.inc();
                },
                |c| {
                    c.update_attempt.inc();
                },
            ),
            // Listeners and clusters count on `UpdateSuccess`/`UpdateRejected`, once per response.
            Event::Delivered(kind, _, _) | Event::Refused(kind, _) if kind.is_wildcard() => {}
            Event::Delivered(kind, names, version) => self.count_named(
                kind,
                &names,
                |s| {
                    s.attempt.inc();
                    s.success.inc();
                    s.set_version(&version);
                },
                |c| {
                    c.update_attempt.inc();
                    c.update_success.inc();
                },
            ),
            Event::Refused(kind, names) => self.count_named(
                kind,
                &names,
                |s| {
                    s.attempt.inc();
                    s.rejected.inc();
                },
                |c| {
                    c.update_attempt.inc();
                    c.update_rejected.inc();
                },
            ),
        }
    }
}

impl ProxySink {
    /// An SDS stream's initial fetch is done.
    fn initial_fetch_done(&self, part: &Part) {
        if let Ok(mut pending) = self.initial_fetches.lock() {
            pending.retain(|p| p != part);
        }
        self.check_ready();
    }

    /// Counts a response on its API's statistics: LDS and CDS have one scope each. Routes, endpoints and
    /// secrets count per resource (`count_named`).
    fn count(&self, kind: Kind, update: impl Fn(&outrigger_proxy::metrics::xds::UpdateStats)) {
        let metrics = &self.proxy.inputs.metrics;
        match kind {
            Kind::Listener => update(&metrics.xds.stats(&Api::Lds)),
            Kind::Cluster => update(&metrics.xds.stats(&Api::Cds)),
            // Counted per resource (`Subscribed`, `Delivered`, `Refused`): Envoy has a subscription for each
            // route configuration, EDS cluster and secret, and counts on those a response is for.
            Kind::Route | Kind::Endpoints | Kind::Secret => {}
        }
    }

    /// Counts on the subscriptions of the named resources: route configurations on each connection manager
    /// that follows them, endpoints on each EDS cluster of that service name, secrets by name. A wildcard
    /// subscription (listeners, clusters: no names) counts on its API's scope.
    fn count_named(
        &self,
        kind: Kind,
        names: &[String],
        update: impl Fn(&outrigger_proxy::metrics::xds::UpdateStats),
        cluster: impl Fn(&outrigger_proxy::metrics::ClusterStats),
    ) {
        let metrics = &self.proxy.inputs.metrics;
        match kind {
            Kind::Listener | Kind::Cluster => self.count(kind, update),
            Kind::Route => {
                // Those of every accepted listener, warming ones too: Envoy's RDS subscription starts with
                // the listener, before it is in force.
                let managers = self
                    .rds_managers
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_default();
                for (stat_prefix, route_config) in managers {
                    if names.contains(&route_config) {
                        update(&metrics.xds.stats(&Api::Rds {
                            stat_prefix: &stat_prefix,
                            route_config: &route_config,
                        }));
                    }
                }
            }
            Kind::Endpoints => {
                for state in self.proxy.inputs.clusters.all() {
                    if let Discovery::Eds { service_name, .. } = &state.config.discovery {
                        let service = if service_name.is_empty() {
                            &state.config.name
                        } else {
                            service_name
                        };
                        if names.contains(service) {
                            cluster(&state.stats);
                        }
                    }
                }
                // New clusters still warming for their endpoints: Envoy's EDS subscription (and the cluster's
                // statistics) start with the cluster, before it is in force.
                let warming = self
                    .warming_eds
                    .lock()
                    .map(|w| w.clone())
                    .unwrap_or_default();
                for (name, service, track_remaining) in warming {
                    if names.contains(&service) {
                        cluster(&metrics.resilience.cluster(&name, track_remaining));
                    }
                }
            }
            Kind::Secret => {
                for name in names {
                    update(&metrics.xds.stats(&Api::Sds { name }));
                }
            }
        }
    }
}

/// Every connection manager that takes its routes from RDS: its `stat_prefix` and route configuration name.
pub(crate) fn rds_managers<'a>(
    listeners: impl Iterator<Item = &'a outrigger_config::model::Listener>,
) -> Vec<(String, String)> {
    use outrigger_config::model::http::RouteSource;
    use outrigger_config::model::listener::NetworkFilter;
    let mut found = Vec::new();
    for listener in listeners {
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.iter());
        for filter in chains.flat_map(|c| c.filters.iter()) {
            if let NetworkFilter::HttpConnectionManager(hcm) = filter
                && let RouteSource::Rds {
                    route_config_name, ..
                } = &hcm.routes
            {
                found.push((hcm.stat_prefix.clone(), route_config_name.clone()));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The whole configuration a dynamic state leads to.
pub fn assemble(bootstrap: &Snapshot, dynamic: &Resources) -> Result<Update, String> {
    let mut snapshot = bootstrap.clone();
    snapshot.listeners.reserve_exact(dynamic.listeners.len());
    snapshot.clusters.reserve_exact(dynamic.clusters.len());
    for (name, listener) in &dynamic.listeners {
        if bootstrap.listener(name).is_some() {
            return Err(format!(
                "Listener {name:?}: static_resources has a listener of that name; LDS cannot replace it"
            ));
        }
        snapshot.listeners.push((*listener.value).clone());
    }
    for (name, cluster) in &dynamic.clusters {
        // Acted on only where Outrigger speaks to a control plane, which is always a static cluster.
        if cluster.value.http2.keepalive.is_some() {
            return Err(format!(
                "Cluster {name:?}: http2_protocol_options.connection_keepalive is supported only on the static \
                 cluster that reaches the control plane"
            ));
        }
        if bootstrap.cluster(name).is_some() {
            return Err(format!(
                "Cluster {name:?}: static_resources has a cluster of that name; CDS cannot replace it"
            ));
        }
        snapshot.clusters.push((*cluster.value).clone());
    }
    // An EDS cluster's endpoints are those of its service name (the cluster's name when it sets none); until
    // they arrive it has none.
    for cluster in &mut snapshot.clusters {
        if let Discovery::Eds { service_name, .. } = &cluster.discovery {
            let name = if service_name.is_empty() {
                &cluster.name
            } else {
                service_name
            };
            let endpoints = dynamic.endpoints.get(name);
            cluster.localities = endpoints
                .map(|e| e.value.localities.clone())
                .unwrap_or_default();
            if let Some(endpoints) = endpoints {
                cluster.overprovisioning_factor = endpoints.value.overprovisioning_factor;
            }
        }
    }
    let routes = dynamic
        .routes
        .iter()
        .map(|(name, route)| (name.clone(), route.value.clone()))
        .collect();
    let secrets = dynamic
        .secrets
        .iter()
        .map(|(name, secret)| (name.clone(), secret.value.clone()))
        .collect();
    Ok(Update {
        snapshot,
        routes,
        secrets,
        dynamic: Some({
            let dynamic = dynamic.clone();
            Arc::new(move || versions(&dynamic))
        }),
    })
}

/// For `/config_dump`: each dynamic resource's version and when it last changed, by type.
pub(crate) fn versions(dynamic: &Resources) -> serde_json::Value {
    fn of<T>(map: &BTreeMap<String, Versioned<T>>) -> serde_json::Value {
        map.iter()
            .map(|(name, v)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "version_info": v.version,
                        "last_updated": humantime::format_rfc3339_millis(v.last_updated).to_string(),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
    serde_json::json!({
        "listeners": of(&dynamic.listeners),
        "route_configs": of(&dynamic.routes),
        "clusters": of(&dynamic.clusters),
        "endpoints": of(&dynamic.endpoints),
        "secrets": of(&dynamic.secrets),
    })
}
