//! Statistics of the resilience layers (retries, circuit breakers, outlier detection, local rate limits), with
//! Envoy's names, and the per-cluster handles resolved once so a request never builds or hashes a label set.

use super::Labels;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, Weak};

/// The families: per cluster (a collector over every live cluster's block of cells), and per rate-limit prefix.
#[derive(Default)]
pub struct Families {
    clusters: Arc<ClusterCollector>,
    rate_limit_counters: Vec<(&'static str, Family<Labels, Counter>)>,
}

/// `envoy_cluster_name="<name>"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterLabel(Arc<str>);

impl EncodeLabelSet for ClusterLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("envoy_cluster_name", &*self.0).encode(encoder.encode_label())
    }
}

/// One cluster's statistics in one allocation: a mesh with thousands of clusters has about fifty series each, and
/// a map entry, a label set and a counter allocation per series would cost megabytes.
#[derive(Debug)]
struct Cells {
    label: ClusterLabel,
    counters: [AtomicU64; CLUSTER_COUNTERS.len()],
    gauges: [AtomicI64; CLUSTER_GAUGES.len()],
    /// `track_remaining`: the `remaining_*` gauges are published (Envoy has them only then).
    remaining: bool,
    /// The `health_check.*` statistics are published (Envoy has them only for a cluster with health checks).
    health_checked: std::sync::atomic::AtomicBool,
}

impl Cells {
    fn new(name: &str, remaining: bool) -> Arc<Self> {
        Arc::new(Self {
            label: ClusterLabel(Arc::from(name)),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            gauges: std::array::from_fn(|_| AtomicI64::new(0)),
            remaining,
            health_checked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn publishes(&self, name: &str) -> bool {
        !name.starts_with("health_check_") || self.health_checked.load(Ordering::Relaxed)
    }
}

/// A cluster's counter: a cell of its block.
#[derive(Clone, Debug)]
pub struct ClusterCounter {
    cells: Arc<Cells>,
    index: usize,
}

impl ClusterCounter {
    fn cell(&self) -> Option<&AtomicU64> {
        self.cells.counters.get(self.index)
    }

    pub fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    pub fn inc_by(&self, v: u64) -> u64 {
        self.cell().map_or(0, |c| c.fetch_add(v, Ordering::Relaxed))
    }

    pub fn get(&self) -> u64 {
        self.cell().map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Unregistered (tests, and a cluster's statistics before they are resolved).
impl Default for ClusterCounter {
    fn default() -> Self {
        Self {
            cells: Cells::new("", false),
            index: 0,
        }
    }
}

/// A cluster's gauge: a cell of its block.
#[derive(Clone, Debug)]
pub struct ClusterGauge {
    cells: Arc<Cells>,
    index: usize,
}

impl ClusterGauge {
    fn cell(&self) -> Option<&AtomicI64> {
        self.cells.gauges.get(self.index)
    }

    pub fn set(&self, v: i64) -> i64 {
        self.cell().map_or(0, |c| c.swap(v, Ordering::Relaxed))
    }

    pub fn inc(&self) -> i64 {
        self.cell().map_or(0, |c| c.fetch_add(1, Ordering::Relaxed))
    }

    pub fn dec(&self) -> i64 {
        self.cell().map_or(0, |c| c.fetch_sub(1, Ordering::Relaxed))
    }

    pub fn get(&self) -> i64 {
        self.cell().map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Default for ClusterGauge {
    fn default() -> Self {
        Self {
            cells: Cells::new("", false),
            index: 0,
        }
    }
}

/// Every live cluster's block, by name: a cluster replaced by an update keeps its name's block (and so its
/// counts) while either lives, as Envoy keeps a cluster's statistics across updates.
#[derive(Debug, Default)]
struct ClusterCollector {
    by_name: Mutex<HashMap<Arc<str>, Weak<Cells>>>,
}

impl ClusterCollector {
    fn cells(&self, name: &str, remaining: bool) -> Arc<Cells> {
        let mut by_name = match self.by_name.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(live) = by_name.get(name).and_then(Weak::upgrade)
            && live.remaining == remaining
        {
            return live;
        }
        let cells = Cells::new(name, remaining);
        by_name.insert(cells.label.0.clone(), Arc::downgrade(&cells));
        cells
    }

    /// The live blocks, by name; forgets the clusters that are gone.
    fn live(&self) -> Vec<Arc<Cells>> {
        let mut by_name = match self.by_name.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        by_name.retain(|_, cells| cells.strong_count() > 0);
        let mut live: Vec<Arc<Cells>> = by_name.values().filter_map(Weak::upgrade).collect();
        live.sort_by(|a, b| a.label.0.cmp(&b.label.0));
        live
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = self.live();
        for (i, (name, help)) in CLUSTER_COUNTERS.iter().enumerate() {
            // The encoder adds `_total` to every counter: an Envoy name that has it already must not get two.
            let name = format!(
                "envoy_cluster_{}",
                name.strip_suffix("_total").unwrap_or(name)
            );
            let mut metric = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
            let short = CLUSTER_COUNTERS.get(i).map_or("", |(n, _)| *n);
            for cells in live.iter().filter(|c| c.publishes(short)) {
                let value = cells
                    .counters
                    .get(i)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                if value == 0 && short.starts_with("ext_authz_") {
                    continue;
                }
                metric
                    .encode_family(&cells.label)?
                    .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
            }
        }
        for (i, (short, help)) in CLUSTER_GAUGES.iter().enumerate() {
            let name = format!("envoy_cluster_{short}");
            let mut metric = encoder.encode_descriptor(&name, help, None, MetricType::Gauge)?;
            let remaining_gauge = name.contains("_remaining_");
            for cells in live
                .iter()
                .filter(|c| (c.remaining || !remaining_gauge) && c.publishes(short))
            {
                let value = cells.gauges.get(i).map_or(0, |g| g.load(Ordering::Relaxed));
                metric.encode_family(&cells.label)?.encode_gauge(&value)?;
            }
        }
        Ok(())
    }
}

/// Counters of one cluster, in Envoy's names (the family is `envoy_cluster_<name>`).
const CLUSTER_COUNTERS: &[(&str, &str)] = &[
    ("upstream_rq_retry", "Upstream requests retried"),
    (
        "upstream_rq_retry_success",
        "Retries whose attempt got a response that was not retried",
    ),
    (
        "upstream_rq_retry_overflow",
        "Retries not made because the retry circuit breaker or budget was full",
    ),
    (
        "upstream_rq_retry_limit_exceeded",
        "Requests that wanted another retry after num_retries",
    ),
    (
        "upstream_rq_retry_backoff_exponential",
        "Retries that waited an exponential back-off",
    ),
    (
        "upstream_rq_retry_backoff_ratelimited",
        "Retries that waited what the upstream's rate-limit reset header said",
    ),
    (
        "retry_or_shadow_abandoned",
        "Requests not retried because their body outgrew the buffer limit",
    ),
    (
        "upstream_rq_per_try_timeout",
        "Attempts cut by the per-try timeout",
    ),
    (
        "upstream_rq_per_try_idle_timeout",
        "Attempts cut by the per-try idle timeout",
    ),
    (
        "upstream_rq_pending_overflow",
        "Requests refused (503 UO) by the max_pending_requests circuit breaker",
    ),
    (
        "upstream_rq_active_overflow",
        "Requests refused (503 UO) by the max_requests circuit breaker",
    ),
    (
        "upstream_cx_overflow",
        "Connections refused by the max_connections circuit breaker",
    ),
    (
        "upstream_cx_connect_timeout",
        "Upstream connections not made within connect_timeout",
    ),
    (
        "upstream_cx_none_healthy",
        "Requests or connections with no healthy host to go to",
    ),
    (
        "update_attempt",
        "DNS resolutions started (DNS clusters), endpoint updates received (EDS clusters)",
    ),
    (
        "update_success",
        "DNS resolutions that answered (DNS clusters), endpoint updates applied (EDS clusters)",
    ),
    (
        "update_failure",
        "DNS resolutions that failed (DNS clusters)",
    ),
    (
        "update_rejected",
        "EDS updates refused (NACKed) (EDS clusters)",
    ),
    (
        "lb_healthy_panic",
        "Picks made over every host because too few were healthy",
    ),
    (
        "outlier_detection_ejections_enforced_total",
        "Hosts ejected",
    ),
    (
        "outlier_detection_ejections_overflow",
        "Ejections not made because of max_ejection_percent",
    ),
    (
        "outlier_detection_ejections_detected_consecutive_5xx",
        "Hosts detected with consecutive 5xx",
    ),
    (
        "outlier_detection_ejections_enforced_consecutive_5xx",
        "Hosts ejected for consecutive 5xx",
    ),
    (
        "outlier_detection_ejections_detected_consecutive_gateway_failure",
        "Hosts detected with consecutive gateway failures",
    ),
    (
        "outlier_detection_ejections_enforced_consecutive_gateway_failure",
        "Hosts ejected for consecutive gateway failures",
    ),
    (
        "outlier_detection_ejections_detected_consecutive_local_origin_failure",
        "Hosts detected with consecutive local-origin failures",
    ),
    (
        "outlier_detection_ejections_enforced_consecutive_local_origin_failure",
        "Hosts ejected for consecutive local-origin failures",
    ),
    (
        "outlier_detection_ejections_detected_success_rate",
        "Hosts detected by success rate",
    ),
    (
        "outlier_detection_ejections_enforced_success_rate",
        "Hosts ejected by success rate",
    ),
    (
        "outlier_detection_ejections_detected_local_origin_success_rate",
        "Hosts detected by local-origin success rate",
    ),
    (
        "outlier_detection_ejections_enforced_local_origin_success_rate",
        "Hosts ejected by local-origin success rate",
    ),
    (
        "outlier_detection_ejections_detected_failure_percentage",
        "Hosts detected by failure percentage",
    ),
    (
        "outlier_detection_ejections_enforced_failure_percentage",
        "Hosts ejected by failure percentage",
    ),
    (
        "outlier_detection_ejections_detected_local_origin_failure_percentage",
        "Hosts detected by local-origin failure percentage",
    ),
    (
        "outlier_detection_ejections_enforced_local_origin_failure_percentage",
        "Hosts ejected by local-origin failure percentage",
    ),
    ("health_check_attempt", "Active health checks started"),
    ("health_check_success", "Active health checks passed"),
    (
        "health_check_failure",
        "Active health checks failed (network failures and timeouts included)",
    ),
    (
        "health_check_network_failure",
        "Active health checks failed by a connection failure or a timeout",
    ),
    (
        "health_check_passive_failure",
        "Hosts failed by outlier detection while health checked",
    ),
    (
        "health_check_verify_cluster",
        "Health checks that verified the upstream cluster name",
    ),
    // ext_authz's counts on the cluster a checked request is routed to (published once counted, as Envoy
    // creates them on first use).
    ("ext_authz_ok", "Requests to this cluster ext_authz allowed"),
    (
        "ext_authz_denied",
        "Requests to this cluster ext_authz denied",
    ),
    (
        "ext_authz_error",
        "Requests to this cluster whose ext_authz check failed",
    ),
    (
        "ext_authz_failure_mode_allowed",
        "Requests to this cluster let through by ext_authz's failure_mode_allow",
    ),
];

/// Gauges of one cluster (default routing priority).
const CLUSTER_GAUGES: &[(&str, &str)] = &[
    (
        "circuit_breakers_default_cx_open",
        "1 while the max_connections breaker is full",
    ),
    (
        "circuit_breakers_default_rq_pending_open",
        "1 while the max_pending_requests breaker is full",
    ),
    (
        "circuit_breakers_default_rq_open",
        "1 while the max_requests breaker is full",
    ),
    (
        "circuit_breakers_default_rq_retry_open",
        "1 while the max_retries breaker is full",
    ),
    (
        "circuit_breakers_default_remaining_cx",
        "Connections left before max_connections (track_remaining)",
    ),
    (
        "circuit_breakers_default_remaining_pending",
        "Pending requests left before max_pending_requests (track_remaining)",
    ),
    (
        "circuit_breakers_default_remaining_rq",
        "Requests left before max_requests (track_remaining)",
    ),
    (
        "circuit_breakers_default_remaining_retries",
        "Retries left before max_retries (track_remaining)",
    ),
    (
        "upstream_rq_active",
        "Requests in flight to the cluster (attached to a connection)",
    ),
    (
        "upstream_rq_pending_active",
        "Requests waiting for a connection",
    ),
    ("membership_total", "Hosts in the cluster"),
    (
        "membership_healthy",
        "Hosts that are healthy and not ejected",
    ),
    ("outlier_detection_ejections_active", "Hosts ejected now"),
    (
        "health_check_healthy",
        "Hosts active health checking finds healthy",
    ),
    (
        "health_check_degraded",
        "Hosts active health checking finds degraded",
    ),
];

/// Counters of the HTTP local rate limit filter, by `stat_prefix`.
const RATE_LIMIT_COUNTERS: &[(&str, &str)] = &[
    ("enabled", "Requests the filter looked at"),
    ("ok", "Requests that found a token"),
    ("rate_limited", "Requests that found no token"),
    ("enforced", "Requests refused with 429"),
];

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let mut families = Families::default();
        registry.register_collector(Box::new(families.clusters.clone()));
        for (name, help) in RATE_LIMIT_COUNTERS {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_local_rate_limit_{name}"),
                *help,
                family.clone(),
            );
            families.rate_limit_counters.push((name, family));
        }
        families
    }

    /// `track_remaining`: publish the `remaining_*` gauges (Envoy has them only then).
    pub fn cluster(&self, name: &str, track_remaining: bool) -> ClusterStats {
        let cells = self.clusters.cells(name, track_remaining);
        let c = |n: &str| {
            let index = CLUSTER_COUNTERS.iter().position(|(c, _)| *c == n);
            debug_assert!(index.is_some(), "counter cluster.{n} is not registered");
            ClusterCounter {
                cells: cells.clone(),
                index: index.unwrap_or(usize::MAX),
            }
        };
        let g = |n: &str| {
            let index = CLUSTER_GAUGES.iter().position(|(g, _)| *g == n);
            debug_assert!(index.is_some(), "gauge cluster.{n} is not registered");
            ClusterGauge {
                cells: cells.clone(),
                index: index.unwrap_or(usize::MAX),
            }
        };
        let remaining = |n: &str| track_remaining.then(|| g(n));
        ClusterStats {
            retry: c("upstream_rq_retry"),
            retry_success: c("upstream_rq_retry_success"),
            retry_overflow: c("upstream_rq_retry_overflow"),
            retry_limit_exceeded: c("upstream_rq_retry_limit_exceeded"),
            retry_backoff_exponential: c("upstream_rq_retry_backoff_exponential"),
            retry_backoff_ratelimited: c("upstream_rq_retry_backoff_ratelimited"),
            retry_or_shadow_abandoned: c("retry_or_shadow_abandoned"),
            per_try_timeout: c("upstream_rq_per_try_timeout"),
            per_try_idle_timeout: c("upstream_rq_per_try_idle_timeout"),
            pending_overflow: c("upstream_rq_pending_overflow"),
            active_overflow: c("upstream_rq_active_overflow"),
            cx_overflow: c("upstream_cx_overflow"),
            cx_connect_timeout: c("upstream_cx_connect_timeout"),
            none_healthy: c("upstream_cx_none_healthy"),
            update_attempt: c("update_attempt"),
            update_success: c("update_success"),
            update_failure: c("update_failure"),
            update_rejected: c("update_rejected"),
            healthy_panic: c("lb_healthy_panic"),
            ext_authz: [
                c("ext_authz_ok"),
                c("ext_authz_denied"),
                c("ext_authz_error"),
                c("ext_authz_failure_mode_allowed"),
            ],
            rq_active: g("upstream_rq_active"),
            rq_pending_active: g("upstream_rq_pending_active"),
            membership_total: g("membership_total"),
            membership_healthy: g("membership_healthy"),
            healthy_by_status: Arc::default(),
            cx_open: g("circuit_breakers_default_cx_open"),
            rq_open: g("circuit_breakers_default_rq_open"),
            rq_pending_open: g("circuit_breakers_default_rq_pending_open"),
            rq_retry_open: g("circuit_breakers_default_rq_retry_open"),
            remaining: remaining("circuit_breakers_default_remaining_cx").and_then(|cx| {
                Some(Remaining {
                    cx,
                    pending: remaining("circuit_breakers_default_remaining_pending")?,
                    rq: remaining("circuit_breakers_default_remaining_rq")?,
                    retries: remaining("circuit_breakers_default_remaining_retries")?,
                })
            }),
            ejections_active: g("outlier_detection_ejections_active"),
            outlier: OutlierStats(c("outlier_detection_ejections_enforced_total").cells),
        }
    }

    /// The `health_check.*` statistics of cluster `name`, published from now on.
    pub fn health_check(&self, name: &str, track_remaining: bool) -> HealthStats {
        let cells = self.clusters.cells(name, track_remaining);
        cells.health_checked.store(true, Ordering::Relaxed);
        let c = |n: &str| ClusterCounter {
            cells: cells.clone(),
            index: CLUSTER_COUNTERS
                .iter()
                .position(|(c, _)| *c == n)
                .unwrap_or(usize::MAX),
        };
        let g = |n: &str| ClusterGauge {
            cells: cells.clone(),
            index: CLUSTER_GAUGES
                .iter()
                .position(|(g, _)| *g == n)
                .unwrap_or(usize::MAX),
        };
        HealthStats {
            attempt: c("health_check_attempt"),
            success: c("health_check_success"),
            failure: c("health_check_failure"),
            network_failure: c("health_check_network_failure"),
            passive_failure: c("health_check_passive_failure"),
            healthy: g("health_check_healthy"),
            degraded: g("health_check_degraded"),
        }
    }

    pub fn local_rate_limit(&self, stat_prefix: &str) -> RateLimitStats {
        let labels = vec![("envoy_local_http_ratelimit_prefix", stat_prefix.to_string())];
        let c = |n: &str| {
            let found = self.rate_limit_counters.iter().find(|(name, _)| *name == n);
            debug_assert!(
                found.is_some(),
                "counter local_rate_limit.{n} is not registered"
            );
            found
                .map(|(_, family)| family.get_or_create(&labels).clone())
                .unwrap_or_default()
        };
        RateLimitStats {
            enabled: c("enabled"),
            ok: c("ok"),
            rate_limited: c("rate_limited"),
            enforced: c("enforced"),
        }
    }
}

/// One cluster's resilience statistics, resolved once.
#[derive(Clone, Default)]
pub struct ClusterStats {
    /// Envoy's per-resolution counts of a DNS cluster (one per endpoint name per refresh).
    pub update_attempt: ClusterCounter,
    pub update_success: ClusterCounter,
    pub update_failure: ClusterCounter,
    pub update_rejected: ClusterCounter,
    pub retry: ClusterCounter,
    pub retry_success: ClusterCounter,
    pub retry_overflow: ClusterCounter,
    pub retry_limit_exceeded: ClusterCounter,
    pub retry_backoff_exponential: ClusterCounter,
    pub retry_backoff_ratelimited: ClusterCounter,
    pub retry_or_shadow_abandoned: ClusterCounter,
    pub per_try_timeout: ClusterCounter,
    pub per_try_idle_timeout: ClusterCounter,
    pub pending_overflow: ClusterCounter,
    pub active_overflow: ClusterCounter,
    pub cx_overflow: ClusterCounter,
    pub cx_connect_timeout: ClusterCounter,
    pub none_healthy: ClusterCounter,
    pub healthy_panic: ClusterCounter,
    /// `ext_authz.{ok,denied,error,failure_mode_allowed}`, in that order.
    pub ext_authz: [ClusterCounter; 4],
    pub rq_active: ClusterGauge,
    pub rq_pending_active: ClusterGauge,
    pub membership_total: ClusterGauge,
    pub membership_healthy: ClusterGauge,
    /// Hosts whose health status lets them take traffic (not exported: `membership_healthy` is this less the
    /// ejected ones).
    healthy_by_status: Arc<AtomicI64>,
    pub cx_open: ClusterGauge,
    pub rq_open: ClusterGauge,
    pub rq_pending_open: ClusterGauge,
    pub rq_retry_open: ClusterGauge,
    /// With `track_remaining` only.
    pub remaining: Option<Remaining>,
    pub ejections_active: ClusterGauge,
    pub outlier: OutlierStats,
}

/// A health-checked cluster's `health_check.*` statistics.
#[derive(Clone, Default)]
pub struct HealthStats {
    pub attempt: ClusterCounter,
    pub success: ClusterCounter,
    pub failure: ClusterCounter,
    pub network_failure: ClusterCounter,
    pub passive_failure: ClusterCounter,
    pub healthy: ClusterGauge,
    pub degraded: ClusterGauge,
}

/// The `remaining_*` gauges of `track_remaining`.
#[derive(Clone, Default)]
pub struct Remaining {
    pub cx: ClusterGauge,
    pub pending: ClusterGauge,
    pub rq: ClusterGauge,
    pub retries: ClusterGauge,
}

impl ClusterStats {
    /// The membership gauges after the hosts changed (`total`, `healthy` by health status) ...
    pub fn set_members(&self, total: usize, healthy: usize) {
        self.membership_total
            .set(i64::try_from(total).unwrap_or(i64::MAX));
        self.healthy_by_status.store(
            i64::try_from(healthy).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        self.publish_healthy();
    }

    /// ... or the number of ejected hosts did.
    pub fn set_ejected(&self, ejected: u64) {
        self.ejections_active
            .set(i64::try_from(ejected).unwrap_or(i64::MAX));
        self.publish_healthy();
    }

    fn publish_healthy(&self) {
        let healthy = self.healthy_by_status.load(Ordering::Relaxed) - self.ejections_active.get();
        self.membership_healthy.set(healthy.max(0));
    }
}

/// The cluster's outlier detection counters, by Envoy's name without `outlier_detection_`.
#[derive(Clone, Debug)]
pub struct OutlierStats(Arc<Cells>);

impl Default for OutlierStats {
    fn default() -> Self {
        Self(Cells::new("", false))
    }
}

impl OutlierStats {
    pub fn get(&self, name: &str) -> Option<ClusterCounter> {
        let index = CLUSTER_COUNTERS
            .iter()
            .position(|(n, _)| n.strip_prefix("outlier_detection_") == Some(name))?;
        Some(ClusterCounter {
            cells: self.0.clone(),
            index,
        })
    }
}

#[derive(Clone, Default)]
pub struct RateLimitStats {
    pub enabled: Counter,
    pub ok: Counter,
    pub rate_limited: Counter,
    pub enforced: Counter,
}
