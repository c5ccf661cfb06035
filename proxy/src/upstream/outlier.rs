//! Passive outlier detection: Envoy's consecutive-error, success-rate and failure-percentage ejections, as pure
//! logic. The caller reports each request's outcome, calls [`Detector::sweep`] every `interval`, and skips hosts
//! for which [`Detector::is_ejected`] is true (unless its load balancer is in panic).
//!
//! It follows Envoy's source (`outlier_detection_impl.cc`) where that differs from Envoy's documentation:
//! - the max-ejection-percent check counts the host about to be ejected (`100 * (ejected + 1) / hosts`), so
//!   with the default 10% a cluster of fewer than 10 hosts ejects nobody unless `always_eject_one_host`;
//! - that check comes before the enforcement roll, so `ejections_overflow` counts detections refused for the
//!   cap even when enforcement would have said no anyway;
//! - a host is brought back only by a sweep, so an ejection lasts up to one `interval` longer than its time;
//! - a consecutive-error detection on a host that is already ejected is ignored (no stat, no ejection
//!   attempt); its runs are zeroed when it comes back.
//!
//! Time is a parameter (`now`), never read here, so tests are deterministic; randomness is used only for
//! enforcement percentages strictly between 0 and 100 and for the ejection jitter.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The detector's settings: the model's `OutlierDetection` field for field, plus the fields it does not carry
/// (yet). Percentages are whole percents; `Default` is Envoy's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Consecutive 5xx (and, without split mode, local failures) that detect an outlier; 0 disables.
    pub consecutive_5xx: u32,
    pub enforcing_consecutive_5xx: u32,
    /// Consecutive 502/503/504 (and, without split mode, local failures) that detect an outlier; 0 disables.
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    /// Consecutive local-origin failures (split mode only) that detect an outlier; 0 disables.
    pub consecutive_local_origin_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Keep connect failures, timeouts and resets apart from the upstream's own 5xx.
    pub split_external_local_origin_errors: bool,
    /// Time between sweeps; also how long a host must be back before its ejection multiplier decays.
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// Up to this much is added at random to each ejection, so hosts ejected together do not return together.
    pub max_ejection_time_jitter: Duration,
    pub max_ejection_percent: u32,
    /// Allow one ejection even when `max_ejection_percent` would refuse it.
    pub always_eject_one_host: bool,
    pub enforcing_success_rate: u32,
    pub enforcing_local_origin_success_rate: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    /// The threshold is `mean - success_rate_stdev_factor / 1000 * stdev`.
    pub success_rate_stdev_factor: u32,
    pub enforcing_failure_percentage: u32,
    pub enforcing_failure_percentage_local_origin: u32,
    pub failure_percentage_threshold: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            consecutive_local_origin_failure: 5,
            enforcing_consecutive_local_origin_failure: 100,
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
            enforcing_success_rate: 100,
            enforcing_local_origin_success_rate: 100,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            failure_percentage_threshold: 85,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
        }
    }
}

impl Config {
    fn enforcing(&self, kind: EjectionType) -> u32 {
        use EjectionType::*;
        match kind {
            Consecutive5xx => self.enforcing_consecutive_5xx,
            ConsecutiveGatewayFailure => self.enforcing_consecutive_gateway_failure,
            ConsecutiveLocalOriginFailure => self.enforcing_consecutive_local_origin_failure,
            SuccessRate => self.enforcing_success_rate,
            LocalOriginSuccessRate => self.enforcing_local_origin_success_rate,
            FailurePercentage => self.enforcing_failure_percentage,
            FailurePercentageLocalOrigin => self.enforcing_failure_percentage_local_origin,
        }
    }
}

/// What happened to one request (or connection attempt) to a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status: an external result, even in split mode.
    Status(u16),
    /// The connection could not be established. Without split mode: a 503.
    ConnectFailed,
    /// Connect or response timeout. Without split mode: a 504.
    Timeout,
    /// Connection or stream reset before a response. Without split mode: a 503.
    Reset,
    /// The connection was established. In split mode this is the local-origin success, the only thing that
    /// resets the local-origin counter; otherwise it is ignored, as the response that follows is what counts.
    LocalSuccess,
}

/// Why a host was found an outlier (Envoy's `OutlierEjectionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EjectionType {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
    LocalOriginSuccessRate,
    FailurePercentage,
    FailurePercentageLocalOrigin,
}

impl EjectionType {
    /// The suffix of Envoy's `ejections_detected_*` and `ejections_enforced_*` stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consecutive5xx => "consecutive_5xx",
            Self::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Self::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Self::SuccessRate => "success_rate",
            Self::LocalOriginSuccessRate => "local_origin_success_rate",
            Self::FailurePercentage => "failure_percentage",
            // Envoy's stat name, though the enum value is FAILURE_PERCENTAGE_LOCAL_ORIGIN.
            Self::FailurePercentageLocalOrigin => "local_origin_failure_percentage",
        }
    }
}

/// A snapshot of Envoy's `outlier_detection.*` stats (without the deprecated ones). `ejections_active` is a
/// gauge, the rest are counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub ejections_active: u64,
    pub ejections_enforced_total: u64,
    pub ejections_overflow: u64,
    pub ejections_detected_consecutive_5xx: u64,
    pub ejections_detected_consecutive_gateway_failure: u64,
    pub ejections_detected_consecutive_local_origin_failure: u64,
    pub ejections_detected_success_rate: u64,
    pub ejections_detected_local_origin_success_rate: u64,
    pub ejections_detected_failure_percentage: u64,
    pub ejections_detected_local_origin_failure_percentage: u64,
    pub ejections_enforced_consecutive_5xx: u64,
    pub ejections_enforced_consecutive_gateway_failure: u64,
    pub ejections_enforced_consecutive_local_origin_failure: u64,
    pub ejections_enforced_success_rate: u64,
    pub ejections_enforced_local_origin_success_rate: u64,
    pub ejections_enforced_failure_percentage: u64,
    pub ejections_enforced_local_origin_failure_percentage: u64,
}

/// What a sweep changed, for logging and for refreshing load-balancer state. Both lists are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub ejected: Vec<(SocketAddr, EjectionType)>,
    pub unejected: Vec<SocketAddr>,
}

/// The outlier detector of one cluster, shared (in an `Arc`) by every worker.
pub struct Detector {
    state: Mutex<State>,
    /// Mirrors the number of ejected hosts, so the common case (none) costs no lock on the pick path.
    ejected: AtomicUsize,
}

impl Detector {
    pub fn new(config: Config) -> Self {
        let state = State {
            config,
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
            ejected: AtomicUsize::new(0),
        }
    }

    /// Declares the cluster's hosts: new ones are added, missing ones forgotten (an ejected one stops counting
    /// as ejected). Call it at creation and when the endpoints change, so the max-ejection-percent cap divides
    /// by the real host count; [`Detector::sweep`] does the same every interval.
    pub fn set_hosts(&self, hosts: &[SocketAddr]) {
        self.update(|state| state.set_hosts(hosts));
    }

    /// Records one outcome (a host not yet known is added). Returns the reason if it ejected the host.
    pub fn report(&self, host: SocketAddr, outcome: Outcome, now: Instant) -> Option<EjectionType> {
        self.update(|state| state.report(host, outcome, now))
    }

    /// The periodic pass, due every `interval` with the cluster's current hosts: brings back the hosts whose
    /// ejection time has passed, closes the interval's buckets and analyses them, then lets the multiplier of
    /// hosts back for an interval decay.
    pub fn sweep(&self, now: Instant, hosts: &[SocketAddr]) -> Sweep {
        self.update(|state| state.sweep(now, hosts))
    }

    /// Brings `host` back now if it is ejected (a passed active health check, Envoy's
    /// `successful_active_health_check_uneject_host`). Returns whether it was ejected.
    pub fn uneject(&self, host: SocketAddr, now: Instant) -> bool {
        if self.ejected_count() == 0 {
            return false;
        }
        self.update(|state| {
            let Some(h) = state.hosts.get_mut(&host).filter(|h| h.ejected()) else {
                return false;
            };
            h.ejected_at = None;
            h.unejected_at = Some(now);
            (h.run_5xx, h.run_gateway, h.run_local) = (0, 0, 0);
            state.active -= 1;
            true
        })
    }

    pub fn is_ejected(&self, host: SocketAddr) -> bool {
        self.ejected_count() > 0 && self.lock().hosts.get(&host).is_some_and(Host::ejected)
    }

    /// Without taking the lock.
    pub fn ejected_count(&self) -> usize {
        self.ejected.load(Ordering::Acquire)
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters()
    }

    /// A panic under the lock leaves at worst stale counts, which is better than losing outlier detection.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let result = change(&mut state);
        self.ejected.store(state.active, Ordering::Release);
        result
    }
}

/// Requests and successes in one interval.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    total: u64,
    success: u64,
}

/// Envoy's two buckets: the one being written, and the one the last sweep closed, which it analyses.
#[derive(Debug, Default)]
struct Window {
    current: Bucket,
    closed: Bucket,
}

impl Window {
    fn record(&mut self, success: bool) {
        self.current.total += 1;
        self.current.success += u64::from(success);
    }

    fn close(&mut self) {
        self.closed = std::mem::take(&mut self.current);
    }
}

const EXTERNAL: usize = 0;
const LOCAL: usize = 1;

#[derive(Debug, Default)]
struct Host {
    /// The current runs of consecutive 5xx, gateway failures and local-origin failures.
    run_5xx: u32,
    run_gateway: u32,
    run_local: u32,
    /// Indexed by `EXTERNAL` and `LOCAL` (local-origin results, split mode only).
    windows: [Window; 2],
    ejected_at: Option<Instant>,
    ejection_time: Duration,
    /// Envoy's backoff `k`: the next ejection lasts `base_ejection_time * (k + 1)`, capped.
    multiplier: u32,
    unejected_at: Option<Instant>,
}

impl Host {
    fn ejected(&self) -> bool {
        self.ejected_at.is_some()
    }

    /// An HTTP status (or a local failure taken as one). Returns the detections, gateway first as in Envoy, so
    /// when both fire the gateway one gets the first chance to eject.
    fn status(&mut self, config: &Config, code: u16) -> [Option<EjectionType>; 2] {
        let is_5xx = (500..600).contains(&code);
        self.windows[EXTERNAL].record(!is_5xx);
        if !is_5xx {
            (self.run_5xx, self.run_gateway) = (0, 0);
            return [None, None];
        }
        let gateway = if matches!(code, 502..=504) {
            bump(&mut self.run_gateway, config.consecutive_gateway_failure)
        } else {
            self.run_gateway = 0;
            false
        };
        let any = bump(&mut self.run_5xx, config.consecutive_5xx);
        [
            gateway.then_some(EjectionType::ConsecutiveGatewayFailure),
            any.then_some(EjectionType::Consecutive5xx),
        ]
    }
}

/// One more consecutive failure. True when that reaches the threshold (0 never does, as in Envoy); the counter
/// then starts over, so another detection needs a whole new run even without a success in between.
fn bump(counter: &mut u32, threshold: u32) -> bool {
    *counter = counter.saturating_add(1);
    let fired = threshold > 0 && *counter >= threshold;
    if fired {
        *counter = 0;
    }
    fired
}

/// The enforcement roll: `percent` out of 100 detections are acted upon.
fn enforce(percent: u32) -> bool {
    match percent {
        0 => false,
        1..=99 => fastrand::u32(..100) < percent,
        _ => true,
    }
}

fn jitter(max: Duration) -> Duration {
    match u64::try_from(max.as_millis()).unwrap_or(u64::MAX) {
        0 => Duration::ZERO,
        millis => Duration::from_millis(fastrand::u64(..=millis)),
    }
}

/// `mean - stdev_factor / 1000 * stdev` (population standard deviation) of the success rates.
fn success_rate_threshold(rates: &[f64], stdev_factor: u32) -> f64 {
    let n = rates.len() as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let variance = rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    mean - f64::from(stdev_factor) / 1000.0 * variance.sqrt()
}

#[derive(Default)]
struct State {
    config: Config,
    hosts: HashMap<SocketAddr, Host>,
    active: usize,
    enforced_total: u64,
    overflow: u64,
    /// Indexed by `EjectionType as usize`.
    detected: [u64; 7],
    enforced: [u64; 7],
}

impl State {
    fn set_hosts(&mut self, hosts: &[SocketAddr]) {
        let keep: HashSet<SocketAddr> = hosts.iter().copied().collect();
        let active = &mut self.active;
        self.hosts.retain(|addr, host| {
            let kept = keep.contains(addr);
            if !kept && host.ejected() {
                *active -= 1;
            }
            kept
        });
        for addr in hosts {
            self.hosts.entry(*addr).or_default();
        }
    }

    fn report(&mut self, addr: SocketAddr, outcome: Outcome, now: Instant) -> Option<EjectionType> {
        use EjectionType::ConsecutiveLocalOriginFailure;
        let config = &self.config;
        let split = config.split_external_local_origin_errors;
        let host = self.hosts.entry(addr).or_default();
        let detections = match outcome {
            Outcome::Status(code) => host.status(config, code),
            Outcome::Timeout if !split => host.status(config, 504),
            Outcome::ConnectFailed | Outcome::Reset if !split => host.status(config, 503),
            Outcome::LocalSuccess if !split => [None, None],
            Outcome::LocalSuccess => {
                host.windows[LOCAL].record(true);
                host.run_local = 0;
                [None, None]
            }
            Outcome::ConnectFailed | Outcome::Timeout | Outcome::Reset => {
                host.windows[LOCAL].record(false);
                let fired = bump(&mut host.run_local, config.consecutive_local_origin_failure);
                [fired.then_some(ConsecutiveLocalOriginFailure), None]
            }
        };
        let mut ejected = None;
        for kind in detections.into_iter().flatten() {
            // Envoy ignores a detection on a host already out; its counters are zeroed when it comes back.
            if self.hosts.get(&addr).is_some_and(|h| !h.ejected()) && self.detect(addr, kind, now) {
                ejected = Some(kind);
            }
        }
        ejected
    }

    fn detect(&mut self, addr: SocketAddr, kind: EjectionType, now: Instant) -> bool {
        self.detected[kind as usize] += 1;
        self.eject(addr, kind, now)
    }

    /// Envoy's `ejectHost`: the cap first (counting this host), then the enforcement roll.
    fn eject(&mut self, addr: SocketAddr, kind: EjectionType, now: Instant) -> bool {
        let (config, total, active) = (&self.config, self.hosts.len() as u64, self.active as u64);
        let Some(host) = self.hosts.get_mut(&addr).filter(|h| !h.ejected()) else {
            return false;
        };
        let within_cap =
            100 * (active + 1) <= u64::from(config.max_ejection_percent.min(100)) * total;
        if !(within_cap || config.always_eject_one_host && active == 0) {
            self.overflow += 1;
            return false;
        }
        if !enforce(config.enforcing(kind)) {
            return false;
        }
        // The multiplier grows while that still lengthens the ejection: a host that keeps failing stays out
        // longer, up to the max, and one that recovers decays back (in `sweep`).
        let base = config.base_ejection_time;
        if base.saturating_mul(host.multiplier) < config.max_ejection_time.saturating_add(base) {
            host.multiplier = host.multiplier.saturating_add(1);
        }
        let cap = config.max_ejection_time.max(base);
        let time = base.saturating_mul(host.multiplier).min(cap);
        host.ejection_time = time.saturating_add(jitter(config.max_ejection_time_jitter));
        host.ejected_at = Some(now);
        self.active += 1;
        self.enforced_total += 1;
        self.enforced[kind as usize] += 1;
        true
    }

    fn sweep(&mut self, now: Instant, hosts: &[SocketAddr]) -> Sweep {
        self.set_hosts(hosts);
        let since = |at: Instant| now.saturating_duration_since(at);
        let mut sweep = Sweep::default();
        for (addr, host) in &mut self.hosts {
            if host
                .ejected_at
                .is_some_and(|at| since(at) >= host.ejection_time)
            {
                host.ejected_at = None;
                host.unejected_at = Some(now);
                // Or a counter left just below its threshold would eject the host again on very few errors.
                (host.run_5xx, host.run_gateway, host.run_local) = (0, 0, 0);
                self.active -= 1;
                sweep.unejected.push(*addr);
            }
            host.windows.iter_mut().for_each(Window::close);
        }
        sweep.ejected = self.analyse(false, now);
        sweep.ejected.extend(self.analyse(true, now));
        // After the analyses, as in Envoy, so a host they just ejected does not decay.
        let interval = self.config.interval;
        for host in self.hosts.values_mut() {
            let back = host.unejected_at.is_some_and(|at| since(at) >= interval);
            if back && !host.ejected() {
                host.multiplier = host.multiplier.saturating_sub(1);
            }
        }
        sweep.ejected.sort_unstable();
        sweep.unejected.sort_unstable();
        sweep
    }

    /// Success rate and failure percentage over the interval just closed (external or local-origin), among
    /// the hosts in service. Each needs enough hosts with enough requests, so a quiet or tiny cluster ejects
    /// nobody on a handful of errors.
    fn analyse(&mut self, local: bool, now: Instant) -> Vec<(SocketAddr, EjectionType)> {
        use EjectionType::*;
        let (by_rate, by_failures) = match local {
            false => (SuccessRate, FailurePercentage),
            true => (LocalOriginSuccessRate, FailurePercentageLocalOrigin),
        };
        let config = &self.config;
        let (mut rated, mut counted) = (Vec::new(), Vec::new());
        for (addr, host) in &self.hosts {
            let Bucket { total, success } = host.windows[usize::from(local)].closed;
            if host.ejected() || total == 0 {
                continue;
            }
            let rate = success as f64 * 100.0 / total as f64;
            if total >= u64::from(config.success_rate_request_volume) {
                rated.push((rate, *addr));
            }
            if total >= u64::from(config.failure_percentage_request_volume) {
                // In integers, so a failure share exactly at the threshold counts.
                let over = (total - success) * 100
                    >= u64::from(config.failure_percentage_threshold) * total;
                counted.push((rate, *addr, over));
            }
        }
        let enough = |hosts: usize, minimum: u32| hosts > 0 && hosts >= minimum as usize;
        let mut outliers = Vec::new();
        if enough(rated.len(), config.success_rate_minimum_hosts) {
            let rates: Vec<f64> = rated.iter().map(|(rate, _)| *rate).collect();
            let threshold = success_rate_threshold(&rates, config.success_rate_stdev_factor);
            let below = rated.into_iter().filter(|(rate, _)| *rate < threshold);
            outliers.extend(below.map(|(rate, addr)| (by_rate, rate, addr)));
        }
        if enough(counted.len(), config.failure_percentage_minimum_hosts) {
            let over = counted.into_iter().filter(|(_, _, over)| *over);
            outliers.extend(over.map(|(rate, addr, _)| (by_failures, rate, addr)));
        }
        // Success-rate outliers first, as in Envoy; then the worst first, so the cap's budget goes to them
        // (Envoy's order is its hash map's, so any order is as faithful). A host ejected for its success rate
        // is still counted as a detected failure-percentage outlier, but not ejected twice.
        outliers.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut ejected = Vec::new();
        for (kind, _, addr) in outliers {
            if self.detect(addr, kind, now) {
                ejected.push((addr, kind));
            }
        }
        ejected
    }

    fn counters(&self) -> Counters {
        use EjectionType::*;
        let detected = |kind: EjectionType| self.detected[kind as usize];
        let enforced = |kind: EjectionType| self.enforced[kind as usize];
        Counters {
            ejections_active: self.active as u64,
            ejections_enforced_total: self.enforced_total,
            ejections_overflow: self.overflow,
            ejections_detected_consecutive_5xx: detected(Consecutive5xx),
            ejections_detected_consecutive_gateway_failure: detected(ConsecutiveGatewayFailure),
            ejections_detected_consecutive_local_origin_failure: detected(
                ConsecutiveLocalOriginFailure,
            ),
            ejections_detected_success_rate: detected(SuccessRate),
            ejections_detected_local_origin_success_rate: detected(LocalOriginSuccessRate),
            ejections_detected_failure_percentage: detected(FailurePercentage),
            ejections_detected_local_origin_failure_percentage: detected(
                FailurePercentageLocalOrigin,
            ),
            ejections_enforced_consecutive_5xx: enforced(Consecutive5xx),
            ejections_enforced_consecutive_gateway_failure: enforced(ConsecutiveGatewayFailure),
            ejections_enforced_consecutive_local_origin_failure: enforced(
                ConsecutiveLocalOriginFailure,
            ),
            ejections_enforced_success_rate: enforced(SuccessRate),
            ejections_enforced_local_origin_success_rate: enforced(LocalOriginSuccessRate),
            ejections_enforced_failure_percentage: enforced(FailurePercentage),
            ejections_enforced_local_origin_failure_percentage: enforced(
                FailurePercentageLocalOrigin,
            ),
        }
    }
}

#[cfg(test)]
mod tests;
