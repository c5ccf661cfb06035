use super::EjectionType::*;
use super::Outcome::*;
use super::*;

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 8000 + i))
}

/// A detector that knows `n` hosts.
fn detector(config: Config, n: u16) -> (Detector, Vec<SocketAddr>) {
    let hosts: Vec<SocketAddr> = (0..n).map(addr).collect();
    let detector = Detector::new(config);
    detector.set_hosts(&hosts);
    (detector, hosts)
}

/// No max-ejection-percent cap.
fn uncapped() -> Config {
    Config {
        max_ejection_percent: 100,
        ..Config::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Reports `outcome` `n` times; returns the last report's answer.
fn repeat(
    d: &Detector,
    host: SocketAddr,
    outcome: Outcome,
    n: usize,
    now: Instant,
) -> Option<EjectionType> {
    (0..n)
        .map(|_| d.report(host, outcome, now))
        .last()
        .flatten()
}

/// Reports `requests` statuses, `failures` of them 500, spread so no run reaches a consecutive threshold.
fn traffic(d: &Detector, host: SocketAddr, requests: u32, failures: u32, now: Instant) {
    for i in 0..requests {
        let failed = i * failures / requests != (i + 1) * failures / requests;
        d.report(host, Status(if failed { 500 } else { 200 }), now);
    }
}

/// The host is still out just before `at + time`, and a sweep at `at + time` brings it back.
fn assert_ejected_for(
    d: &Detector,
    hosts: &[SocketAddr],
    host: SocketAddr,
    at: Instant,
    time: Duration,
) {
    let before = at + time - Duration::from_millis(1);
    assert!(
        d.sweep(before, hosts).unejected.is_empty(),
        "back before {time:?}"
    );
    assert!(d.is_ejected(host));
    assert_eq!(
        d.sweep(at + time, hosts).unejected,
        vec![host],
        "still out after {time:?}"
    );
    assert!(!d.is_ejected(host));
}

#[test]
fn consecutive_5xx_ejects_at_exactly_the_threshold() {
    // Ten hosts: the default 10% cap allows exactly one ejection.
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(500), 4, t), None);
    assert!(!d.is_ejected(h[0]));
    assert_eq!(d.report(h[0], Status(500), t), Some(Consecutive5xx));
    assert!(d.is_ejected(h[0]));
    assert!(!d.is_ejected(h[1]));
    assert_eq!(d.ejected_count(), 1);
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_5xx, 1);
    assert_eq!(c.ejections_enforced_consecutive_5xx, 1);
    assert_eq!(c.ejections_enforced_total, 1);
    assert_eq!(c.ejections_active, 1);
    assert_eq!(c.ejections_overflow, 0);
}

#[test]
fn any_non_5xx_resets_the_run() {
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    for reset in [200, 404, 302, 600] {
        assert_eq!(repeat(&d, h[0], Status(503), 4, t), None);
        d.report(h[0], Status(reset), t);
    }
    assert_eq!(repeat(&d, h[0], Status(503), 4, t), None);
    assert_eq!(d.report(h[0], Status(503), t), Some(Consecutive5xx));
}

#[test]
fn gateway_failures_are_detected_but_not_enforced_by_default() {
    let config = Config {
        consecutive_5xx: 7,
        ..Config::default()
    };
    let (d, h) = detector(config, 10);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(502), 5, t), None);
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_gateway_failure, 1);
    assert_eq!(c.ejections_enforced_consecutive_gateway_failure, 0);
    assert_eq!((c.ejections_active, c.ejections_overflow), (0, 0));
    // The same 502s moved the 5xx run, which ejects at 7; the gateway run started over at 5.
    assert_eq!(repeat(&d, h[0], Status(504), 2, t), Some(Consecutive5xx));
    assert_eq!(
        d.counters().ejections_detected_consecutive_gateway_failure,
        1
    );
}

#[test]
fn both_runs_can_fire_on_one_response() {
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(503), 5, t), Some(Consecutive5xx));
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_gateway_failure, 1);
    assert_eq!(c.ejections_detected_consecutive_5xx, 1);
    assert_eq!(c.ejections_enforced_total, 1);
}

#[test]
fn other_5xx_reset_only_the_gateway_run_and_zero_disables() {
    let config = Config {
        consecutive_5xx: 0,
        enforcing_consecutive_gateway_failure: 100,
        ..Config::default()
    };
    let (d, h) = detector(config, 10);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(503), 4, t), None);
    d.report(h[0], Status(500), t);
    assert_eq!(repeat(&d, h[0], Status(503), 4, t), None);
    assert_eq!(
        d.report(h[0], Status(503), t),
        Some(ConsecutiveGatewayFailure)
    );
    assert_eq!(d.counters().ejections_detected_consecutive_5xx, 0);
}

#[test]
fn without_split_local_failures_are_5xx_and_connect_success_is_ignored() {
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    for outcome in [Timeout, ConnectFailed, Reset, Timeout, LocalSuccess] {
        assert_eq!(d.report(h[0], outcome, t), None);
    }
    assert_eq!(d.report(h[0], Reset, t), Some(Consecutive5xx));
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_gateway_failure, 1);
    assert_eq!(c.ejections_detected_consecutive_local_origin_failure, 0);
}

#[test]
fn the_cap_counts_the_host_about_to_be_ejected() {
    // Two hosts, 10%: 100 * (0 + 1) / 2 = 50% > 10%, so nobody.
    let (d, h) = detector(Config::default(), 2);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(500), 5, t), None);
    assert!(!d.is_ejected(h[0]));
    let c = d.counters();
    assert_eq!(
        (c.ejections_detected_consecutive_5xx, c.ejections_overflow),
        (1, 1)
    );
    assert_eq!((c.ejections_enforced_total, c.ejections_active), (0, 0));
    // The run started over: four more are not a detection.
    repeat(&d, h[0], Status(500), 4, t);
    assert_eq!(d.counters().ejections_overflow, 1);

    let (d, h) = detector(
        Config {
            max_ejection_percent: 50,
            ..Config::default()
        },
        2,
    );
    assert_eq!(repeat(&d, h[0], Status(500), 5, t), Some(Consecutive5xx));
    assert_eq!(repeat(&d, h[1], Status(500), 5, t), None);
    assert_eq!((d.ejected_count(), d.counters().ejections_overflow), (1, 1));

    let always = Config {
        always_eject_one_host: true,
        ..Config::default()
    };
    let (d, h) = detector(always, 2);
    assert_eq!(repeat(&d, h[0], Status(500), 5, t), Some(Consecutive5xx));
    assert_eq!(repeat(&d, h[1], Status(500), 5, t), None);
    assert_eq!((d.ejected_count(), d.counters().ejections_overflow), (1, 1));
}

#[test]
fn the_cap_is_checked_before_the_enforcement_roll() {
    let config = Config {
        enforcing_consecutive_5xx: 0,
        ..Config::default()
    };
    let (d, h) = detector(config, 2);
    repeat(&d, h[0], Status(500), 5, Instant::now());
    assert_eq!(d.counters().ejections_overflow, 1);
}

#[test]
fn enforcement_zero_detects_without_ejecting_and_restarts_the_run() {
    let config = Config {
        enforcing_consecutive_5xx: 0,
        ..Config::default()
    };
    let (d, h) = detector(config, 10);
    let t = Instant::now();
    assert_eq!(repeat(&d, h[0], Status(500), 9, t), None);
    assert_eq!(d.counters().ejections_detected_consecutive_5xx, 1);
    assert_eq!(d.report(h[0], Status(500), t), None);
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_5xx, 2);
    assert_eq!((c.ejections_enforced_total, c.ejections_overflow), (0, 0));
}

#[test]
fn enforcement_between_0_and_100_is_a_roll() {
    let config = Config {
        enforcing_consecutive_5xx: 50,
        ..uncapped()
    };
    let (d, h) = detector(config, 200);
    let t = Instant::now();
    fastrand::seed(7);
    for host in &h {
        repeat(&d, *host, Status(500), 5, t);
    }
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_5xx, 200);
    assert!(
        (70..130).contains(&c.ejections_enforced_consecutive_5xx),
        "{c:?}"
    );
}

#[test]
fn ejection_time_grows_with_each_ejection_up_to_the_max() {
    let config = Config {
        base_ejection_time: secs(10),
        max_ejection_time: secs(30),
        ..uncapped()
    };
    let (d, h) = detector(config, 10);
    let mut t = Instant::now();
    for time in [10, 20, 30, 30, 30] {
        assert_eq!(repeat(&d, h[0], Status(500), 5, t), Some(Consecutive5xx));
        assert_ejected_for(&d, &h, h[0], t, secs(time));
        t += secs(time);
    }
    assert_eq!(d.counters().ejections_enforced_total, 5);
}

#[test]
fn a_max_below_the_base_means_the_base() {
    let config = Config {
        base_ejection_time: secs(30),
        max_ejection_time: secs(10),
        ..uncapped()
    };
    let (d, h) = detector(config, 10);
    let mut t = Instant::now();
    for _ in 0..3 {
        repeat(&d, h[0], Status(500), 5, t);
        assert_ejected_for(&d, &h, h[0], t, secs(30));
        t += secs(30);
    }
}

#[test]
fn hosts_come_back_only_at_a_sweep_with_their_runs_zeroed() {
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    repeat(&d, h[0], Status(500), 5, t);
    // Failures while out are no detection, and the run they build is dropped on return.
    repeat(&d, h[0], Status(500), 13, t + secs(1));
    assert_eq!(d.counters().ejections_detected_consecutive_5xx, 1);
    assert!(d.is_ejected(h[0]), "no sweep yet, however late");
    assert_eq!(d.sweep(t + secs(29), &h), Sweep::default());
    let sweep = d.sweep(t + secs(31), &h);
    assert_eq!(
        sweep,
        Sweep {
            ejected: vec![],
            unejected: vec![h[0]]
        }
    );
    assert!(!d.is_ejected(h[0]));
    assert_eq!((d.ejected_count(), d.counters().ejections_active), (0, 0));
    repeat(&d, h[0], Status(500), 4, t + secs(32));
    assert!(!d.is_ejected(h[0]));
}

#[test]
fn the_multiplier_decays_one_step_per_healthy_interval() {
    let config = Config {
        base_ejection_time: secs(10),
        max_ejection_time: secs(100),
        ..uncapped()
    };
    let (d, h) = detector(config, 10);
    let t0 = Instant::now();
    // Two ejections in a row: k = 2.
    repeat(&d, h[0], Status(500), 5, t0);
    assert_ejected_for(&d, &h, h[0], t0, secs(10));
    repeat(&d, h[0], Status(500), 5, t0 + secs(10));
    assert_ejected_for(&d, &h, h[0], t0 + secs(10), secs(20));
    // Back at 30 s; the sweep at 40 s finds it back for an interval: k = 1, so the next one is k = 2 again.
    d.sweep(t0 + secs(40), &h);
    repeat(&d, h[0], Status(500), 5, t0 + secs(40));
    assert_ejected_for(&d, &h, h[0], t0 + secs(40), secs(20));
    // Back at 60 s; three healthy intervals take k from 2 to 0 and no lower: the next one is k = 1.
    for s in [70, 80, 90] {
        d.sweep(t0 + secs(s), &h);
    }
    repeat(&d, h[0], Status(500), 5, t0 + secs(90));
    assert_ejected_for(&d, &h, h[0], t0 + secs(90), secs(10));
}

#[test]
fn a_sweep_too_soon_after_the_return_does_not_decay() {
    let config = Config {
        base_ejection_time: secs(10),
        max_ejection_time: secs(100),
        ..uncapped()
    };
    let (d, h) = detector(config, 10);
    let t0 = Instant::now();
    repeat(&d, h[0], Status(500), 5, t0);
    assert_ejected_for(&d, &h, h[0], t0, secs(10));
    d.sweep(t0 + secs(19), &h);
    repeat(&d, h[0], Status(500), 5, t0 + secs(19));
    assert_ejected_for(&d, &h, h[0], t0 + secs(19), secs(20));
}

#[test]
fn jitter_lengthens_the_ejection_within_its_bound() {
    let config = Config {
        max_ejection_time_jitter: secs(2),
        ..uncapped()
    };
    let (d, h) = detector(config, 20);
    let t = Instant::now();
    fastrand::seed(7);
    for host in &h {
        repeat(&d, *host, Status(500), 5, t);
    }
    let just_before = t + secs(30) - Duration::from_millis(1);
    assert!(d.sweep(just_before, &h).unejected.is_empty());
    let early = d.sweep(t + secs(30), &h).unejected;
    assert!(early.len() < h.len(), "no jitter at all");
    let late = d.sweep(t + secs(32), &h).unejected;
    assert_eq!(early.len() + late.len(), h.len());
}

#[test]
fn split_mode_keeps_local_failures_apart() {
    let config = Config {
        split_external_local_origin_errors: true,
        ..uncapped()
    };
    let (d, h) = detector(config, 10);
    let t = Instant::now();
    assert_eq!(
        repeat(&d, h[0], Timeout, 5, t),
        Some(ConsecutiveLocalOriginFailure)
    );
    assert_eq!(repeat(&d, h[1], Status(503), 5, t), Some(Consecutive5xx));
    // A connect success resets the local run; a response does not.
    repeat(&d, h[2], ConnectFailed, 4, t);
    d.report(h[2], LocalSuccess, t);
    assert_eq!(repeat(&d, h[2], Reset, 4, t), None);
    repeat(&d, h[3], ConnectFailed, 4, t);
    d.report(h[3], Status(200), t);
    assert_eq!(
        d.report(h[3], Reset, t),
        Some(ConsecutiveLocalOriginFailure)
    );
    // Local failures neither move nor reset the 5xx run.
    repeat(&d, h[4], Status(500), 4, t);
    repeat(&d, h[4], Timeout, 3, t);
    assert_eq!(d.report(h[4], Status(500), t), Some(Consecutive5xx));
    let c = d.counters();
    assert_eq!(c.ejections_detected_consecutive_local_origin_failure, 2);
    assert_eq!(c.ejections_detected_consecutive_gateway_failure, 1);
    assert_eq!(c.ejections_enforced_total, 4);
}

#[test]
fn the_success_rate_threshold() {
    let rates = [50.0, 100.0, 100.0, 100.0, 100.0];
    // Mean 90, standard deviation 20.
    assert!((success_rate_threshold(&rates, 1900) - 52.0).abs() < 1e-9);
    assert!((success_rate_threshold(&rates, 1000) - 70.0).abs() < 1e-9);
    assert!((success_rate_threshold(&rates, 0) - 90.0).abs() < 1e-9);
}

#[test]
fn success_rate_ejects_the_host_below_the_threshold() {
    // 100 * 1 / 5 = 20%.
    let (d, h) = detector(
        Config {
            max_ejection_percent: 20,
            ..Config::default()
        },
        5,
    );
    let t = Instant::now();
    traffic(&d, h[0], 100, 50, t);
    for host in &h[1..] {
        traffic(&d, *host, 100, 0, t);
    }
    assert!(!d.is_ejected(h[0]), "only a sweep analyses");
    let sweep = d.sweep(t + secs(10), &h);
    assert_eq!(sweep.ejected, vec![(h[0], SuccessRate)]);
    let c = d.counters();
    assert_eq!(
        (
            c.ejections_detected_success_rate,
            c.ejections_enforced_success_rate
        ),
        (1, 1)
    );
    assert_eq!(c.ejections_detected_consecutive_5xx, 0);
    // An ejected host is left out of the analysis (here leaving too few hosts), though still reported on.
    traffic(&d, h[0], 100, 50, t + secs(10));
    for host in &h[1..] {
        traffic(&d, *host, 100, 0, t + secs(10));
    }
    assert!(d.sweep(t + secs(20), &h).ejected.is_empty());
    assert_eq!(d.counters().ejections_detected_success_rate, 1);
}

#[test]
fn success_rate_needs_enough_hosts_with_enough_requests() {
    let (d, h) = detector(uncapped(), 5);
    let t = Instant::now();
    traffic(&d, h[0], 100, 50, t);
    for host in &h[1..4] {
        traffic(&d, *host, 100, 0, t);
    }
    traffic(&d, h[4], 99, 0, t);
    assert!(d.sweep(t + secs(10), &h).ejected.is_empty());
    assert_eq!(d.counters().ejections_detected_success_rate, 0);
}

#[test]
fn failure_percentage_ejects_at_or_above_the_threshold() {
    let config = Config {
        enforcing_failure_percentage: 100,
        success_rate_minimum_hosts: 100,
        consecutive_5xx: 0,
        consecutive_gateway_failure: 0,
        ..uncapped()
    };
    let (d, h) = detector(config, 6);
    let t = Instant::now();
    traffic(&d, h[0], 100, 90, t);
    traffic(&d, h[1], 100, 85, t);
    traffic(&d, h[2], 100, 84, t);
    traffic(&d, h[3], 49, 49, t); // Below the request volume.
    traffic(&d, h[4], 50, 0, t);
    traffic(&d, h[5], 50, 0, t);
    let sweep = d.sweep(t + secs(10), &h);
    assert_eq!(
        sweep.ejected,
        vec![(h[0], FailurePercentage), (h[1], FailurePercentage)]
    );
    let c = d.counters();
    assert_eq!(c.ejections_detected_failure_percentage, 2);
    assert_eq!(c.ejections_enforced_failure_percentage, 2);
}

#[test]
fn failure_percentage_needs_enough_hosts() {
    let config = Config {
        enforcing_failure_percentage: 100,
        consecutive_5xx: 0,
        ..uncapped()
    };
    let (d, h) = detector(config, 5);
    let t = Instant::now();
    traffic(&d, h[0], 100, 100, t);
    for host in &h[1..4] {
        traffic(&d, *host, 50, 0, t);
    }
    traffic(&d, h[4], 49, 0, t);
    assert!(d.sweep(t + secs(10), &h).ejected.is_empty());
    assert_eq!(d.counters().ejections_detected_failure_percentage, 0);
}

#[test]
fn split_mode_analyses_local_origin_results_too() {
    let config = Config {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 0,
        ..uncapped()
    };
    let (d, h) = detector(config, 5);
    let t = Instant::now();
    repeat(&d, h[0], ConnectFailed, 90, t);
    repeat(&d, h[0], LocalSuccess, 10, t);
    for host in &h[1..] {
        repeat(&d, *host, LocalSuccess, 100, t);
    }
    let sweep = d.sweep(t + secs(10), &h);
    assert_eq!(sweep.ejected, vec![(h[0], LocalOriginSuccessRate)]);
    let c = d.counters();
    assert_eq!(c.ejections_enforced_local_origin_success_rate, 1);
    // Also a failure-percentage outlier (90% >= 85%): detected, not ejected twice.
    assert_eq!(c.ejections_detected_local_origin_failure_percentage, 1);
    assert_eq!(c.ejections_enforced_local_origin_failure_percentage, 0);
    assert_eq!(
        (
            c.ejections_detected_success_rate,
            c.ejections_enforced_total
        ),
        (0, 1)
    );
}

#[test]
fn removed_hosts_are_forgotten() {
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    repeat(&d, h[0], Status(500), 5, t);
    repeat(&d, h[1], Status(500), 4, t);
    d.sweep(t + secs(1), &h[2..]);
    assert!(!d.is_ejected(h[0]));
    assert_eq!((d.ejected_count(), d.counters().ejections_active), (0, 0));
    // Back in the cluster, they start afresh.
    d.set_hosts(&h);
    assert_eq!(d.report(h[1], Status(500), t), None);
    assert_eq!(repeat(&d, h[0], Status(500), 4, t), None);
}

#[test]
fn unknown_hosts_are_added_on_their_first_report() {
    let d = Detector::new(uncapped());
    let t = Instant::now();
    assert_eq!(repeat(&d, addr(7), Status(500), 5, t), Some(Consecutive5xx));
    assert!(d.is_ejected(addr(7)));
}

#[test]
fn stat_names_are_envoys() {
    assert_eq!(Consecutive5xx.as_str(), "consecutive_5xx");
    assert_eq!(LocalOriginSuccessRate.as_str(), "local_origin_success_rate");
    assert_eq!(
        FailurePercentageLocalOrigin.as_str(),
        "local_origin_failure_percentage"
    );
}

#[test]
fn the_detector_is_shared_between_workers() {
    fn shared<T: Send + Sync>() {}
    shared::<Detector>();
    let (d, h) = detector(Config::default(), 10);
    let t = Instant::now();
    std::thread::scope(|s| {
        for host in &h {
            let d = &d;
            s.spawn(move || traffic(d, *host, 100, 0, t));
        }
    });
    d.sweep(t + secs(10), &h);
    assert_eq!(d.counters(), Counters::default());
}
