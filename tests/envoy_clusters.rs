//! Cluster features in real Envoy 1.40 and in Outrigger side by side: active health checking (HTTP with its
//! thresholds, retriable and non-retriable statuses, timeouts; TCP payloads; gRPC `grpc.health.v1`), what it does
//! to traffic and to `/clusters`, its `health_check.*` statistics, and consistent hashing (RING_HASH and MAGLEV
//! with a route's `hash_policy`, also in the typed `load_balancing_policy` form): the same keys must reach the
//! same backends in both.
//!
//! The health checks are scripted per check (the backend answers its n-th check as the script says), so the
//! health of a host after each check, and the statistics, are exact, not timing-dependent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::tcp::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------------------------
// Backends.

/// How a backend answers its n-th health check (`/healthz`); past the script, 200.
#[derive(Clone, Copy, Debug)]
enum Check {
    Status(u16),
    /// No answer within the health check's timeout (then 200, too late).
    Stall,
}

struct Origin {
    address: SocketAddr,
    /// Health checks received so far.
    checks: Arc<AtomicUsize>,
    /// The first health check's request line and headers (lower-case names).
    first_check: Arc<Mutex<Option<BTreeMap<String, String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// An HTTP/1.1 backend: `/healthz` follows `script`; any other path answers 200 with `name`.
    async fn start(name: &'static str, script: Vec<Check>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let first_check = Arc::new(Mutex::new(None));
        let script = Arc::new(script);
        let (c, f) = (checks.clone(), first_check.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (c, f, script) = (c.clone(), f.clone(), script.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(name, request, c.clone(), f.clone(), script.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            address,
            checks,
            first_check,
            task,
        }
    }
}

async fn answer(
    name: &'static str,
    request: http::Request<Incoming>,
    checks: Arc<AtomicUsize>,
    first: Arc<Mutex<Option<BTreeMap<String, String>>>>,
    script: Arc<Vec<Check>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, body: &str| {
        let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok(response)
    };
    if request.uri().path() != "/healthz" {
        return reply(200, name);
    }
    {
        let mut first = first.lock().unwrap();
        if first.is_none() {
            let mut seen: BTreeMap<String, String> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            seen.insert(":method".into(), request.method().to_string());
            seen.insert(":path".into(), request.uri().to_string());
            *first = Some(seen);
        }
    }
    // Counted as it arrives: the proxy gives up on a stalled check by closing the connection.
    let n = checks.fetch_add(1, Ordering::SeqCst);
    let step = script.get(n).copied().unwrap_or(Check::Status(200));
    if let Check::Stall = step {
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    match step {
        Check::Status(status) => reply(status, "health"),
        Check::Stall => reply(200, "late"),
    }
}

/// A TCP backend answering `PONG` to what it reads while `healthy`, `NOPE` otherwise.
async fn tcp_origin(healthy: Arc<AtomicBool>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let healthy = healthy.clone();
            tokio::spawn(async move {
                let mut buffer = [0_u8; 64];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    let answer: &[u8] = if healthy.load(Ordering::SeqCst) {
                        b"PONG"
                    } else {
                        b"NOPE"
                    };
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, task)
}

/// An h2 backend answering `grpc.health.v1.Health/Check` with SERVING while `serving`, else NOT_SERVING; it
/// records the service asked about.
/// The gRPC checks a backend received: `authority/path` and the request body.
type Asked = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn grpc_origin(
    serving: Arc<AtomicBool>,
    asked: Asked,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (serving, asked) = (serving.clone(), asked.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let (serving, asked) = (serving.clone(), asked.clone());
                        async move {
                            let path = request.uri().path().to_string();
                            let authority = request
                                .uri()
                                .authority()
                                .map(|a| a.to_string())
                                .unwrap_or_default();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            asked
                                .lock()
                                .unwrap()
                                .push((format!("{authority}{path}"), body.to_vec()));
                            let status = if serving.load(Ordering::SeqCst) { 1 } else { 2 };
                            let frame = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let mut response = http::Response::new(grpc_body(frame, trailers));
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/grpc"),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, task)
}

/// A body of one data frame, then trailers.
struct GrpcBody(std::collections::VecDeque<hyper::body::Frame<Bytes>>);

fn grpc_body(data: Bytes, trailers: http::HeaderMap) -> GrpcBody {
    GrpcBody(
        [
            hyper::body::Frame::data(data),
            hyper::body::Frame::trailers(trailers),
        ]
        .into_iter()
        .collect(),
    )
}

impl hyper::body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The two proxies.

struct Proxy {
    kind: &'static str,
    admin: u16,
    listen: u16,
    _envoy: Option<support::envoy::Envoy>,
    sidecar: Option<support::sidecar::Sidecar>,
}

impl Proxy {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.listen);
        let reply = support::client::get(&url, headers).await;
        (reply.status, reply.body)
    }

    async fn admin(&self, path: &str) -> String {
        support::client::get(&format!("http://127.0.0.1:{}{path}", self.admin), &[])
            .await
            .body
    }

    /// `/clusters`' health flags for `address` in `cluster`.
    async fn flags(&self, cluster: &str, address: SocketAddr) -> String {
        let key = format!("{cluster}::{address}::health_flags::");
        self.admin("/clusters")
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&key).map(str::to_string))
            .unwrap_or_else(|| "(not listed)".into())
    }

    /// A cluster statistic from `/stats/prometheus` (`envoy_cluster_<name>`), with or without `_total`.
    async fn stat(&self, name: &str, cluster: &str) -> u64 {
        let text = self.admin("/stats/prometheus").await;
        let label = format!("envoy_cluster_name=\"{cluster}\"");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&label))
            .find(|l| {
                let metric = l.split('{').next().unwrap_or("");
                metric == format!("envoy_cluster_{name}")
                    || metric == format!("envoy_cluster_{name}_total")
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    fn log(&self) -> String {
        self.sidecar
            .as_ref()
            .map(support::sidecar::Sidecar::log_text)
            .unwrap_or_default()
    }
}

/// Starts the YAML (with `{admin}` and `{listen}` filled here, the rest by the caller) in Envoy, when there is
/// one, and in Outrigger. `make` fills the rest for each proxy, so each may get its own backends.
fn start(test: &str, kind: &'static str, yaml: &str) -> Proxy {
    let dir =
        std::env::temp_dir().join(format!("outrigger-clusters-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (admin, listen) = (free_port(), free_port());
    let yaml = support::proxy::fill(
        yaml,
        &[("admin", admin.to_string()), ("listen", listen.to_string())],
    );
    if kind == "envoy" {
        let envoy = support::peer("envoy").unwrap();
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let mut process = support::envoy::Envoy::start(&envoy, &config);
        process.wait_for_port(listen);
        process.wait_for_port(admin);
        return Proxy {
            kind,
            admin,
            listen,
            _envoy: Some(process),
            sidecar: None,
        };
    }
    let sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &yaml, admin);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            sidecar.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proxy {
        kind,
        admin,
        listen,
        _envoy: None,
        sidecar: Some(sidecar),
    }
}

/// The proxies to compare: Envoy (when installed; under CI it must be) and Outrigger.
fn kinds() -> Vec<&'static str> {
    let mut kinds = Vec::new();
    if support::peer("envoy").is_some() {
        kinds.push("envoy");
    }
    kinds.push("outrigger");
    kinds
}

async fn eventually<F, Fut>(what: &str, proxy: &Proxy, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: {what} did not happen in 10s\n{}",
            proxy.kind,
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Active HTTP health checks.

const HTTP_CHECKS: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: /}, route: {cluster: app}}]
  clusters:
  - name: app
    connect_timeout: 1s
    # Envoy's 1s merge window would hold back a second health change within a second from the workers.
    common_lb_config: {healthy_panic_threshold: {value: 0}, update_merge_window: 0s}
    health_checks:
    - timeout: 0.4s
      interval: 0.25s
      no_traffic_interval: 0.25s
      unhealthy_threshold: 3
      healthy_threshold: 2
      http_health_check:
        path: /healthz
        host: app.internal
        retriable_statuses: [{start: 503, end: 504}]
        request_headers_to_add: [{header: {key: x-probe, value: outrigger-test}}]
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {app}}}}
"#;

/// The script of the backend's health checks, and the health flags expected after each.
const SCRIPT: &[(Check, &str)] = &[
    // The first check alone makes the host healthy.
    (Check::Status(200), "healthy"),
    (Check::Status(200), "healthy"),
    // A retriable status counts to unhealthy_threshold (3).
    (Check::Status(503), "healthy"),
    (Check::Status(503), "healthy"),
    (Check::Status(503), "/failed_active_hc"),
    // Back after healthy_threshold (2) successes.
    (Check::Status(200), "/failed_active_hc"),
    (Check::Status(200), "healthy"),
    // Any other status fails the host at once.
    (Check::Status(500), "/failed_active_hc"),
    (Check::Status(200), "/failed_active_hc"),
    (Check::Status(200), "healthy"),
    // Timeouts count to the threshold; a success in between starts the count again.
    (Check::Stall, "healthy"),
    (Check::Stall, "healthy"),
    (Check::Status(200), "healthy"),
    (Check::Stall, "healthy"),
    (Check::Stall, "healthy"),
    // Failed by a timeout: Envoy adds `/active_hc_timeout` until the host is healthy again.
    (Check::Stall, "/failed_active_hc/active_hc_timeout"),
    (Check::Status(200), "/failed_active_hc/active_hc_timeout"),
    (Check::Status(200), "healthy"),
];

/// After each scripted check: the health flags, and what a request gets (panic threshold 0: a failed host's
/// cluster has nothing to send to, 503); at the end, the statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_checks_follow_thresholds_like_envoy() {
    let mut seen_by_kind = Vec::new();
    for kind in kinds() {
        let origin = Origin::start("app", SCRIPT.iter().map(|(c, _)| *c).collect()).await;
        let yaml = support::proxy::fill(HTTP_CHECKS, &[("app", origin.address.port().to_string())]);
        let proxy = start("http", kind, &yaml);
        let mut steps = Vec::new();
        for (i, (check, _)) in SCRIPT.iter().enumerate() {
            eventually("the next health check", &proxy, || {
                let n = origin.checks.load(Ordering::SeqCst);
                async move { n > i }
            })
            .await;
            // The result is applied as the answer arrives (or the timeout fires); the next check is an interval
            // after that.
            let settle = match check {
                Check::Stall => 460,
                Check::Status(_) => 60,
            };
            tokio::time::sleep(Duration::from_millis(settle)).await;
            let flags = proxy.flags("app", origin.address).await;
            let (status, _) = proxy.get("/", &[]).await;
            steps.push(format!("{} {:?}: {flags} {status}", i + 1, check));
        }
        let expected: Vec<String> = SCRIPT
            .iter()
            .enumerate()
            .map(|(i, (check, flags))| {
                let status = if *flags == "healthy" { 200 } else { 503 };
                format!("{} {check:?}: {flags} {status}", i + 1)
            })
            .collect();
        assert_eq!(steps, expected, "{kind}: after each check\n{}", proxy.log());
        let mut stats = BTreeMap::new();
        for name in [
            "health_check_success",
            "health_check_failure",
            "health_check_network_failure",
            "health_check_passive_failure",
            "health_check_healthy",
            "health_check_degraded",
        ] {
            stats.insert(name, proxy.stat(name, "app").await);
        }
        let attempts = proxy.stat("health_check_attempt", "app").await;
        assert!(
            (SCRIPT.len() as u64..=SCRIPT.len() as u64 + 1).contains(&attempts),
            "{kind}: {attempts} attempts"
        );
        let first = origin.first_check.lock().unwrap().clone().unwrap();
        let request: Vec<(String, String)> = ["host", "user-agent", "x-probe", ":method", ":path"]
            .iter()
            .map(|k| (k.to_string(), first.get(*k).cloned().unwrap_or_default()))
            .collect();
        seen_by_kind.push((kind, stats, request, steps));
    }
    let expected_stats: BTreeMap<&str, u64> = [
        ("health_check_success", 9),
        ("health_check_failure", 9),
        ("health_check_network_failure", 5),
        ("health_check_passive_failure", 0),
        ("health_check_healthy", 1),
        ("health_check_degraded", 0),
    ]
    .into_iter()
    .collect();
    for (kind, stats, request, _) in &seen_by_kind {
        assert_eq!(stats, &expected_stats, "{kind}: statistics");
        let want: Vec<(String, String)> = [
            ("host", "app.internal"),
            ("user-agent", "Envoy/HC"),
            ("x-probe", "outrigger-test"),
            (":method", "GET"),
            (":path", "/healthz"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(request, &want, "{kind}: the health check request");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TCP and gRPC health checks.

const TCP_GRPC_CHECKS: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: tcp
  clusters:
  - name: tcp
    connect_timeout: 1s
    health_checks:
    - timeout: 0.3s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 1
      tcp_health_check:
        send: {text: "50494e47"}
        receive: [{text: "504f4e47"}]
    load_assignment:
      cluster_name: tcp
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {socket_address: {address: 127.0.0.1, port_value: {unused}}}
            health_check_config: {port_value: {tcp}}
  - name: grpc
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    health_checks:
    - timeout: 0.5s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 1
      grpc_health_check: {service_name: demo.Greeter, authority: greeter.internal}
    load_assignment:
      cluster_name: grpc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {grpc}}}}
"#;

/// A TCP check answered with the wrong payload waits for its timeout (a network failure) and fails the host at
/// the threshold; a gRPC NOT_SERVING fails it at once; both come back. The TCP checks go to the endpoint's
/// `health_check_config.port_value`, not its own port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_grpc_health_checks_like_envoy() {
    for kind in kinds() {
        let tcp_healthy = Arc::new(AtomicBool::new(true));
        let serving = Arc::new(AtomicBool::new(true));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (tcp, tcp_task) = tcp_origin(tcp_healthy.clone()).await;
        let (grpc, grpc_task) = grpc_origin(serving.clone(), asked.clone()).await;
        let unused = free_port();
        let yaml = support::proxy::fill(
            TCP_GRPC_CHECKS,
            &[
                ("tcp", tcp.port().to_string()),
                ("grpc", grpc.port().to_string()),
                ("unused", unused.to_string()),
            ],
        );
        let proxy = start("tcp-grpc", kind, &yaml);
        let tcp_host: SocketAddr = format!("127.0.0.1:{unused}").parse().unwrap();
        for (cluster, host) in [("tcp", tcp_host), ("grpc", grpc)] {
            eventually("healthy", &proxy, || {
                let proxy = &proxy;
                async move { proxy.flags(cluster, host).await == "healthy" }
            })
            .await;
        }
        tcp_healthy.store(false, Ordering::SeqCst);
        let before = proxy.stat("health_check_network_failure", "tcp").await;
        let started = Instant::now();
        while !proxy
            .flags("tcp", tcp_host)
            .await
            .starts_with("/failed_active_hc")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{kind}: the TCP host did not fail: {}\n{}",
                proxy.admin("/stats?filter=health_check").await,
                proxy.admin("/clusters").await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let network = proxy.stat("health_check_network_failure", "tcp").await - before;
        assert!(
            (2..=3).contains(&network),
            "{kind}: {network} network failures to fail the TCP host (threshold 2)"
        );
        let failures_before = proxy.stat("health_check_failure", "grpc").await;
        serving.store(false, Ordering::SeqCst);
        eventually("the gRPC host fails", &proxy, || {
            let proxy = &proxy;
            async move { proxy.flags("grpc", grpc).await == "/failed_active_hc" }
        })
        .await;
        // NOT_SERVING fails the host at the first answer, whatever unhealthy_threshold says.
        let failures = proxy.stat("health_check_failure", "grpc").await - failures_before;
        assert_eq!(failures, 1, "{kind}: gRPC failures before the host failed");
        assert_eq!(
            proxy.stat("health_check_network_failure", "grpc").await,
            0,
            "{kind}"
        );
        tcp_healthy.store(true, Ordering::SeqCst);
        serving.store(true, Ordering::SeqCst);
        for (cluster, host) in [("tcp", tcp_host), ("grpc", grpc)] {
            eventually("healthy again", &proxy, || {
                let proxy = &proxy;
                async move { proxy.flags(cluster, host).await == "healthy" }
            })
            .await;
        }
        let (path, body) = asked.lock().unwrap().first().cloned().unwrap();
        assert_eq!(
            path, "greeter.internal/grpc.health.v1.Health/Check",
            "{kind}"
        );
        let mut expected = vec![0, 0, 0, 0, 14, 0x0a, 12];
        expected.extend_from_slice(b"demo.Greeter");
        assert_eq!(body, expected, "{kind}: the HealthCheckRequest");
        tcp_task.abort();
        grpc_task.abort();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Consistent hashing.

const HASHING: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /ring}
                route: {cluster: ring, hash_policy: [{header: {header_name: x-user}}]}
              - match: {prefix: /maglev}
                route: {cluster: maglev, hash_policy: [{query_parameter: {name: user}}]}
              - match: {prefix: /typed}
                route:
                  cluster: typed
                  hash_policy:
                  - cookie: {name: session}
                    terminal: true
                  - header: {header_name: x-user}
  clusters:
  - name: ring
    connect_timeout: 1s
    lb_policy: RING_HASH
    ring_hash_lb_config: {minimum_ring_size: 64}
    load_assignment: {cluster_name: ring, endpoints: [{lb_endpoints: {endpoints}}]}
  - name: maglev
    connect_timeout: 1s
    lb_policy: MAGLEV
    maglev_lb_config: {table_size: 65537}
    load_assignment: {cluster_name: maglev, endpoints: [{lb_endpoints: {weighted}}]}
  - name: typed
    connect_timeout: 1s
    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.ring_hash
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash
    load_assignment: {cluster_name: typed, endpoints: [{lb_endpoints: {endpoints}}]}
"#;

/// The same keys reach the same backends in Envoy and in Outrigger (both proxies in front of the same four
/// backends, so the hosts' addresses, which the ring and the table hash, are the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_picks_the_hosts_envoy_picks() {
    let names = ["a", "b", "c", "d"];
    let mut origins = Vec::new();
    for name in names {
        origins.push(Origin::start(name, Vec::new()).await);
    }
    let endpoints = |weighted: bool| {
        let list: Vec<String> = origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let weight = if weighted { i + 1 } else { 1 };
                format!(
                    "{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}, load_balancing_weight: {weight}}}",
                    o.address.port()
                )
            })
            .collect();
        format!("[{}]", list.join(", "))
    };
    let yaml = support::proxy::fill(
        HASHING,
        &[
            ("endpoints", endpoints(false)),
            ("weighted", endpoints(true)),
        ],
    );
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut chosen_by_kind = Vec::new();
    for kind in kinds() {
        let proxy = start("hashing", kind, &yaml);
        let mut chosen = Vec::new();
        for key in &keys {
            let (_, ring) = proxy.get("/ring", &[("x-user", key)]).await;
            let (_, again) = proxy.get("/ring", &[("x-user", key)]).await;
            assert_eq!(ring, again, "{kind}: the same key, the same host");
            let (_, maglev) = proxy.get(&format!("/maglev?user={key}"), &[]).await;
            // The cookie is terminal: the header after it is not hashed.
            let cookie = format!("session={key}");
            let (_, typed) = proxy
                .get("/typed", &[("cookie", &cookie), ("x-user", "ignored")])
                .await;
            chosen.push(format!(
                "{key}: ring {ring}, maglev {maglev}, typed {typed}"
            ));
        }
        let spread: std::collections::BTreeSet<&str> = chosen
            .iter()
            .flat_map(|c| c.split(", ").map(|p| p.rsplit(' ').next().unwrap_or("")))
            .collect();
        assert_eq!(
            spread.len(),
            4,
            "{kind}: keys spread over every host: {chosen:?}"
        );
        chosen_by_kind.push((kind, chosen));
    }
    if let [(_, envoy), (_, outrigger)] = chosen_by_kind.as_slice() {
        let differ: Vec<String> = envoy
            .iter()
            .zip(outrigger)
            .filter(|(e, o)| e != o)
            .map(|(e, o)| format!("envoy {e} / outrigger {o}"))
            .collect();
        assert!(differ.is_empty(), "hosts differ:\n{}", differ.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Request mirroring.

/// What a recording backend received: method, path and query, `Host`, `x-envoy-internal`, body.
type Received = Arc<Mutex<Vec<(String, String, String, String, Vec<u8>)>>>;

/// An HTTP/1.1 backend that records each request and answers `name` after `delay`.
async fn recorder(
    name: &'static str,
    delay: Duration,
    received: Received,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let received = received.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let received = received.clone();
                        async move {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .map(|v| v.to_str().unwrap().to_string())
                                    .unwrap_or_default()
                            };
                            let (method, path) =
                                (request.method().to_string(), request.uri().to_string());
                            let (host, internal) = (header("host"), header("x-envoy-internal"));
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            received.lock().unwrap().push((
                                method,
                                path,
                                host,
                                internal,
                                body.to_vec(),
                            ));
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, task)
}

/// A POST with `body`, and `host`: (status, body, time taken).
async fn post_with_body(
    port: u16,
    path: &str,
    host: &str,
    body: &'static str,
) -> (u16, String, Duration) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        started.elapsed(),
    )
}

const MIRRORING: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /mirrored}
                route: {cluster: app, request_mirror_policies: [{cluster: mirror}]}
              - match: {prefix: /by-header}
                route: {cluster: app, request_mirror_policies: [{cluster_header: x-mirror-to}]}
              - match: {prefix: /never}
                route:
                  cluster: app
                  request_mirror_policies:
                  - cluster: mirror
                    runtime_fraction: {default_value: {numerator: 0}, runtime_key: mirror.never}
              - match: {prefix: /down}
                route: {cluster: app, request_mirror_policies: [{cluster: down}]}
              - match: {prefix: /slow}
                route: {cluster: app, timeout: 1s, request_mirror_policies: [{cluster: slow}]}
  clusters:
  - name: app
    connect_timeout: 1s
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {app}}}}}]}]}
  - name: mirror
    connect_timeout: 1s
    load_assignment: {cluster_name: mirror, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {mirror}}}}}]}]}
  - name: down
    connect_timeout: 1s
    load_assignment: {cluster_name: down, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {down}}}}}]}]}
  - name: slow
    connect_timeout: 1s
    load_assignment: {cluster_name: slow, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {slow}}}}}]}]}
"#;

/// The same requests through Envoy 1.40 and Outrigger: the mirror receives method, path, body and the `-shadow`
/// host (and `x-envoy-internal`); a 0 % fraction mirrors nothing; a mirror that is down or slower than the route
/// timeout changes nothing in the main response or its timing; the mirror clusters' statistics are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_mirroring_like_envoy() {
    let mut stats_by_kind = Vec::new();
    for kind in kinds() {
        let app: Received = Arc::default();
        let mirror: Received = Arc::default();
        let slow: Received = Arc::default();
        let (app_address, app_task) = recorder("app", Duration::ZERO, app.clone()).await;
        let (mirror_address, mirror_task) =
            recorder("mirror", Duration::ZERO, mirror.clone()).await;
        let (slow_address, slow_task) =
            recorder("slow", Duration::from_secs(3), slow.clone()).await;
        let yaml = support::proxy::fill(
            MIRRORING,
            &[
                ("app", app_address.port().to_string()),
                ("mirror", mirror_address.port().to_string()),
                ("slow", slow_address.port().to_string()),
                ("down", free_port().to_string()),
            ],
        );
        let proxy = start("mirroring", kind, &yaml);
        let (status, body, _) = post_with_body(
            proxy.listen,
            "/mirrored/orders?id=7",
            "shop.test:8080",
            "order-7",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "app"), "{kind}");
        let (status, body) = proxy
            .get("/by-header/x", &[("x-mirror-to", "mirror")])
            .await;
        assert_eq!((status, body.as_str()), (200, "app"), "{kind}");
        // A header naming no cluster: no mirror, the main request unchanged.
        let (status, _) = proxy
            .get("/by-header/y", &[("x-mirror-to", "nowhere")])
            .await;
        assert_eq!(status, 200, "{kind}");
        for _ in 0..5 {
            let (status, _, _) = post_with_body(proxy.listen, "/never", "shop.test", "no").await;
            assert_eq!(status, 200, "{kind}");
        }
        let (status, body, _) = post_with_body(proxy.listen, "/down", "shop.test", "lost").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "app"),
            "{kind}: the mirror down"
        );
        let (status, body, took) = post_with_body(proxy.listen, "/slow", "shop.test", "late").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "app"),
            "{kind}: the mirror slow"
        );
        assert!(
            took < Duration::from_millis(900),
            "{kind}: the main request waited {took:?} for the mirror"
        );

        eventually("the slow mirror times out", &proxy, || {
            let proxy = &proxy;
            async move { proxy.stat("upstream_rq_timeout", "slow").await == 1 }
        })
        .await;
        eventually("the mirrors are answered", &proxy, || {
            let mirror = mirror.clone();
            async move { mirror.lock().unwrap().len() >= 2 }
        })
        .await;
        let received = mirror.lock().unwrap().clone();
        assert_eq!(
            received,
            vec![
                (
                    "POST".to_string(),
                    "/mirrored/orders?id=7".to_string(),
                    "shop.test-shadow:8080".to_string(),
                    "true".to_string(),
                    b"order-7".to_vec()
                ),
                (
                    "GET".to_string(),
                    "/by-header/x".to_string(),
                    format!("127.0.0.1-shadow:{}", proxy.listen),
                    "true".to_string(),
                    Vec::new()
                ),
            ],
            "{kind}: what the mirror received (and nothing from the 0 % route)"
        );
        let slow_received = slow.lock().unwrap().clone();
        assert_eq!(slow_received.len(), 1, "{kind}");
        assert_eq!(slow_received[0].4, b"late".to_vec(), "{kind}");
        // The main requests themselves, untouched by mirroring.
        let app_received = app.lock().unwrap().clone();
        assert_eq!(app_received.len(), 10, "{kind}");
        assert!(
            app_received
                .iter()
                .all(|r| r.3.is_empty() && !r.2.contains("-shadow")),
            "{kind}"
        );

        // Envoy's text `/stats`, as both serve it. (Outrigger has no per-code `upstream_rq_200`, and no
        // `internal.upstream_rq_*`, which Envoy keeps for requests marked `x-envoy-internal` such as mirrors.)
        let text = proxy.admin("/stats").await;
        let mut stats = Vec::new();
        for cluster in ["app", "mirror", "down", "slow"] {
            for name in [
                "upstream_rq_total",
                "upstream_rq_2xx",
                "upstream_rq_5xx",
                "upstream_rq_timeout",
                "upstream_cx_connect_fail",
            ] {
                let key = format!("cluster.{cluster}.{name}: ");
                let value = text
                    .lines()
                    .find_map(|l| l.strip_prefix(&key))
                    .unwrap_or("0")
                    .to_string();
                stats.push(format!("{cluster}.{name}: {value}"));
            }
        }
        assert!(
            stats.contains(&"mirror.upstream_rq_total: 2".to_string()),
            "{kind}: {stats:?}"
        );
        assert!(
            stats.contains(&"down.upstream_cx_connect_fail: 1".to_string()),
            "{kind}: {stats:?}"
        );
        stats_by_kind.push((kind, stats));
        drop(proxy);
        for task in [app_task, mirror_task, slow_task] {
            task.abort();
        }
    }
    if let [(_, envoy), (_, outrigger)] = stats_by_kind.as_slice() {
        assert_eq!(
            envoy, outrigger,
            "mirror statistics: Envoy (left) and Outrigger (right)"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Locality weighted load balancing.

const LOCALITIES: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: /factor}, route: {cluster: factor}}
              - {match: {prefix: /}, route: {cluster: app}}
  clusters:
  - name: factor
    connect_timeout: 1s
    common_lb_config: {locality_weighted_lb_config: {}}
    load_assignment:
      cluster_name: factor
      # 2 of 4 healthy times 2.0: the second locality keeps its whole weight.
      policy: {overprovisioning_factor: 200}
      endpoints:
      - locality: {region: eu, zone: a}
        load_balancing_weight: 1
        lb_endpoints: {a}
      - locality: {region: eu, zone: b}
        load_balancing_weight: 3
        lb_endpoints: {b}
  - name: app
    connect_timeout: 1s
    common_lb_config: {locality_weighted_lb_config: {}}
    load_assignment:
      cluster_name: app
      endpoints:
      - locality: {region: eu, zone: a}
        load_balancing_weight: 1
        lb_endpoints: {a}
      - locality: {region: eu, zone: b}
        load_balancing_weight: 3
        lb_endpoints: {b}
      # No weight: no traffic under locality weighting.
      - locality: {region: eu, zone: c}
        lb_endpoints: {c}
"#;

/// 1000 requests over localities weighted 1:3, the second with half of its hosts unhealthy: its weight becomes
/// 3 * min(1, 1.4 * 2/4) = 2.1, so the first gets 1/3.1 (32.3 %) and the second 67.7 %; the unweighted third
/// none. With `overprovisioning_factor: 200` the second keeps its weight 3: 25 % and 75 %. Envoy walks the weights
/// deterministically, Outrigger draws at random by them: each count must be within 50 (5 points, over 3.5
/// standard deviations of the random draw) of the expected one, in both proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_weights_split_like_envoy() {
    let names = ["a1", "a2", "b1", "b2", "b3", "b4", "c1"];
    let mut origins = Vec::new();
    for name in names {
        origins.push(Origin::start(name, Vec::new()).await);
    }
    let list = |range: std::ops::Range<usize>, unhealthy: &[usize]| {
        let items: Vec<String> = range
            .map(|i| {
                let status = if unhealthy.contains(&i) { ", health_status: UNHEALTHY" } else { "" };
                format!(
                    "{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}{status}}}",
                    origins[i].address.port()
                )
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    let yaml = support::proxy::fill(
        LOCALITIES,
        &[
            ("a", list(0..2, &[])),
            ("b", list(2..6, &[4, 5])),
            ("c", list(6..7, &[])),
        ],
    );
    const REQUESTS: usize = 1000;
    for kind in kinds() {
        let proxy = start("localities", kind, &yaml);
        let split = |path: &'static str| {
            let proxy = &proxy;
            async move {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for _ in 0..REQUESTS {
                    let (status, body) = proxy.get(path, &[]).await;
                    assert_eq!(status, 200, "{kind}");
                    *counts.entry(body).or_default() += 1;
                }
                counts
            }
        };
        let zone = |counts: &BTreeMap<String, usize>, prefix: &str| -> usize {
            counts
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(_, n)| n)
                .sum()
        };
        let factor = split("/factor").await;
        let a = zone(&factor, "a");
        assert!(
            a.abs_diff(REQUESTS / 4) <= 50,
            "{kind}: factor 200, zone a got {a}: {factor:?}"
        );
        eprintln!("{kind}, factor 200: {factor:?}");
        let counts = split("/").await;
        let (a, b, c) = (zone(&counts, "a"), zone(&counts, "b"), zone(&counts, "c"));
        let expected_a = (REQUESTS as f64 / 3.1).round() as usize;
        assert!(
            a.abs_diff(expected_a) <= 50,
            "{kind}: zone a got {a}, expected about {expected_a}: {counts:?}"
        );
        assert_eq!(
            a + b,
            REQUESTS,
            "{kind}: zone c (no weight) got {c}: {counts:?}"
        );
        assert!(
            !counts.contains_key("b3") && !counts.contains_key("b4"),
            "{kind}: unhealthy hosts: {counts:?}"
        );
        // Within a locality, round robin: both healthy hosts of each zone are used.
        assert!(
            counts.get("a1").is_some_and(|n| *n > 0) && counts.get("a2").is_some_and(|n| *n > 0),
            "{kind}: {counts:?}"
        );
        eprintln!("{kind}: {counts:?}");
    }
}
