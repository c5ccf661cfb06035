//! Statistics of the resilience layers (retries, circuit breakers, outlier detection, local rate limits), with
//! Envoy's names, and the per-cluster handles resolved once so a request never builds or hashes a label set.

use super::Labels;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The families; one series per cluster (or per rate-limit prefix).
#[derive(Default)]
pub struct Families {
    /// Per cluster: keyed by the cluster's name alone, shared by all its series (a mesh of thousands of clusters
    /// has about fifty series each, so a label set allocated per series would cost megabytes).
    cluster_counters: Vec<(&'static str, Family<ClusterLabel, Counter>)>,
    cluster_gauges: Vec<(&'static str, Family<ClusterLabel, Gauge>)>,
    rate_limit_counters: Vec<(&'static str, Family<Labels, Counter>)>,
}

/// `envoy_cluster_name="<name>"`, the name shared by every series of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterLabel(Arc<str>);

impl EncodeLabelSet for ClusterLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("envoy_cluster_name", &*self.0).encode(encoder.encode_label())
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
        for (name, help) in CLUSTER_COUNTERS {
            let family = Family::<ClusterLabel, Counter>::default();
            // The encoder adds `_total` to every counter: an Envoy name that has it already must not get two.
            let registered = name.strip_suffix("_total").unwrap_or(name);
            registry.register(format!("envoy_cluster_{registered}"), *help, family.clone());
            families.cluster_counters.push((name, family));
        }
        for (name, help) in CLUSTER_GAUGES {
            let family = Family::<ClusterLabel, Gauge>::default();
            registry.register(format!("envoy_cluster_{name}"), *help, family.clone());
            families.cluster_gauges.push((name, family));
        }
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

    fn counter(&self, name: &str, label: &ClusterLabel) -> Counter {
        let found = self.cluster_counters.iter().find(|(n, _)| *n == name);
        debug_assert!(found.is_some(), "counter cluster.{name} is not registered");
        found
            .map(|(_, family)| family.get_or_create(label).clone())
            .unwrap_or_default()
    }

    fn gauge(&self, name: &str, label: &ClusterLabel) -> Gauge {
        let found = self.cluster_gauges.iter().find(|(n, _)| *n == name);
        debug_assert!(found.is_some(), "gauge {name} is not registered");
        found
            .map(|(_, family)| family.get_or_create(label).clone())
            .unwrap_or_default()
    }

    /// `track_remaining`: publish the `remaining_*` gauges (Envoy has them only then).
    pub fn cluster(&self, name: &str, track_remaining: bool) -> ClusterStats {
        let label = ClusterLabel(Arc::from(name));
        let remaining = |n: &str| track_remaining.then(|| self.gauge(n, &label));
        let c = |n: &str| self.counter(n, &label);
        let g = |n: &str| self.gauge(n, &label);
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
            outlier: OutlierStats(
                CLUSTER_COUNTERS
                    .iter()
                    .filter_map(|(n, _)| Some((n.strip_prefix("outlier_detection_")?, c(n))))
                    .collect(),
            ),
        }
    }

    pub fn local_rate_limit(&self, stat_prefix: &str) -> RateLimitStats {
        let labels = vec![("envoy_local_http_ratelimit_prefix", stat_prefix.to_string())];
        let c = |n: &str| {
            let found = self.rate_limit_counters.iter().find(|(name, _)| *name == n);
            debug_assert!(found.is_some(), "counter local_rate_limit.{n} is not registered");
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
    pub update_attempt: Counter,
    pub update_success: Counter,
    pub update_failure: Counter,
    pub update_rejected: Counter,
    pub retry: Counter,
    pub retry_success: Counter,
    pub retry_overflow: Counter,
    pub retry_limit_exceeded: Counter,
    pub retry_backoff_exponential: Counter,
    pub retry_backoff_ratelimited: Counter,
    pub retry_or_shadow_abandoned: Counter,
    pub per_try_timeout: Counter,
    pub per_try_idle_timeout: Counter,
    pub pending_overflow: Counter,
    pub active_overflow: Counter,
    pub cx_overflow: Counter,
    pub cx_connect_timeout: Counter,
    pub none_healthy: Counter,
    pub healthy_panic: Counter,
    pub rq_active: Gauge,
    pub rq_pending_active: Gauge,
    pub membership_total: Gauge,
    pub membership_healthy: Gauge,
    /// Hosts whose health status lets them take traffic (not exported: `membership_healthy` is this less the
    /// ejected ones).
    healthy_by_status: Arc<AtomicI64>,
    pub cx_open: Gauge,
    pub rq_open: Gauge,
    pub rq_pending_open: Gauge,
    pub rq_retry_open: Gauge,
    /// With `track_remaining` only.
    pub remaining: Option<Remaining>,
    pub ejections_active: Gauge,
    pub outlier: OutlierStats,
}

/// Outlier detection counters by Envoy's name without the `outlier_detection_` prefix
/// (`ejections_enforced_total`, `ejections_detected_consecutive_5xx`, ...).
/// The `remaining_*` gauges of `track_remaining`.
#[derive(Clone, Default)]
pub struct Remaining {
    pub cx: Gauge,
    pub pending: Gauge,
    pub rq: Gauge,
    pub retries: Gauge,
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

/// Shared by every clone of the cluster's statistics (the breaker's, outlier detection's).
#[derive(Clone, Default)]
pub struct OutlierStats(pub Arc<[(&'static str, Counter)]>);

impl OutlierStats {
    pub fn get(&self, name: &str) -> Option<&Counter> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }
}

#[derive(Clone, Default)]
pub struct RateLimitStats {
    pub enabled: Counter,
    pub ok: Counter,
    pub rate_limited: Counter,
    pub enforced: Counter,
}
