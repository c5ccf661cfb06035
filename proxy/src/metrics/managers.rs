//! The cluster manager's and the listener manager's statistics, named as Envoy 1.40 names them:
//! `cluster_manager.{active_clusters,warming_clusters}` and `cluster_manager.cluster_{added,modified,removed}`,
//! `listener_manager.total_listeners_{active,warming,draining}` and
//! `listener_manager.listener_{added,modified,removed}`. The bootstrap's own clusters and listeners count as
//! added at startup, as in Envoy. The warming gauges are set by the xDS layer (`src/xds/warming.rs`), which
//! keeps what warms out of the updates; draining stays 0 for now (a draining listener is not counted).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Default)]
pub struct Families {
    pub active_clusters: Gauge,
    pub warming_clusters: Gauge,
    pub cluster_added: Counter,
    pub cluster_modified: Counter,
    pub cluster_removed: Counter,
    pub total_listeners_active: Gauge,
    pub total_listeners_warming: Gauge,
    pub total_listeners_draining: Gauge,
    pub listener_added: Counter,
    pub listener_modified: Counter,
    pub listener_removed: Counter,
}

/// What one update did to a manager's resources.
#[derive(Default)]
pub struct Changes {
    pub added: u64,
    pub modified: u64,
    pub removed: u64,
    /// How many there are afterwards.
    pub active: usize,
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Families::default();
        let gauges = [
            (
                "envoy_cluster_manager_active_clusters",
                "Clusters in use",
                &f.active_clusters,
            ),
            (
                "envoy_cluster_manager_warming_clusters",
                "Clusters waiting for their endpoints or secrets (or initial_fetch_timeout)",
                &f.warming_clusters,
            ),
            (
                "envoy_listener_manager_total_listeners_active",
                "Listeners serving",
                &f.total_listeners_active,
            ),
            (
                "envoy_listener_manager_total_listeners_warming",
                "Listeners waiting for their routes or secrets (or initial_fetch_timeout)",
                &f.total_listeners_warming,
            ),
            (
                "envoy_listener_manager_total_listeners_draining",
                "Listeners draining (always 0 for now)",
                &f.total_listeners_draining,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        let counters = [
            (
                "envoy_cluster_manager_cluster_added",
                "Clusters added",
                &f.cluster_added,
            ),
            (
                "envoy_cluster_manager_cluster_modified",
                "Clusters changed",
                &f.cluster_modified,
            ),
            (
                "envoy_cluster_manager_cluster_removed",
                "Clusters removed",
                &f.cluster_removed,
            ),
            (
                "envoy_listener_manager_listener_added",
                "Listeners added",
                &f.listener_added,
            ),
            (
                "envoy_listener_manager_listener_modified",
                "Listeners changed",
                &f.listener_modified,
            ),
            (
                "envoy_listener_manager_listener_removed",
                "Listeners removed",
                &f.listener_removed,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        f
    }

    pub fn clusters(&self, changes: &Changes) {
        self.cluster_added.inc_by(changes.added);
        self.cluster_modified.inc_by(changes.modified);
        self.cluster_removed.inc_by(changes.removed);
        self.active_clusters
            .set(i64::try_from(changes.active).unwrap_or(i64::MAX));
    }

    pub fn listeners(&self, changes: &Changes) {
        self.listener_added.inc_by(changes.added);
        self.listener_modified.inc_by(changes.modified);
        self.listener_removed.inc_by(changes.removed);
        self.total_listeners_active
            .set(i64::try_from(changes.active).unwrap_or(i64::MAX));
    }
}
