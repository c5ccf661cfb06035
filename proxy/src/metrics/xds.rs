//! xDS statistics, named as Envoy names them: `envoy_control_plane_connected_state`, and for each API its
//! `update_attempt`, `update_success`, `update_rejected`, `init_fetch_timeout` counters and `version` gauge
//! (`envoy_listener_manager_lds_*`, `envoy_cluster_manager_cds_*`, `envoy_http_rds_*` by connection manager
//! and route configuration, `envoy_sds_*` by secret in `envoy_xds_resource_name`). EDS counts on the cluster's
//! own `envoy_cluster_update_*`, as in Envoy. [`envoy_stat`] gives each its `/stats` name
//! (`listener_manager.lds.update_success`, `http.<prefix>.rds.<route config>.update_success`,
//! `sds.<secret>.update_success`, `control_plane.connected_state`), as Envoy 1.40 prints them.

use super::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// One xDS API's statistics scope.
pub enum Api<'a> {
    Lds,
    Cds,
    /// A connection manager (by `stat_prefix`) that takes its routes from RDS.
    Rds {
        stat_prefix: &'a str,
        route_config: &'a str,
    },
    /// One secret taken from SDS.
    Sds {
        name: &'a str,
    },
}

const COUNTERS: [(&str, &str); 4] = [
    (
        "update_attempt",
        "Configuration updates received or asked for",
    ),
    ("update_success", "Configuration updates applied"),
    (
        "update_rejected",
        "Configuration updates refused (NACKed): the last good one stays",
    ),
    (
        "init_fetch_timeout",
        "Initial fetches that ran out of initial_fetch_timeout",
    ),
];

const SCOPES: [&str; 4] = [
    "listener_manager_lds",
    "cluster_manager_cds",
    "http_rds",
    "sds",
];

type Version = Gauge<u64, AtomicU64>;

#[derive(Clone, Default)]
pub struct Families {
    /// 1 while the ADS stream to the control plane is up.
    pub connected_state: Gauge,
    /// Requests held back by the xDS rate limit, and times it held one back: the client has no rate limit
    /// (Envoy's is off unless `rate_limit_settings` is set), so both stay 0, as in Envoy.
    pub pending_requests: Gauge,
    pub rate_limit_enforced: Counter,
    /// By scope, then counter (in `COUNTERS` order).
    counters: Vec<Vec<Family<Labels, Counter>>>,
    versions: Vec<Family<Labels, Version>>,
}

/// One API's statistics, resolved.
#[derive(Clone)]
pub struct UpdateStats {
    pub attempt: Counter,
    pub success: Counter,
    pub rejected: Counter,
    pub init_fetch_timeout: Counter,
    version: Version,
}

impl UpdateStats {
    /// Envoy publishes the accepted version as the xxHash64 of its text.
    pub fn set_version(&self, version: &str) {
        self.version
            .set(xxhash_rust::xxh64::xxh64(version.as_bytes(), 0));
    }
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let mut families = Families::default();
        registry.register(
            "envoy_control_plane_connected_state",
            "1 while connected to the xDS control plane",
            families.connected_state.clone(),
        );
        registry.register(
            "envoy_control_plane_pending_requests",
            "xDS requests waiting for the rate limit (none: the client has no rate limit)",
            families.pending_requests.clone(),
        );
        registry.register(
            "envoy_control_plane_rate_limit_enforced",
            "xDS requests the rate limit held back (none: the client has no rate limit)",
            families.rate_limit_enforced.clone(),
        );
        for scope in SCOPES {
            let mut counters = Vec::new();
            for (name, help) in COUNTERS {
                let family = Family::<Labels, Counter>::default();
                registry.register(format!("envoy_{scope}_{name}"), help, family.clone());
                counters.push(family);
            }
            families.counters.push(counters);
            let version = Family::<Labels, Version>::default();
            registry.register(
                format!("envoy_{scope}_version"),
                "xxHash64 of the version of the configuration in force",
                version.clone(),
            );
            families.versions.push(version);
        }
        families
    }

    pub fn stats(&self, api: &Api) -> UpdateStats {
        let (scope, labels): (usize, Labels) = match api {
            Api::Lds => (0, Vec::new()),
            Api::Cds => (1, Vec::new()),
            Api::Rds {
                stat_prefix,
                route_config,
            } => (
                2,
                vec![
                    ("envoy_http_conn_manager_prefix", stat_prefix.to_string()),
                    ("envoy_rds_route_config", route_config.to_string()),
                ],
            ),
            Api::Sds { name } => (3, vec![("envoy_xds_resource_name", name.to_string())]),
        };
        let counter = |i: usize| {
            self.counters
                .get(scope)
                .and_then(|c| c.get(i))
                .map(|f| f.get_or_create(&labels).clone())
                .unwrap_or_default()
        };
        UpdateStats {
            attempt: counter(0),
            success: counter(1),
            rejected: counter(2),
            init_fetch_timeout: counter(3),
            version: self
                .versions
                .get(scope)
                .map(|f| f.get_or_create(&labels).clone())
                .unwrap_or_default(),
        }
    }
}

/// The `/stats` name of one of these families' samples (`name` as encoded, counters with their `_total`),
/// given its labels; `None` for other families.
pub fn envoy_stat(name: &str, label: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let rest = name.strip_prefix("envoy_")?;
    if let Some(rest) = rest.strip_prefix("http_rds_") {
        let prefix = label("envoy_http_conn_manager_prefix")?;
        let route_config = label("envoy_rds_route_config")?;
        return Some(format!("http.{prefix}.rds.{route_config}.{rest}"));
    }
    if let Some(rest) = rest.strip_prefix("sds_") {
        return Some(format!("sds.{}.{rest}", label("envoy_xds_resource_name")?));
    }
    let scopes = [
        ("listener_manager_lds_", "listener_manager.lds."),
        ("cluster_manager_cds_", "cluster_manager.cds."),
        ("listener_manager_", "listener_manager."),
        ("cluster_manager_", "cluster_manager."),
        ("control_plane_", "control_plane."),
    ];
    scopes.iter().find_map(|(prefix, scope)| {
        rest.strip_prefix(prefix)
            .map(|stat| format!("{scope}{stat}"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::metrics::Metrics;

    use super::Api;

    /// The `/stats` names Envoy 1.40 prints (checked against its admin `/stats`).
    #[test]
    fn xds_and_manager_statistics_have_envoys_names() {
        let metrics = Metrics::new();
        metrics.xds.stats(&Api::Lds).success.inc();
        metrics.xds.stats(&Api::Cds).rejected.inc();
        let rds = Api::Rds {
            stat_prefix: "ingress",
            route_config: "routes",
        };
        metrics.xds.stats(&rds).attempt.inc();
        let sds = metrics.xds.stats(&Api::Sds {
            name: "client-cert",
        });
        sds.success.inc();
        sds.set_version("1");
        metrics.xds.connected_state.set(1);
        metrics.managers.active_clusters.set(3);
        metrics.managers.listener_added.inc();
        let stats = metrics.envoy_stats();
        for line in [
            "listener_manager.lds.update_success: 1",
            "cluster_manager.cds.update_rejected: 1",
            "http.ingress.rds.routes.update_attempt: 1",
            "sds.client-cert.update_success: 1",
            // xxHash64 of "1", as Envoy's `sds.client-cert.version` after version "1".
            "sds.client-cert.version: 13237225503670494420",
            "control_plane.connected_state: 1",
            "control_plane.pending_requests: 0",
            "cluster_manager.active_clusters: 3",
            "listener_manager.listener_added: 1",
            "listener_manager.total_listeners_active: 0",
        ] {
            assert!(
                stats.lines().any(|l| l == line),
                "{line} missing from:\n{stats}"
            );
        }
    }
}
