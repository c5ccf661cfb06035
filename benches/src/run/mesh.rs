//! Scenario (c): the mesh path, client -> sidecar A -> mutual TLS -> sidecar B -> backend.

use super::configs::{self, Identity};
use super::process::{self, CommandLine, Process};
use super::results::{self, Target};
use super::{FIXED_RATE, H1_CONNECTIONS, READY_LIMIT, Run, local, short_reason, target_index};
use std::time::Duration;

impl Run {
    pub(super) fn ca(&self, args: &[&str]) -> anyhow::Result<()> {
        let line = CommandLine::new(&self.settings.outrigger, args);
        process::run_to_end(&line, None, &self.work, Duration::from_secs(30))?;
        Ok(())
    }

    /// (c): client -> sidecar A -> mTLS -> sidecar B -> backend, for Outrigger and Envoy, next to direct.
    pub(super) fn mesh(&mut self) -> anyhow::Result<()> {
        let ca = self.work.join("mesh-ca");
        let ca_dir = ca.display().to_string();
        self.ca(&[
            "ca",
            "init",
            "--trust-domain",
            "cluster.local",
            "--out",
            &ca_dir,
            "--force",
        ])?;
        let id = |sa: &str| format!("spiffe://cluster.local/ns/bench/sa/{sa}");
        let mut identities = Vec::new();
        for sa in ["a", "b"] {
            let dir = self.work.join(format!("mesh-{sa}"));
            let out = dir.display().to_string();
            self.ca(&[
                "ca",
                "issue",
                "--spiffe-id",
                &id(sa),
                "--ttl",
                "24h",
                "--ca",
                &ca_dir,
                "--out",
                &out,
            ])?;
            identities.push(Identity { dir });
        }
        let mut sidecars: Vec<(Target, u16, Vec<Process>)> = Vec::new();
        let mut candidates = vec![(Target::Outrigger, self.settings.outrigger.clone())];
        match &self.settings.envoy {
            Some(envoy) => candidates.push((Target::Envoy, envoy.clone())),
            None => {
                for metric in results::MESH {
                    self.results
                        .unavailable(metric, Target::Envoy, "envoy not found");
                }
            }
        }
        for (target, binary) in candidates {
            let base = self.settings.port_base + 500 + 20 * target_index(target);
            let (a_port, b_port) = (base, base + 10);
            let b_text =
                configs::mesh_server(b_port, b_port + 1, self.backend, &identities[1], &id("a"));
            let a_text =
                configs::mesh_client(a_port, a_port + 1, local(b_port), &identities[0], &id("b"));
            let mut started = Vec::new();
            let mut outcome = Ok(());
            for (side, text, port) in [("b", b_text, b_port), ("a", a_text, a_port)] {
                let file = self
                    .work
                    .join(format!("{}-mesh-{side}.yaml", target.name()));
                std::fs::write(&file, text)?;
                let file = file.display().to_string();
                let line = match target {
                    Target::Envoy => CommandLine::envoy(&binary, &file),
                    _ => CommandLine::outrigger(&binary, &file),
                };
                let log = self.work.join(format!("{}-mesh-{side}.log", target.name()));
                let name = format!("{} sidecar {side}", target.name());
                let mut process = Process::start(&name, &line, self.proxy_cpu.as_deref(), &log)?;
                // B is ready when it accepts; A when a request crosses both.
                let ready = if side == "b" {
                    process.wait_ready(READY_LIMIT, || process::accepts(local(port)))
                } else {
                    process.wait_ready(READY_LIMIT, || process::http_ok(local(port)))
                };
                started.push(process);
                if let Err(e) = ready {
                    outcome = Err(e);
                    break;
                }
            }
            match outcome {
                Ok(()) => sidecars.push((target, a_port, started)),
                Err(e) => {
                    let reason = format!("not available: {}", short_reason(&e));
                    self.say(&format!("(c) {}: {reason}", target.name()));
                    for metric in results::MESH {
                        self.results.unavailable(metric, target, &reason);
                    }
                }
            }
        }
        let mut paths: Vec<(Target, u16)> = vec![(Target::Direct, self.backend.http.port())];
        paths.extend(sidecars.iter().map(|(t, port, _)| (*t, *port)));
        let repeats = self.settings.repeats;
        for r in 0..repeats {
            let mut direct: Option<(f64, f64)> = None;
            let ordered: Vec<(Target, u16)> = Self::order(&paths, r).copied().collect();
            let mut this_repeat = Vec::new();
            for (target, port) in ordered {
                let args: Vec<String> = vec![
                    "http".into(),
                    "--protocol".into(),
                    "h1".into(),
                    "--connections".into(),
                    H1_CONNECTIONS.to_string(),
                    "--rate".into(),
                    FIXED_RATE.to_string(),
                    "--target".into(),
                    local(port).to_string(),
                ];
                let Some(report) = self.http_run(&results::MESH_P99, target, args) else {
                    continue;
                };
                let errors = report["errors"].as_u64().unwrap_or(0);
                let ms = |key: &str| report["latency"][key].as_f64().unwrap_or(0.0) / 1000.0;
                let (p50, p99, p999) = (ms("p50_us"), ms("p99_us"), ms("p999_us"));
                self.results.add(&results::MESH_P50, target, p50, errors);
                self.results.add(&results::MESH_P99, target, p99, errors);
                self.results.add(&results::MESH_P999, target, p999, errors);
                self.say(&format!(
                    "(c) {} {}/{repeats}: p50 {p50:.3} ms, p99 {p99:.3} ms",
                    target.name(),
                    r + 1
                ));
                if target == Target::Direct {
                    direct = Some((p50, p99));
                } else {
                    this_repeat.push((target, p50, p99));
                }
            }
            if let Some((d50, d99)) = direct {
                for (target, p50, p99) in this_repeat {
                    self.results
                        .add(&results::MESH_ADDED_P50, target, p50 - d50, 0);
                    self.results
                        .add(&results::MESH_ADDED_P99, target, p99 - d99, 0);
                }
            }
        }
        Ok(())
    }
}
