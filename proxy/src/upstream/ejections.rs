//! Outlier detection in a running cluster: the detector (`outlier.rs`, pure logic) fed with each request's
//! outcome, swept every `interval` on a timer, and its counters published under Envoy's names.

use super::outlier::{Config, Counters, Detector, Outcome};
use crate::metrics::ClusterStats;
use outrigger_config::model::cluster::OutlierDetection;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

pub struct Ejections {
    detector: Detector,
    interval: std::time::Duration,
    stats: ClusterStats,
    /// The counters last published, to add only what changed.
    published: Mutex<Counters>,
}

impl Ejections {
    pub fn new(config: &OutlierDetection, stats: ClusterStats) -> Arc<Self> {
        Arc::new(Self {
            detector: Detector::new(detector_config(config)),
            interval: config.interval,
            stats,
            published: Mutex::default(),
        })
    }

    pub fn report(&self, host: SocketAddr, outcome: Outcome) {
        if let Some(kind) = self.detector.report(host, outcome, Instant::now()) {
            tracing::info!(%host, reason = kind.as_str(), "outlier detection ejected a host");
        }
        self.publish();
    }

    pub fn is_ejected(&self, host: SocketAddr) -> bool {
        self.detector.is_ejected(host)
    }

    pub fn ejected_count(&self) -> usize {
        self.detector.ejected_count()
    }

    pub fn set_hosts(&self, hosts: &[SocketAddr]) {
        self.detector.set_hosts(hosts);
    }

    /// Sweeps every `interval` while the cluster lives; `hosts` gives its current endpoints.
    pub fn start(self: &Arc<Self>, hosts: impl Fn() -> Vec<SocketAddr> + Send + 'static) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                let sweep = this.detector.sweep(Instant::now(), &hosts());
                for host in &sweep.unejected {
                    tracing::info!(%host, "outlier detection brought a host back");
                }
                for (host, kind) in &sweep.ejected {
                    tracing::info!(%host, reason = kind.as_str(), "outlier detection ejected a host");
                }
                this.publish();
            }
        });
    }

    fn publish(&self) {
        let now = self.detector.counters();
        let Ok(mut last) = self.published.lock() else {
            return;
        };
        self.stats.set_ejected(now.ejections_active);
        for (name, value, before) in fields(&now, &last) {
            if value > before
                && let Some(counter) = self.stats.outlier.get(name)
            {
                counter.inc_by(value - before);
            }
        }
        *last = now;
    }
}

/// Each counter's Envoy name (after `outlier_detection_`), now and before.
fn fields(now: &Counters, last: &Counters) -> Vec<(&'static str, u64, u64)> {
    macro_rules! pairs {
        ($($field:ident),*) => {
            vec![$((stringify!($field), now.$field, last.$field)),*]
        };
    }
    pairs!(
        ejections_enforced_total,
        ejections_overflow,
        ejections_detected_consecutive_5xx,
        ejections_detected_consecutive_gateway_failure,
        ejections_detected_consecutive_local_origin_failure,
        ejections_detected_success_rate,
        ejections_detected_local_origin_success_rate,
        ejections_detected_failure_percentage,
        ejections_detected_local_origin_failure_percentage,
        ejections_enforced_consecutive_5xx,
        ejections_enforced_consecutive_gateway_failure,
        ejections_enforced_consecutive_local_origin_failure,
        ejections_enforced_success_rate,
        ejections_enforced_local_origin_success_rate,
        ejections_enforced_failure_percentage,
        ejections_enforced_local_origin_failure_percentage
    )
}

fn detector_config(c: &OutlierDetection) -> Config {
    Config {
        consecutive_5xx: c.consecutive_5xx,
        enforcing_consecutive_5xx: c.enforcing_consecutive_5xx,
        consecutive_gateway_failure: c.consecutive_gateway_failure,
        enforcing_consecutive_gateway_failure: c.enforcing_consecutive_gateway_failure,
        consecutive_local_origin_failure: c.consecutive_local_origin_failure,
        enforcing_consecutive_local_origin_failure: c.enforcing_consecutive_local_origin_failure,
        split_external_local_origin_errors: c.split_external_local_origin_errors,
        interval: c.interval,
        base_ejection_time: c.base_ejection_time,
        max_ejection_time: c.max_ejection_time,
        max_ejection_percent: c.max_ejection_percent,
        enforcing_success_rate: c.enforcing_success_rate,
        success_rate_minimum_hosts: c.success_rate_minimum_hosts,
        success_rate_request_volume: c.success_rate_request_volume,
        success_rate_stdev_factor: c.success_rate_stdev_factor,
        enforcing_failure_percentage: c.enforcing_failure_percentage,
        failure_percentage_threshold: c.failure_percentage_threshold,
        failure_percentage_minimum_hosts: c.failure_percentage_minimum_hosts,
        failure_percentage_request_volume: c.failure_percentage_request_volume,
        ..Config::default()
    }
}
