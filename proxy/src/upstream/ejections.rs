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
    stats: Arc<ClusterStats>,
    /// The counters last published, to add only what changed.
    published: Mutex<Counters>,
}

impl Ejections {
    pub fn new(config: &OutlierDetection, stats: Arc<ClusterStats>) -> Arc<Self> {
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
        // Only a failure can move a consecutive-error detector (and so a statistic) between sweeps; a success
        // costs no publishing on the hot path. The rate analyses publish at their sweep.
        if is_failure(outcome) {
            self.publish();
        }
    }

    /// A passed active health check brings an ejected host back.
    pub fn uneject(&self, host: SocketAddr) {
        if self.detector.uneject(host, Instant::now()) {
            tracing::info!(%host, "a passed active health check brought an ejected host back");
            self.publish();
        }
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

fn is_failure(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Status(status) => status >= 500,
        Outcome::ConnectFailed | Outcome::Timeout | Outcome::Reset => true,
        Outcome::LocalSuccess => false,
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
        enforcing_local_origin_success_rate: c.enforcing_local_origin_success_rate,
        enforcing_failure_percentage_local_origin: c.enforcing_failure_percentage_local_origin,
        max_ejection_time_jitter: c.max_ejection_time_jitter,
        always_eject_one_host: c.always_eject_one_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting of the model reaches the detector (none is left at its default by mistake).
    #[test]
    fn every_configured_setting_reaches_the_detector() {
        let yaml = r#"
static_resources:
  clusters:
  - name: c
    outlier_detection:
      consecutive_5xx: 7
      enforcing_consecutive_5xx: 91
      consecutive_gateway_failure: 8
      enforcing_consecutive_gateway_failure: 92
      consecutive_local_origin_failure: 9
      enforcing_consecutive_local_origin_failure: 93
      split_external_local_origin_errors: true
      interval: 2s
      base_ejection_time: 3s
      max_ejection_time: 4s
      max_ejection_time_jitter: 5s
      max_ejection_percent: 94
      always_eject_one_host: true
      enforcing_success_rate: 95
      enforcing_local_origin_success_rate: 96
      success_rate_minimum_hosts: 10
      success_rate_request_volume: 11
      success_rate_stdev_factor: 12
      enforcing_failure_percentage: 97
      enforcing_failure_percentage_local_origin: 98
      failure_percentage_threshold: 99
      failure_percentage_minimum_hosts: 13
      failure_percentage_request_volume: 14
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 198.18.0.1, port_value: 80}}}}]}]}
"#;
        let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
            .expect("loads");
        let model = loaded.snapshot.clusters[0]
            .outlier_detection
            .clone()
            .expect("configured");
        let d = detector_config(&model);
        let expected = Config {
            consecutive_5xx: 7,
            enforcing_consecutive_5xx: 91,
            consecutive_gateway_failure: 8,
            enforcing_consecutive_gateway_failure: 92,
            consecutive_local_origin_failure: 9,
            enforcing_consecutive_local_origin_failure: 93,
            split_external_local_origin_errors: true,
            interval: std::time::Duration::from_secs(2),
            base_ejection_time: std::time::Duration::from_secs(3),
            max_ejection_time: std::time::Duration::from_secs(4),
            max_ejection_time_jitter: std::time::Duration::from_secs(5),
            max_ejection_percent: 94,
            always_eject_one_host: true,
            enforcing_success_rate: 95,
            enforcing_local_origin_success_rate: 96,
            success_rate_minimum_hosts: 10,
            success_rate_request_volume: 11,
            success_rate_stdev_factor: 12,
            enforcing_failure_percentage: 97,
            enforcing_failure_percentage_local_origin: 98,
            failure_percentage_threshold: 99,
            failure_percentage_minimum_hosts: 13,
            failure_percentage_request_volume: 14,
        };
        assert_eq!(d, expected);
    }
}
