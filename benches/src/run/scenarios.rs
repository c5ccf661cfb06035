//! Scenarios (a), (b), (d), (e) against every target at once, (f): start-up and memory, and (g): (a) through the
//! resilience stack, against Outrigger and Envoy.

use super::configs::Ports;
use super::process::Process;
use super::results::{self, Metric, Target};
use super::{
    FIXED_RATE, H1_CONNECTIONS, H2_CONNECTIONS, H2_STREAMS, MAIN_METRICS, Proxy, Run, SETTLE,
    TCP_CONNECTIONS, local, short_reason,
};

/// The loader's arguments for scenario (a)'s load, closed loop, on `port`.
fn h1(port: u16) -> Vec<String> {
    let mut a: Vec<String> = ["http", "--protocol", "h1", "--connections"]
        .map(String::from)
        .to_vec();
    a.push(H1_CONNECTIONS.to_string());
    a.extend(["--target".into(), local(port).to_string()]);
    a
}

impl Run {
    /// (f): start to ready and idle RSS, over fresh starts.
    pub(super) fn startup(&mut self, proxies: &[Proxy]) {
        for r in 0..self.settings.repeats {
            for proxy in proxies {
                let target = proxy.target;
                match self.start(proxy, &format!("{}-start", target.name())) {
                    Ok((process, ready)) => {
                        std::thread::sleep(SETTLE);
                        let ms = ready.as_secs_f64() * 1000.0;
                        self.results.add(&results::START, target, ms, 0);
                        match process.memory_bytes("VmRSS") {
                            Ok(rss) => {
                                self.results
                                    .add(&results::IDLE_RSS, target, rss / 1048576.0, 0)
                            }
                            Err(e) => self.results.unavailable(
                                &results::IDLE_RSS,
                                target,
                                &format!("{e:#}"),
                            ),
                        }
                        self.say(&format!(
                            "(f) {} start {}: ready in {ms:.1} ms",
                            target.name(),
                            r + 1
                        ));
                    }
                    Err(e) => {
                        let reason = short_reason(&e);
                        self.say(&format!("(f) {} did not start: {e:#}", target.name()));
                        self.results.unavailable(&results::START, target, &reason);
                        self.results
                            .unavailable(&results::IDLE_RSS, target, &reason);
                    }
                }
            }
        }
    }

    pub(super) fn main_scenarios(&mut self, proxies: &[Proxy]) {
        let mut running: Vec<(Target, Ports, Option<Process>)> = vec![(
            Target::Direct,
            Ports {
                h1: self.backend.http.port(),
                h2: self.backend.http.port(),
                tcp: self.backend.tcp.port(),
                resilient: self.backend.http.port(),
                traced_1: self.backend.http.port(),
                traced_100: self.backend.http.port(),
                admin: 0,
            },
            None,
        )];
        for proxy in proxies {
            match self.start(proxy, proxy.target.name()) {
                Ok((process, _)) => running.push((proxy.target, proxy.ports, Some(process))),
                Err(e) => {
                    let reason = short_reason(&e);
                    self.say(&format!("{} did not start: {e:#}", proxy.target.name()));
                    for metric in MAIN_METRICS {
                        self.results.unavailable(metric, proxy.target, &reason);
                    }
                }
            }
        }
        if self.settings.nginx_stream_module.is_none() {
            self.results.unavailable(
                &results::TCP_MIBS,
                Target::Nginx,
                "nginx stream module not installed",
            );
        }
        let repeats = self.settings.repeats;
        if self.wants('a') {
            for r in 0..repeats {
                for (target, ports, process) in Self::order(&running, r) {
                    let (rps, cpu) = (&results::H1_RPS, &results::CPU_PER_1K);
                    let Some(rps) =
                        self.closed_h1(*target, h1(ports.h1), process.as_ref(), rps, cpu)
                    else {
                        continue;
                    };
                    self.say(&format!(
                        "(a) {} {}/{repeats}: {rps:.0} req/s",
                        target.name(),
                        r + 1
                    ));
                }
            }
            for (target, _, process) in &running {
                if let Some(process) = process {
                    match process.memory_bytes("VmHWM") {
                        Ok(hwm) => {
                            self.results
                                .add(&results::PEAK_RSS, *target, hwm / 1048576.0, 0)
                        }
                        Err(e) => {
                            self.results
                                .unavailable(&results::PEAK_RSS, *target, &format!("{e:#}"))
                        }
                    }
                }
            }
        }
        if self.wants('g') {
            self.resilient(&running);
        }
        if self.wants('i') {
            self.traced(&running);
        }
        if self.wants('b') {
            for r in 0..repeats {
                for (target, ports, _) in Self::order(&running, r) {
                    let mut args = h1(ports.h1);
                    args.extend(["--rate".into(), FIXED_RATE.to_string()]);
                    let Some(report) = self.http_run(&results::H1_P99, *target, args) else {
                        continue;
                    };
                    let errors = report["errors"].as_u64().unwrap_or(0);
                    let latency = &report["latency"];
                    for (metric, key) in [
                        (&results::H1_P50, "p50_us"),
                        (&results::H1_P90, "p90_us"),
                        (&results::H1_P99, "p99_us"),
                        (&results::H1_P999, "p999_us"),
                    ] {
                        let ms = latency[key].as_f64().unwrap_or(0.0) / 1000.0;
                        self.results.add(metric, *target, ms, errors);
                    }
                    self.say(&format!(
                        "(b) {} {}/{repeats}: p50 {:.3} ms, p99 {:.3} ms",
                        target.name(),
                        r + 1,
                        latency["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
                        latency["p99_us"].as_f64().unwrap_or(0.0) / 1000.0
                    ));
                }
            }
        }
        if self.wants('d') {
            for (metric, protocol) in [(&results::H2_RPS, "h2"), (&results::GRPC_RPS, "grpc")] {
                for r in 0..repeats {
                    for (target, ports, _) in Self::order(&running, r) {
                        let args: Vec<String> = vec![
                            "http".into(),
                            "--protocol".into(),
                            protocol.into(),
                            "--connections".into(),
                            H2_CONNECTIONS.to_string(),
                            "--streams".into(),
                            H2_STREAMS.to_string(),
                            "--target".into(),
                            local(ports.h2).to_string(),
                        ];
                        let Some(report) = self.http_run(metric, *target, args) else {
                            continue;
                        };
                        let rps = report["rps"].as_f64().unwrap_or(0.0);
                        self.results.add(
                            metric,
                            *target,
                            rps,
                            report["errors"].as_u64().unwrap_or(0),
                        );
                        self.say(&format!(
                            "(d) {protocol} {} {}/{repeats}: {rps:.0} req/s",
                            target.name(),
                            r + 1
                        ));
                    }
                }
            }
        }
        if self.wants('e') {
            for r in 0..repeats {
                for (target, ports, _) in Self::order(&running, r) {
                    if *target == Target::Nginx && self.settings.nginx_stream_module.is_none() {
                        continue;
                    }
                    let args: Vec<String> = vec![
                        "tcp".into(),
                        "--connections".into(),
                        TCP_CONNECTIONS.to_string(),
                        "--target".into(),
                        local(ports.tcp).to_string(),
                    ];
                    let Some(report) = self.http_run(&results::TCP_MIBS, *target, args) else {
                        continue;
                    };
                    let mibs = report["mib_per_s"].as_f64().unwrap_or(0.0);
                    self.results.add(
                        &results::TCP_MIBS,
                        *target,
                        mibs,
                        report["errors"].as_u64().unwrap_or(0),
                    );
                    self.say(&format!(
                        "(e) {} {}/{repeats}: {mibs:.0} MiB/s",
                        target.name(),
                        r + 1
                    ));
                }
            }
        }
        // The processes are dropped (killed) here.
    }

    /// One closed-loop HTTP/1.1 run (`args`) of scenario (a) or (g) against `target`: its throughput under `rps`,
    /// and the proxy's CPU time per 1000 requests, warm-up included, under `cpu`. Returns the throughput.
    fn closed_h1(
        &mut self,
        target: Target,
        args: Vec<String>,
        process: Option<&Process>,
        rps: &'static Metric,
        cpu: &'static Metric,
    ) -> Option<f64> {
        let ticks = self.settings.clock_ticks;
        let before = process.and_then(|p| p.cpu_seconds(ticks).ok());
        let report = self.http_run(rps, target, args)?;
        let after = process.and_then(|p| p.cpu_seconds(ticks).ok());
        let per_second = report["rps"].as_f64().unwrap_or(0.0);
        let requests = report["requests_all"].as_f64().unwrap_or(0.0);
        let errors = report["errors"].as_u64().unwrap_or(0);
        self.results.add(rps, target, per_second, errors);
        if let (Some(b), Some(a)) = (before, after)
            && requests > 0.0
        {
            self.results
                .add(cpu, target, (a - b) / requests * 1000.0, 0);
        }
        Some(per_second)
    }

    /// (g): scenario (a)'s load on the listener whose route retries, whose cluster has circuit breakers and outlier
    /// detection, and whose connection manager rate-limits, all with limits the run never reaches; each run right
    /// after a run of (a) in the same process, so (g)/(a) is the price of that stack. Outrigger and Envoy only: both read it from the
    /// same Envoy file; haproxy and nginx are not configured with equivalents.
    fn resilient(&mut self, running: &[(Target, Ports, Option<Process>)]) {
        let reason = "no equivalent configured: (g) is Envoy's retry_policy, circuit_breakers, \
                      outlier_detection and local_ratelimit";
        for target in [Target::Haproxy, Target::Nginx] {
            for metric in [
                &results::RESILIENT_RPS,
                &results::RESILIENT_OVER_PLAIN,
                &results::RESILIENT_CPU_PER_1K,
                &results::PAIRED_H1_RPS,
                &results::PAIRED_CPU_PER_1K,
            ] {
                self.results.unavailable(metric, target, reason);
            }
        }
        let proxies: Vec<_> = running
            .iter()
            .filter(|(t, _, _)| matches!(t, Target::Outrigger | Target::Envoy))
            .collect();
        // Each (g) run follows a run of (a) on the same process, and the ratio is taken per pair: (a)'s own runs
        // took place minutes earlier, and a shared machine drifts more than the 5 % this figure is judged by.
        let repeats = self.settings.repeats;
        for r in 0..repeats {
            for (target, ports, process) in Self::order(&proxies, r).copied() {
                let (rps, cpu) = (&results::PAIRED_H1_RPS, &results::PAIRED_CPU_PER_1K);
                let plain = self.closed_h1(*target, h1(ports.h1), process.as_ref(), rps, cpu);
                let (rps, cpu) = (&results::RESILIENT_RPS, &results::RESILIENT_CPU_PER_1K);
                let resilient =
                    self.closed_h1(*target, h1(ports.resilient), process.as_ref(), rps, cpu);
                let (Some(plain), Some(resilient)) = (plain, resilient) else {
                    continue;
                };
                if plain > 0.0 {
                    self.results.add(
                        &results::RESILIENT_OVER_PLAIN,
                        *target,
                        resilient / plain,
                        0,
                    );
                }
                self.say(&format!(
                    "(g) {} {}/{repeats}: {resilient:.0} req/s after (a) {plain:.0} req/s",
                    target.name(),
                    r + 1
                ));
            }
        }
        for (target, _, _) in proxies {
            if self
                .results
                .median(&results::RESILIENT_OVER_PLAIN, *target)
                .is_none()
            {
                self.results.unavailable(
                    &results::RESILIENT_OVER_PLAIN,
                    *target,
                    "needs an (a) and a (g) run that both completed",
                );
            }
        }
    }

    /// (i): (a) again, then (a) with tracing at 1 % and a file access log, then at 100 %, on the same process
    /// (Outrigger and Envoy); each ratio is taken over the (a) run right before it.
    fn traced(&mut self, running: &[(Target, Ports, Option<Process>)]) {
        let reason = "no equivalent configured: (i) is Envoy's HCM tracing and access_log";
        for target in [Target::Haproxy, Target::Nginx] {
            for metric in [
                &results::TRACED_1_RPS,
                &results::TRACED_1_OVER_PLAIN,
                &results::TRACED_100_RPS,
                &results::TRACED_100_OVER_PLAIN,
            ] {
                self.results.unavailable(metric, target, reason);
            }
        }
        let proxies: Vec<_> = running
            .iter()
            .filter(|(t, _, _)| matches!(t, Target::Outrigger | Target::Envoy))
            .collect();
        let repeats = self.settings.repeats;
        for r in 0..repeats {
            for (target, ports, process) in Self::order(&proxies, r).copied() {
                let (rps, cpu) = (&results::PAIRED_H1_RPS, &results::PAIRED_CPU_PER_1K);
                let Some(plain) = self.closed_h1(*target, h1(ports.h1), process.as_ref(), rps, cpu)
                else {
                    continue;
                };
                let cpu = &results::TRACED_CPU_PER_1K;
                for (port, rps, over) in [
                    (
                        ports.traced_1,
                        &results::TRACED_1_RPS,
                        &results::TRACED_1_OVER_PLAIN,
                    ),
                    (
                        ports.traced_100,
                        &results::TRACED_100_RPS,
                        &results::TRACED_100_OVER_PLAIN,
                    ),
                ] {
                    let Some(traced) =
                        self.closed_h1(*target, h1(port), process.as_ref(), rps, cpu)
                    else {
                        continue;
                    };
                    if plain > 0.0 {
                        self.results.add(over, *target, traced / plain, 0);
                    }
                    self.say(&format!(
                        "(i) {} {}/{repeats}: {traced:.0} req/s on {} after (a) {plain:.0} req/s",
                        target.name(),
                        r + 1,
                        rps.label
                    ));
                }
            }
        }
    }
}
