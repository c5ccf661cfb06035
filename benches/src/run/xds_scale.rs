//! Scenario (h): a large mesh pushed over xDS. `outrigger control-plane` serves a listener whose routes come by
//! RDS; once the proxy serves it under a 1000 req/s load, one push adds 5,000 EDS clusters (3 endpoints each)
//! and 5,000 routes. Per target (Outrigger, then Envoy 1.40, each alone on its own control plane): the time
//! from the push to the proxy's last ACK of it (clusters, endpoints and routes), the RSS once it is applied, and
//! the p99 and failures of the load running through the push.

use super::process::{self, CommandLine, Process};
use super::results::{self, Target};
use super::{FIXED_RATE, READY_LIMIT, Run, local, short_reason, target_index};
use anyhow::Context;
use std::fmt::Write;
use std::io::{BufRead, Seek};
use std::path::Path;
use std::time::{Duration, Instant};

/// Clusters (and routes) in the push.
const CLUSTERS: usize = 5_000;
const ENDPOINTS_PER_CLUSTER: usize = 3;
/// How long the push may take before the run gives up on it.
const PUSH_LIMIT: Duration = Duration::from_secs(120);
/// Load before the push, and the whole load's length.
const BEFORE_PUSH: Duration = Duration::from_secs(2);
const LOAD_SECONDS: f64 = 12.0;

impl Run {
    /// (h) for Outrigger and Envoy in turn.
    pub(super) fn xds_scale(&mut self) {
        let mut targets = vec![(Target::Outrigger, self.settings.outrigger.clone())];
        match &self.settings.envoy {
            Some(envoy) => targets.push((Target::Envoy, envoy.clone())),
            None => {
                for metric in results::XDS {
                    self.results
                        .unavailable(metric, Target::Envoy, "envoy not found");
                }
            }
        }
        for r in 0..self.settings.repeats {
            for (target, binary) in Self::order(&targets, r) {
                if let Err(e) = self.push_once(*target, binary) {
                    let reason = short_reason(&e);
                    self.say(&format!("(h) {}: {e:#}", target.name()));
                    for metric in results::XDS {
                        self.results.unavailable(metric, *target, &reason);
                    }
                }
            }
        }
    }

    fn push_once(&mut self, target: Target, binary: &Path) -> anyhow::Result<()> {
        let base = self.settings.port_base + 560 + 10 * target_index(target);
        let (listen, admin, xds) = (base, base + 1, base + 2);
        let dir = self.work.join(format!("xds-{}", target.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("listener.yaml"), listener(listen))?;
        std::fs::write(dir.join("routes.yaml"), routes(0))?;
        std::fs::write(dir.join("backend.yaml"), backend(self.backend.http))?;

        let log = self
            .work
            .join(format!("xds-{}-control-plane.log", target.name()));
        let line = CommandLine::new(
            &self.settings.outrigger,
            &[
                "control-plane",
                "--config-dir",
                &dir.display().to_string(),
                "--listen",
                &local(xds).to_string(),
            ],
        );
        // The control plane shares the loader's CPU: the proxy's CPU is the proxy's alone.
        let mut control_plane =
            Process::start("control plane", &line, self.load_cpu.as_deref(), &log)?;
        control_plane.wait_ready(READY_LIMIT, || process::accepts(local(xds)))?;

        let bootstrap = self.work.join(format!("xds-{}.yaml", target.name()));
        std::fs::write(&bootstrap, ads_bootstrap(target.name(), admin, xds))?;
        let file = bootstrap.display().to_string();
        let line = match target {
            Target::Envoy => CommandLine::envoy(binary, &file),
            _ => CommandLine::outrigger(binary, &file),
        };
        let proxy_log = self.work.join(format!("xds-{}.log", target.name()));
        let mut proxy =
            Process::start(target.name(), &line, self.proxy_cpu.as_deref(), &proxy_log)?;
        proxy.wait_ready(READY_LIMIT, || process::http_ok(local(listen)))?;

        // The load runs through the push.
        let load = self.settings.load.clone();
        let load_cpu = self.load_cpu.clone();
        let work = self.work.join(format!("xds-{}-load", target.name()));
        std::fs::create_dir_all(&work)?;
        let loader = std::thread::spawn(move || {
            let line = CommandLine {
                program: load,
                args: [
                    "http",
                    "--protocol",
                    "h1",
                    "--connections",
                    "8",
                    "--rate",
                    &FIXED_RATE.to_string(),
                    "--target",
                    &local(listen).to_string(),
                    "--warmup",
                    "0",
                    "--duration",
                    &LOAD_SECONDS.to_string(),
                ]
                .map(String::from)
                .to_vec(),
            };
            process::run_to_end(
                &line,
                load_cpu.as_deref(),
                &work,
                Duration::from_secs_f64(LOAD_SECONDS + 30.0),
            )
        });
        std::thread::sleep(BEFORE_PUSH);

        // The push: both files renamed into place at once, so the control plane reads them in one scan.
        let mut log_file = std::fs::File::open(&log)?;
        log_file.seek(std::io::SeekFrom::End(0))?;
        let mut log_reader = std::io::BufReader::new(log_file);
        for (name, text) in [
            ("clusters.yaml", clusters()),
            ("routes.yaml", routes(CLUSTERS)),
        ] {
            let temporary = dir.join(format!(".{name}.tmp"));
            std::fs::write(&temporary, text)?;
            std::fs::rename(&temporary, dir.join(name))?;
        }
        let pushed = Instant::now();
        let acked = wait_for_acks(&mut log_reader, target.name(), pushed)?;
        let seconds = acked.duration_since(pushed).as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        let rss = proxy.memory_bytes("VmRSS")? / (1024.0 * 1024.0);

        let out = loader
            .join()
            .map_err(|_| anyhow::anyhow!("the loader thread panicked"))??;
        let report: serde_json::Value =
            serde_json::from_str(out.trim()).with_context(|| format!("loader output: {out}"))?;
        let errors = report["errors"].as_u64().unwrap_or(0);
        let p99 = report["latency"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0;
        self.results.add(&results::XDS_ACK, target, seconds, errors);
        self.results.add(&results::XDS_RSS, target, rss, errors);
        self.results.add(&results::XDS_P99, target, p99, errors);
        self.results
            .add(&results::XDS_FAILED, target, errors as f64, errors);
        self.say(&format!(
            "(h) {}: push to ACK {seconds:.2} s, RSS {rss:.1} MiB, p99 {p99:.3} ms, {errors} failed",
            target.name()
        ));
        drop(proxy);
        drop(control_plane);
        Ok(())
    }
}

/// Follows the control plane's log from the push on until the node has ACKed the push's clusters, endpoints
/// and routes: the last ACK of each type after a response carrying the push's resources.
fn wait_for_acks(
    log: &mut std::io::BufReader<std::fs::File>,
    node: &str,
    pushed: Instant,
) -> anyhow::Result<Instant> {
    let types = ["Cluster", "ClusterLoadAssignment", "RouteConfiguration"];
    // Per type: the push was sent (a response with all its resources), then ACKed.
    let mut sent = [false; 3];
    let mut acked: [Option<Instant>; 3] = [None; 3];
    let mut line = String::new();
    while pushed.elapsed() < PUSH_LIMIT {
        line.clear();
        if log.read_line(&mut line)? == 0 {
            if acked.iter().all(Option::is_some) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if !line.contains(&format!("node=\"{node}\"")) && !line.contains(&format!("node={node}")) {
            continue;
        }
        for (i, kind) in types.iter().enumerate() {
            // "sending 5001 Cluster (version ...)", "sending 1 RouteConfiguration ...": a RouteConfiguration
            // response is the push's once the routes file changed, so any after the push counts.
            if let Some(rest) = line.split("sending ").nth(1)
                && let Some((count, rest)) = rest.split_once(' ')
                && rest.starts_with(&format!("{kind} "))
            {
                let count: usize = count.parse().unwrap_or(0);
                if count >= CLUSTERS || *kind == "RouteConfiguration" {
                    sent[i] = true;
                }
            }
            if sent[i] && line.contains(&format!("ACK of {kind} ")) {
                acked[i] = Some(Instant::now());
            }
        }
    }
    match acked {
        [Some(a), Some(b), Some(c)] => Ok(a.max(b).max(c)),
        _ => anyhow::bail!(
            "the push was not ACKed within {PUSH_LIMIT:?} (sent: {sent:?}, acked: {:?})",
            acked.map(|a| a.is_some())
        ),
    }
}

fn ads_bootstrap(node: &str, admin: u16, xds: u16) -> String {
    format!(
        r#"node: {{id: {node}, cluster: bench}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  lds_config: {{ads: {{}}, resource_api_version: V3}}
  cds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds}}}}}}}}}]}}]
"#
    )
}

fn listener(port: u16) -> String {
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: bench
  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: bench
        rds: {{route_config_name: bench, config_source: {{ads: {{}}, resource_api_version: V3}}}}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

/// The route configuration: `/svc-N` to cluster `svc-N` for the first `services`, everything else to the
/// backend (what the load asks for).
fn routes(services: usize) -> String {
    let mut out = String::from(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: bench\n  virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n",
    );
    for i in 0..services {
        let _ = writeln!(
            out,
            "    - {{match: {{prefix: /svc-{i}/}}, route: {{cluster: svc-{i}, timeout: 15s}}}}"
        );
    }
    out.push_str("    - {match: {prefix: /}, route: {cluster: backend, timeout: 15s}}\n");
    out
}

fn backend(address: std::net::SocketAddr) -> String {
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: backend
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: {{eds_config: {{ads: {{}}, resource_api_version: V3}}}}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: backend
  endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}}}]}}]
"#,
        address.ip(),
        address.port()
    )
}

/// 5,000 EDS clusters with 3 endpoints each, on loopback addresses nothing listens on (no request goes there).
fn clusters() -> String {
    let mut out = String::from("resources:\n");
    for i in 0..CLUSTERS {
        let _ = write!(
            out,
            "- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: svc-{i}\n  type: EDS\n  connect_timeout: 1s\n  eds_cluster_config: {{eds_config: {{ads: {{}}, resource_api_version: V3}}}}\n"
        );
        let _ = write!(
            out,
            "- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: svc-{i}\n  endpoints: [{{lb_endpoints: ["
        );
        for e in 0..ENDPOINTS_PER_CLUSTER {
            let port = 30_000 + (i * ENDPOINTS_PER_CLUSTER + e) % 20_000;
            let separator = if e == 0 { "" } else { ", " };
            let _ = write!(
                out,
                "{separator}{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}"
            );
        }
        out.push_str("]}]\n");
    }
    out
}
