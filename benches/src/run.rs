//! The side-by-side run behind `bash benches/run`: starts the backend and every proxy with equal configurations,
//! drives each scenario against each target in turn (targets interleaved within every repeat, so drift hits them
//! alike), and writes the Markdown table and `results.json`.

pub mod configs;
mod idle;
mod mesh;
pub mod process;
pub mod results;
mod scenarios;
mod xds_scale;

use anyhow::Context;
use configs::{Backend, Ports};
use process::{CommandLine, Process};
use results::{Metric, Results, Target};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `benches/run` passes in.
#[derive(Debug)]
pub struct Settings {
    pub outrigger: PathBuf,
    pub envoy: Option<PathBuf>,
    pub haproxy: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
    pub nginx_stream_module: Option<PathBuf>,
    pub load: PathBuf,
    pub backend: PathBuf,
    pub out: PathBuf,
    pub warmup: f64,
    pub duration: f64,
    pub repeats: usize,
    pub clock_ticks: f64,
    pub port_base: u16,
    /// Which scenarios to run, by letter: `abcdefghij` is all.
    pub scenarios: String,
    /// Machine, date and anything else to record with the figures.
    pub about: Value,
}

/// Connections of scenarios (a), (b) and (g).
const H1_CONNECTIONS: usize = 32;
/// The fixed rate of scenarios (b) and (c).
const FIXED_RATE: f64 = 1000.0;
const H2_CONNECTIONS: usize = 4;
const H2_STREAMS: usize = 8;
const TCP_CONNECTIONS: usize = 8;
/// Time a proxy gets to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Idle time after ready before the idle RSS is read.
const SETTLE: Duration = Duration::from_millis(500);
const MAIN_METRICS: [&Metric; 22] = results::MAIN;

struct Proxy {
    target: Target,
    line: CommandLine,
    ports: Ports,
}

struct Run {
    settings: Settings,
    work: PathBuf,
    /// CPU lists for `taskset`: the loader and backend, the proxies. `None` when there is one CPU.
    load_cpu: Option<String>,
    proxy_cpu: Option<String>,
    backend: Backend,
    results: Results,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn target_index(t: Target) -> u16 {
    match t {
        Target::Direct => 0,
        Target::Outrigger => 1,
        Target::Envoy => 2,
        Target::Haproxy => 3,
        Target::Nginx => 4,
    }
}

/// A short reason from a failure: the line that says "not implemented" if there is one, else the first line
/// (what failed) and the last (usually why).
fn short_reason(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(line) = lines.iter().find(|l| l.contains("not implemented")) {
        return line.to_string();
    }
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} {last}"),
        (Some(first), _) => first.to_string(),
        _ => text,
    }
}

impl Run {
    fn say(&self, message: &str) {
        eprintln!("bench: {message}");
    }

    fn start(&self, proxy: &Proxy, log_name: &str) -> anyhow::Result<(Process, Duration)> {
        let log = self.work.join(format!("{log_name}.log"));
        let mut process = Process::start(
            proxy.target.name(),
            &proxy.line,
            self.proxy_cpu.as_deref(),
            &log,
        )?;
        let address = local(proxy.ports.h1);
        let ready = process.wait_ready(READY_LIMIT, || process::http_ok(address))?;
        Ok((process, ready))
    }

    /// Runs the loader with `args`, returns its JSON report.
    fn load(&self, args: &[String]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend([
            "--warmup".into(),
            self.settings.warmup.to_string(),
            "--duration".into(),
            self.settings.duration.to_string(),
        ]);
        let line = CommandLine {
            program: self.settings.load.clone(),
            args: all,
        };
        let limit = Duration::from_secs_f64(self.settings.warmup + self.settings.duration + 30.0);
        let out = process::run_to_end(&line, self.load_cpu.as_deref(), &self.work, limit)?;
        serde_json::from_str(out.trim()).with_context(|| format!("loader output: {out}"))
    }

    fn proxies(&mut self) -> anyhow::Result<Vec<Proxy>> {
        let s = &self.settings;
        let mut proxies = Vec::new();
        let mut missing = Vec::new();
        let ports = |t: Target| Ports::at(self.settings.port_base + 100 * target_index(t));
        let write = |name: &str, text: String| -> anyhow::Result<String> {
            let path = self.work.join(name);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            Ok(path.display().to_string())
        };
        let p = ports(Target::Outrigger);
        let file = write(
            "outrigger.yaml",
            configs::envoy(p, self.backend, &self.work),
        )?;
        proxies.push(Proxy {
            target: Target::Outrigger,
            line: CommandLine::outrigger(&s.outrigger, &file),
            ports: p,
        });
        match &s.envoy {
            Some(envoy) => {
                let p = ports(Target::Envoy);
                let file = write("envoy.yaml", configs::envoy(p, self.backend, &self.work))?;
                proxies.push(Proxy {
                    target: Target::Envoy,
                    line: CommandLine::envoy(envoy, &file),
                    ports: p,
                });
            }
            None => missing.push((Target::Envoy, "envoy not found")),
        }
        match &s.haproxy {
            Some(haproxy) => {
                let p = ports(Target::Haproxy);
                let file = write("haproxy.cfg", configs::haproxy(p, self.backend))?;
                proxies.push(Proxy {
                    target: Target::Haproxy,
                    line: CommandLine::new(haproxy, &["-f", &file, "-db"]),
                    ports: p,
                });
            }
            None => missing.push((Target::Haproxy, "haproxy not found")),
        }
        match &s.nginx {
            Some(nginx) => {
                let p = ports(Target::Nginx);
                std::fs::create_dir_all(self.work.join("nginx-temp"))?;
                let text = configs::nginx(
                    p,
                    self.backend,
                    &self.work,
                    s.nginx_stream_module.as_deref(),
                );
                let file = write("nginx.conf", text)?;
                let prefix = format!("{}/", self.work.display());
                proxies.push(Proxy {
                    target: Target::Nginx,
                    line: CommandLine::new(nginx, &["-p", &prefix, "-c", &file, "-e", "stderr"]),
                    ports: p,
                });
            }
            None => missing.push((Target::Nginx, "nginx not found")),
        }
        for (target, reason) in missing {
            for metric in MAIN_METRICS {
                self.results.unavailable(metric, target, reason);
            }
        }
        Ok(proxies)
    }

    fn wants(&self, scenario: char) -> bool {
        self.settings.scenarios.contains(scenario)
    }

    /// Targets in the order of repeat `r`: rotated, so none is always first.
    fn order<T>(items: &[T], r: usize) -> impl Iterator<Item = &T> {
        let n = items.len().max(1);
        items.iter().cycle().skip(r % n).take(items.len())
    }

    /// One HTTP loader run; `None` (and the figure marked) when the run itself failed.
    fn http_run(
        &mut self,
        metric: &'static Metric,
        target: Target,
        args: Vec<String>,
    ) -> Option<Value> {
        match self.load(&args) {
            Ok(report) => Some(report),
            Err(e) => {
                self.say(&format!("{} {}: {e:#}", metric.label, target.name()));
                self.results.unavailable(metric, target, &short_reason(&e));
                None
            }
        }
    }
}

/// Fails early, and clearly, when a port the run needs is taken.
fn check_ports(base: u16) -> anyhow::Result<()> {
    let mut ports = vec![base, base + 1];
    for i in 1..=4u16 {
        let p = Ports::at(base + 100 * i);
        ports.extend([p.h1, p.h2, p.tcp, p.resilient, p.admin]);
    }
    for i in 1..=2u16 {
        let b = base + 500 + 20 * i;
        ports.extend([b, b + 1, b + 10, b + 11]);
        // Scenario (h): listener, admin, control plane.
        let h = base + 560 + 10 * i;
        ports.extend([h, h + 1, h + 2]);
    }
    for port in ports {
        TcpListener::bind(local(port)).with_context(|| {
            format!(
                "port {port} is taken; stop what uses it or choose other ports with BENCH_PORT_BASE"
            )
        })?;
    }
    Ok(())
}

pub fn main(settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(settings.repeats > 0, "repeats must be at least 1");
    check_ports(settings.port_base)?;
    let work = settings.out.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (load_cpu, proxy_cpu) = if cpus >= 2 {
        (Some("0".to_string()), Some("1".to_string()))
    } else {
        (None, None)
    };
    let backend = Backend {
        http: local(settings.port_base),
        tcp: local(settings.port_base + 1),
    };
    let mut run = Run {
        settings,
        work,
        load_cpu,
        proxy_cpu,
        backend,
        results: Results::default(),
    };
    let line = CommandLine::new(
        &run.settings.backend,
        &[
            "--http",
            &backend.http.to_string(),
            "--tcp",
            &backend.tcp.to_string(),
        ],
    );
    let mut server = Process::start(
        "backend",
        &line,
        run.load_cpu.as_deref(),
        &run.work.join("backend.log"),
    )?;
    server.wait_ready(READY_LIMIT, || {
        process::http_ok(backend.http) && process::accepts(backend.tcp)
    })?;
    let proxies = run.proxies()?;
    if run.wants('f') {
        run.startup(&proxies);
    }
    if ['a', 'b', 'd', 'e', 'g', 'i'].iter().any(|s| run.wants(*s)) {
        run.main_scenarios(&proxies);
    }
    if run.wants('c')
        && let Err(e) = run.mesh()
    {
        run.say(&format!("(c) failed: {e:#}"));
        for metric in results::MESH {
            for target in [Target::Direct, Target::Outrigger, Target::Envoy] {
                run.results.unavailable(metric, target, &short_reason(&e));
            }
        }
    }
    if run.wants('h') {
        run.xds_scale();
    }
    if run.wants('j') {
        run.idle(&proxies);
    }
    drop(server);
    let s = &run.settings;
    let header = format!(
        "Outrigger side by side — {}, {}; {}; {}; {} repeat(s) of {} s measured after {} s warm-up; each cell: \
         median (min–max); proxies pinned to CPU {}, loader and backend to CPU {}.",
        s.about["date"].as_str().unwrap_or(""),
        s.about["machine"].as_str().unwrap_or("unknown machine"),
        s.about["versions"].as_str().unwrap_or(""),
        s.about["conditions"].as_str().unwrap_or(""),
        s.repeats,
        s.duration,
        s.warmup,
        run.proxy_cpu.as_deref().unwrap_or("any"),
        run.load_cpu.as_deref().unwrap_or("any"),
    );
    let table = results::markdown(&run.results, &header);
    let mut about = s.about.clone();
    if let Value::Object(map) = &mut about {
        map.insert(
            "settings".into(),
            serde_json::json!({
                "warmup_s": s.warmup, "duration_s": s.duration, "repeats": s.repeats,
                "h1_connections": H1_CONNECTIONS, "fixed_rate_rps": FIXED_RATE,
                "h2_connections": H2_CONNECTIONS, "h2_streams": H2_STREAMS, "tcp_connections": TCP_CONNECTIONS,
                "idle_connections": idle::IDLE_CONNECTIONS,
                "load_cpu": run.load_cpu, "proxy_cpu": run.proxy_cpu, "scenarios": s.scenarios,
            }),
        );
    }
    let json = results::json(&run.results, about);
    let json_path = s.out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("write {}", json_path.display()))?;
    std::fs::write(s.out.join("results.md"), &table)?;
    println!("{table}");
    eprintln!("bench: wrote {}", json_path.display());
    Ok(())
}

/// The repository's `target/bench` from the current directory.
pub fn default_out() -> PathBuf {
    Path::new("target").join("bench")
}
