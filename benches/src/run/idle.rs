//! Scenario (j): the p99 of a normal load (HTTP/1.1 at 1000 req/s) alone and beside 10,000 idle keep-alive
//! connections, side by side in one run, their ratio (the goal of issue 14: at most 2x) and the RSS each idle
//! connection costs. Each idle connection sends one request, is answered, and then stays silent (a client's
//! keep-alive pool). Outrigger and Envoy, each started afresh; per repeat: the load alone, then the idle
//! connections opened, the load again beside them, then they are closed.
//! `tests/hostile_clients.rs` only checks that such connections are held and others served: speed goals belong
//! here, where the machine's noise is reported, not in a test.

use super::results::{self, Target};
use super::{FIXED_RATE, H1_CONNECTIONS, Proxy, Run, SETTLE, local, short_reason};
use anyhow::Context;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Idle connections held beside the load.
pub const IDLE_CONNECTIONS: usize = 10_000;
/// How long opening them may take.
const OPEN_LIMIT: Duration = Duration::from_secs(60);

impl Run {
    /// (j) for Outrigger and Envoy, one after the other (each alone on the machine while measured).
    pub(super) fn idle(&mut self, proxies: &[Proxy]) {
        for proxy in proxies
            .iter()
            .filter(|p| matches!(p.target, Target::Outrigger | Target::Envoy))
        {
            if let Err(e) = self.idle_target(proxy) {
                let reason = short_reason(&e);
                self.say(&format!("(j) {}: {e:#}", proxy.target.name()));
                for metric in results::IDLE {
                    self.results.unavailable(metric, proxy.target, &reason);
                }
            }
        }
    }

    fn idle_target(&mut self, proxy: &Proxy) -> anyhow::Result<()> {
        let target = proxy.target;
        let log_name = format!("idle-{}", target.name());
        let (process, _) = self.start(proxy, &log_name)?;
        let address = local(proxy.ports.h1);
        let load = || -> Vec<String> {
            vec![
                "http".into(),
                "--protocol".into(),
                "h1".into(),
                "--connections".into(),
                H1_CONNECTIONS.to_string(),
                "--rate".into(),
                FIXED_RATE.to_string(),
                "--target".into(),
                address.to_string(),
            ]
        };
        let p99 = |report: &serde_json::Value| {
            report["latency"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0
        };
        let repeats = self.settings.repeats;
        for r in 0..repeats {
            let Some(alone) = self.http_run(&results::IDLE_P99_ALONE, target, load()) else {
                continue;
            };
            std::thread::sleep(SETTLE);
            let before = process.memory_bytes("VmRSS")?;
            let idle = open_idle(address)?;
            std::thread::sleep(SETTLE);
            let after = process.memory_bytes("VmRSS")?;
            let beside = self.http_run(&results::IDLE_P99_BESIDE, target, load());
            drop(idle);
            let Some(beside) = beside else {
                continue;
            };
            let errors = |report: &serde_json::Value| report["errors"].as_u64().unwrap_or(0);
            let (alone_ms, beside_ms) = (p99(&alone), p99(&beside));
            let per_connection = (after - before).max(0.0) / 1024.0 / IDLE_CONNECTIONS as f64;
            self.results
                .add(&results::IDLE_P99_ALONE, target, alone_ms, errors(&alone));
            self.results.add(
                &results::IDLE_P99_BESIDE,
                target,
                beside_ms,
                errors(&beside),
            );
            if alone_ms > 0.0 {
                self.results
                    .add(&results::IDLE_P99_RATIO, target, beside_ms / alone_ms, 0);
            }
            self.results
                .add(&results::IDLE_RSS_PER_CONNECTION, target, per_connection, 0);
            self.say(&format!(
                "(j) {} {}/{repeats}: p99 {alone_ms:.3} ms alone, {beside_ms:.3} ms beside {IDLE_CONNECTIONS} idle \
                 connections; {per_connection:.1} KiB each",
                target.name(),
                r + 1
            ));
            // Let the proxy close what the idle connections left before the next repeat.
            std::thread::sleep(SETTLE);
        }
        drop(process);
        Ok(())
    }
}

/// Requests in flight while the idle connections open: under both proxies' default circuit breakers (1024).
const OPEN_BATCH: usize = 500;

/// Opens the idle connections: each sends one request and reads its answer, then stays open and silent.
fn open_idle(address: std::net::SocketAddr) -> anyhow::Result<Vec<TcpStream>> {
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE_CONNECTIONS);
    while idle.len() < IDLE_CONNECTIONS {
        anyhow::ensure!(
            started.elapsed() < OPEN_LIMIT,
            "only {} idle connections opened in {OPEN_LIMIT:?}",
            idle.len()
        );
        let from = idle.len();
        for i in from..(from + OPEN_BATCH).min(IDLE_CONNECTIONS) {
            let mut stream = TcpStream::connect(address).with_context(|| {
                format!(
                    "idle connection {i} of {IDLE_CONNECTIONS} (benches/run raises the open-file limit; is \
                     it high enough?)"
                )
            })?;
            stream.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n")?;
            idle.push(stream);
        }
        // Every answer read, so each connection is idle (no request open) when the load runs.
        for stream in &mut idle[from..] {
            read_response(stream)?;
        }
    }
    Ok(idle)
}

/// Reads one HTTP/1.1 response with a `content-length` (the backend's), within 10 s.
fn read_response(stream: &mut TcpStream) -> anyhow::Result<()> {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "an idle connection was closed before its answer");
        got.extend_from_slice(&chunk[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        anyhow::ensure!(head.starts_with("http/1.1 200"), "answer: {head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .context("an answer without content-length")?;
        if got.len() >= end + 4 + length {
            return Ok(());
        }
    }
}
