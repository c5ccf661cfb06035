//! The tracers' statistics, process-wide as Envoy's are: `tracing.opentelemetry.spans_sent` and
//! `tracing.zipkin.spans_sent` (Envoy's names), and ours beside them for what Envoy does not count the same
//! way: `spans_dropped` (the export queue was full) and `spans_failed` (the collector refused or did not answer).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

#[derive(Default)]
pub struct ProviderStats {
    pub spans_sent: Counter,
    pub spans_dropped: Counter,
    pub spans_failed: Counter,
}

/// Envoy's `tracing.datadog.*`: uploads to the agent (`reports_sent`: answered 200; `reports_dropped`: answered
/// otherwise; `reports_failed`: no answer).
#[derive(Default)]
pub struct DatadogReports {
    pub sent: Counter,
    pub dropped: Counter,
    pub failed: Counter,
}

/// SkyWalking's cache of segments the collector did not take: how often it was sent, and how many segments.
#[derive(Default)]
pub struct CacheStats {
    pub cache_flushed: Counter,
    pub segments_flushed: Counter,
}

#[derive(Default)]
pub struct Stats {
    pub opentelemetry: ProviderStats,
    pub zipkin: ProviderStats,
    /// Spans; the Datadog tracer's uploads are counted in `datadog_reports`.
    pub datadog: ProviderStats,
    pub datadog_reports: DatadogReports,
    /// Segments, not spans: `tracing.skywalking.segments_sent` and `segments_dropped` (Envoy's names).
    pub skywalking: ProviderStats,
    pub skywalking_cache: CacheStats,
    /// `http.<stat_prefix>.tracing.{random_sampling,service_forced,client_enabled,not_traceable}`: the
    /// connection manager's decisions, by reason (Envoy's names).
    pub decisions: [Family<crate::metrics::Labels, Counter>; 4],
}

/// The decision counters' names, in `Reason` order (`decision::Reason::index`).
pub const DECISIONS: [&str; 4] = [
    "not_traceable",
    "random_sampling",
    "service_forced",
    "client_enabled",
];

/// One connection manager's decision counters, resolved once.
pub fn decision_counters(stat_prefix: &str) -> [Counter; 4] {
    let labels = crate::metrics::connection_manager(stat_prefix);
    let d = &stats().decisions;
    [0, 1, 2, 3].map(|i| d[i].get_or_create(&labels).clone())
}

pub fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(Stats::default)
}

pub fn register(registry: &mut Registry) {
    let s = stats();
    for (name, family) in DECISIONS.iter().zip(&s.decisions) {
        registry.register(
            format!("envoy_http_tracing_{name}"),
            "Trace decisions of the connection manager, by reason",
            family.clone(),
        );
    }
    let r = &s.datadog_reports;
    for (name, help, counter) in [
        (
            "reports_sent",
            "Uploads the Datadog agent accepted",
            &r.sent,
        ),
        (
            "reports_dropped",
            "Uploads the Datadog agent refused",
            &r.dropped,
        ),
        ("reports_failed", "Uploads that got no answer", &r.failed),
    ] {
        registry.register(
            format!("envoy_tracing_datadog_{name}"),
            help,
            counter.clone(),
        );
    }
    let sky = &s.skywalking;
    for (name, help, counter) in [
        (
            "segments_sent",
            "Segments the SkyWalking collector accepted",
            &sky.spans_sent,
        ),
        (
            "segments_dropped",
            "Segments dropped: the export queue or the cache for an absent collector was full",
            &sky.spans_dropped,
        ),
        (
            "cache_flushed",
            "Times cached segments reached the collector",
            &s.skywalking_cache.cache_flushed,
        ),
        (
            "segments_flushed",
            "Cached segments that reached the collector",
            &s.skywalking_cache.segments_flushed,
        ),
    ] {
        registry.register(
            format!("envoy_tracing_skywalking_{name}"),
            help,
            counter.clone(),
        );
    }
    for (provider, p) in [
        ("opentelemetry", &s.opentelemetry),
        ("zipkin", &s.zipkin),
        ("datadog", &s.datadog),
    ] {
        let entries = [
            ("spans_sent", "Spans the collector accepted", &p.spans_sent),
            (
                "spans_dropped",
                "Spans dropped because the export queue was full",
                &p.spans_dropped,
            ),
            (
                "spans_failed",
                "Spans lost because an export failed",
                &p.spans_failed,
            ),
        ];
        for (name, help, counter) in entries {
            registry.register(
                format!("envoy_tracing_{provider}_{name}"),
                help,
                counter.clone(),
            );
        }
    }
}
