//! Active health checking of one cluster, as Envoy 1.40 does it: a task per host probes it (`probe.rs`) off the
//! request path, and each result moves the host between healthy and `FAILED_ACTIVE_HC`.
//!
//! - A host starts failed (Envoy's rule for a health-checked cluster) and its first check starts at once (after
//!   `initial_jitter`); its very first success makes it healthy.
//! - A success resets the failures; `healthy_threshold` successes in a row bring a failed host back.
//! - A network failure or timeout (or a `retriable_statuses` answer) counts towards `unhealthy_threshold`; any
//!   other wrong answer (an unexpected HTTP status, a gRPC answer other than SERVING) fails the host at once.
//! - The next check waits `interval`, or `unhealthy_interval` while failed, `healthy_edge_interval` /
//!   `unhealthy_edge_interval` while a change is pending, or `no_traffic_interval` (`no_traffic_healthy_interval`
//!   for a healthy host) until the cluster has opened a connection for traffic; plus the jitters.
//!
//! The tasks hold no reference to the checker's owner: dropping the checker (the cluster removed, or replaced by
//! an update) aborts them.

mod probe;

use super::Target;
use super::ejections::Ejections;
use crate::metrics::HealthStats;
use outrigger_config::model::health_check::HealthCheck;
use probe::{Destination, Probe, Verdict};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::UpstreamTls;

/// One host's health as the checks see it.
#[derive(Default)]
pub struct HostHealth {
    /// `FAILED_ACTIVE_HC`.
    failed: AtomicBool,
    /// `DEGRADED_ACTIVE_HC`: the last passed check answered with `x-envoy-degraded`.
    degraded: AtomicBool,
    /// `ACTIVE_HC_TIMEOUT`: a timeout made the host fail (until it is healthy again).
    timed_out: AtomicBool,
}

impl HostHealth {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// What every session of the cluster shares.
struct Shared {
    config: Arc<HealthCheck>,
    cluster: String,
    stats: HealthStats,
    /// `upstream_cx_total`: until it moves, the no-traffic intervals apply.
    traffic: Counter,
    /// Hosts failed now (to skip the per-host lookups when there are none).
    failing: AtomicUsize,
    degraded: AtomicUsize,
    /// Outlier detection, when a passed check brings an ejected host back (`successful_active_health_check_uneject_host`).
    unejects: Option<Arc<Ejections>>,
}

pub struct HealthChecker {
    shared: Arc<Shared>,
    /// By address; each with the task checking it.
    hosts: Mutex<HashMap<SocketAddr, (Arc<HostHealth>, tokio::task::AbortHandle)>>,
    transports: Vec<Option<UpstreamTls>>,
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        if let Ok(hosts) = self.hosts.lock() {
            for (_, task) in hosts.values() {
                task.abort();
            }
        }
    }
}

impl HealthChecker {
    pub fn new(
        config: HealthCheck,
        cluster: &str,
        stats: HealthStats,
        traffic: Counter,
        transports: Vec<Option<UpstreamTls>>,
        unejects: Option<Arc<Ejections>>,
    ) -> Self {
        stats.healthy.set(0);
        stats.degraded.set(0);
        Self {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                cluster: cluster.to_string(),
                stats,
                traffic,
                failing: AtomicUsize::new(0),
                degraded: AtomicUsize::new(0),
                unejects,
            }),
            hosts: Mutex::default(),
            transports,
        }
    }

    /// Follows the cluster's hosts: a new one starts failed with its checks, a removed one's checks stop.
    pub fn set_hosts(&self, targets: &[Target]) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        hosts.retain(|address, (health, task)| {
            let keep = targets.iter().any(|t| t.address == *address);
            if !keep {
                task.abort();
                self.shared.forget(health);
            }
            keep
        });
        for target in targets {
            if hosts.contains_key(&target.address) {
                continue;
            }
            let health = Arc::new(HostHealth {
                failed: AtomicBool::new(true),
                ..HostHealth::default()
            });
            self.shared.failing.fetch_add(1, Ordering::Relaxed);
            let destination = self.destination(target);
            let task = runtime.spawn(session(
                self.shared.clone(),
                health.clone(),
                target.address,
                destination,
            ));
            hosts.insert(target.address, (health, task.abort_handle()));
        }
    }

    fn destination(&self, target: &Target) -> Destination {
        let check = target.health_check.as_deref();
        let address = check.and_then(|c| c.address).unwrap_or(target.address);
        let address = match check.map(|c| c.port) {
            Some(port) if port != 0 => SocketAddr::new(address.ip(), port),
            _ => address,
        };
        let configured = match &self.shared.config.checker {
            outrigger_config::model::health_check::Checker::Http(h) => h.host.as_str(),
            outrigger_config::model::health_check::Checker::Grpc(g) => g.authority.as_str(),
            outrigger_config::model::health_check::Checker::Tcp(_) => "",
        };
        // Envoy's order: the endpoint's `health_check_config.hostname`, the checker's own, the cluster's name.
        let authority = [
            check.map(|c| c.hostname.as_str()).unwrap_or_default(),
            configured,
        ]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or(&self.shared.cluster)
        .to_string();
        Destination {
            address,
            authority,
            tls: self.transports.get(target.transport).cloned().flatten(),
        }
    }

    /// Whether any host is failed or degraded now (else the per-host lookups are skipped).
    pub fn any_unhealthy(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed) > 0
            || self.shared.degraded.load(Ordering::Relaxed) > 0
    }

    pub fn host(&self, address: SocketAddr) -> Option<Arc<HostHealth>> {
        self.hosts
            .lock()
            .ok()
            .and_then(|h| h.get(&address).map(|(health, _)| health.clone()))
    }

    /// Every host's health, for one pick (one lock, not one per host).
    pub fn snapshot(&self) -> HashMap<SocketAddr, Arc<HostHealth>> {
        self.hosts
            .lock()
            .map(|h| {
                h.iter()
                    .map(|(a, (health, _))| (*a, health.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Shared {
    /// A removed host no longer counts in the gauges.
    fn forget(&self, health: &HostHealth) {
        if health.failed() {
            self.failing.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.stats.healthy.dec();
        }
        if health.degraded() {
            self.degraded.fetch_sub(1, Ordering::Relaxed);
            self.stats.degraded.dec();
        }
    }

    fn interval(&self, failed: bool, pending: bool) -> Duration {
        let c = &self.config;
        let base = if self.traffic.get() == 0 {
            if failed || pending {
                c.no_traffic_interval
            } else {
                c.no_traffic_healthy_interval
            }
        } else {
            match (failed, pending) {
                // A failed host on its way back, or a healthy one on its way out.
                (true, true) => c.healthy_edge_interval,
                (false, true) => c.unhealthy_edge_interval,
                (true, false) => c.unhealthy_interval,
                (false, false) => c.interval,
            }
        };
        with_jitter(base, c.interval_jitter, c.interval_jitter_percent)
    }
}

/// Envoy's jitter: up to `jitter` (exclusive) plus up to `percent` of the interval, in whole milliseconds.
fn with_jitter(base: Duration, jitter: Duration, percent: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let mut total = base_ms;
    let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(0);
    if jitter_ms > 0 {
        total = total.saturating_add(fastrand::u64(..jitter_ms));
    }
    let share = u64::from(percent).saturating_mul(base_ms) / 100;
    if share > 0 {
        total = total.saturating_add(fastrand::u64(..share));
    }
    Duration::from_millis(total.max(1))
}

/// Where a host stands between checks.
#[derive(Default)]
struct Streak {
    /// No result yet: the first success makes the host healthy at once.
    first_done: bool,
    successes: u32,
    failures: u32,
}

/// Checks one host until aborted.
async fn session(
    shared: Arc<Shared>,
    health: Arc<HostHealth>,
    address: SocketAddr,
    destination: Destination,
) {
    let config = shared.config.clone();
    let jitter = u64::try_from(config.initial_jitter.as_millis()).unwrap_or(0);
    if jitter > 0 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(..jitter))).await;
    }
    let mut probe = Probe::new(config.clone(), destination);
    let mut streak = Streak::default();
    loop {
        shared.stats.attempt.inc();
        let (verdict, timed_out) = match tokio::time::timeout(config.timeout, probe.check()).await {
            Ok(verdict) => (verdict, false),
            Err(_) => {
                probe.abandon();
                (Verdict::Network, true)
            }
        };
        let transition = apply(&shared, &health, address, &mut streak, verdict);
        if timed_out && transition == Transition::Changed && health.failed() {
            health.timed_out.store(true, Ordering::Relaxed);
        }
        let pending = transition == Transition::Pending;
        tokio::time::sleep(shared.interval(health.failed(), pending)).await;
    }
}

/// What one result did to the host's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transition {
    Unchanged,
    /// Counted towards a threshold not reached yet.
    Pending,
    Changed,
}

/// Applies one result.
fn apply(
    shared: &Shared,
    health: &HostHealth,
    address: SocketAddr,
    streak: &mut Streak,
    verdict: Verdict,
) -> Transition {
    let config = &shared.config;
    let first = !streak.first_done;
    streak.first_done = true;
    match verdict {
        Verdict::Pass { degraded } => {
            streak.failures = 0;
            shared.stats.success.inc();
            let mut transition = Transition::Unchanged;
            if health.failed() {
                streak.successes += 1;
                if first || streak.successes >= config.healthy_threshold {
                    health.failed.store(false, Ordering::Relaxed);
                    health.timed_out.store(false, Ordering::Relaxed);
                    shared.failing.fetch_sub(1, Ordering::Relaxed);
                    shared.stats.healthy.inc();
                    tracing::info!(cluster = %shared.cluster, host = %address, "active health checking: healthy");
                    transition = Transition::Changed;
                } else {
                    transition = Transition::Pending;
                }
            }
            if degraded != health.degraded.swap(degraded, Ordering::Relaxed) {
                if degraded {
                    shared.degraded.fetch_add(1, Ordering::Relaxed);
                    shared.stats.degraded.inc();
                } else {
                    shared.degraded.fetch_sub(1, Ordering::Relaxed);
                    shared.stats.degraded.dec();
                }
            }
            if let Some(ejections) = &shared.unejects {
                ejections.uneject(address);
            }
            transition
        }
        Verdict::Active { .. } | Verdict::Network => {
            streak.successes = 0;
            shared.stats.failure.inc();
            if verdict == Verdict::Network {
                shared.stats.network_failure.inc();
            }
            if health.failed() {
                return Transition::Unchanged;
            }
            streak.failures += 1;
            let at_once = matches!(verdict, Verdict::Active { retriable: false });
            if at_once || streak.failures >= config.unhealthy_threshold {
                health.failed.store(true, Ordering::Relaxed);
                shared.failing.fetch_add(1, Ordering::Relaxed);
                shared.stats.healthy.dec();
                tracing::info!(cluster = %shared.cluster, host = %address, "active health checking: unhealthy");
                Transition::Changed
            } else {
                Transition::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::model::health_check::{Checker, TcpCheck};

    fn shared(unhealthy: u32, healthy: u32) -> Shared {
        let config = HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(10),
            initial_jitter: Duration::ZERO,
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            no_traffic_interval: Duration::from_secs(60),
            no_traffic_healthy_interval: Duration::from_secs(70),
            unhealthy_interval: Duration::from_secs(20),
            unhealthy_edge_interval: Duration::from_secs(30),
            healthy_edge_interval: Duration::from_secs(40),
            reuse_connection: true,
            checker: Checker::Tcp(TcpCheck {
                send: vec![],
                receive: vec![],
            }),
        };
        Shared {
            config: Arc::new(config),
            cluster: "c".into(),
            stats: HealthStats::default(),
            traffic: Counter::default(),
            failing: AtomicUsize::new(1),
            degraded: AtomicUsize::new(0),
            unejects: None,
        }
    }

    const HOST: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
    const PASS: Verdict = Verdict::Pass { degraded: false };

    #[test]
    fn thresholds_and_the_first_check() {
        let shared = shared(3, 2);
        let health = HostHealth {
            failed: AtomicBool::new(true),
            ..HostHealth::default()
        };
        let mut streak = Streak::default();
        // The first success is enough.
        assert_ne!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, PASS)
        );
        assert!(!health.failed());
        // Network failures count to three.
        assert_eq!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, Verdict::Network)
        );
        assert_eq!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, Verdict::Network)
        );
        assert_ne!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, Verdict::Network)
        );
        assert!(health.failed());
        // Two successes to come back.
        assert_eq!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, PASS)
        );
        assert!(health.failed());
        assert_ne!(
            Transition::Pending,
            apply(&shared, &health, HOST, &mut streak, PASS)
        );
        assert!(!health.failed());
        // A retriable status counts; a plain wrong status fails at once.
        assert_eq!(
            Transition::Pending,
            apply(
                &shared,
                &health,
                HOST,
                &mut streak,
                Verdict::Active { retriable: true }
            )
        );
        assert_ne!(
            Transition::Pending,
            apply(
                &shared,
                &health,
                HOST,
                &mut streak,
                Verdict::Active { retriable: false }
            )
        );
        assert!(health.failed());
    }

    #[test]
    fn intervals_follow_health_and_traffic() {
        let shared = shared(3, 2);
        assert_eq!(shared.interval(false, false), Duration::from_secs(70));
        assert_eq!(shared.interval(true, false), Duration::from_secs(60));
        shared.traffic.inc();
        assert_eq!(shared.interval(false, false), Duration::from_secs(10));
        assert_eq!(shared.interval(true, false), Duration::from_secs(20));
        assert_eq!(shared.interval(false, true), Duration::from_secs(30));
        assert_eq!(shared.interval(true, true), Duration::from_secs(40));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        for _ in 0..100 {
            let d = with_jitter(Duration::from_millis(1000), Duration::from_millis(50), 10);
            assert!((1000..1150).contains(&d.as_millis()), "{d:?}");
        }
    }
}
