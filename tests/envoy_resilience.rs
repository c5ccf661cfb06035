//! Envoy's resilience features in real Envoy 1.40 and in Outrigger side by side: the HTTP local rate limit
//! (listener-wide, per route, and per descriptor from rate limit actions), circuit breakers (active requests, the pending queue, retries), retries (request
//! bodies, exhaustion, connect failures, retriable-4xx, the body buffer limit, attempt counts) and outlier
//! detection (consecutive 5xx and gateway failures, local-origin failures, success rate, failure percentage,
//! `max_ejection_percent`, no healthy upstream), thresholds by priority, the retry budget's percent, the connect
//! timeout and locality weights, the router's own `x-envoy-*` headers, and how often a DNS cluster resolves.
//!
//! Each test fills one template from `tests/configs/resilience/` once per proxy (the same YAML, with each proxy's
//! own ports and its own backends so that request counts don't mix), runs it in `envoy` and in
//! `outrigger run -c`, sends both the same requests, and requires what it sees of each (statuses, bodies,
//! `x-envoy-overloaded`, which backend answered, what the backends received, values in `/stats/prometheus`) to
//! equal what Envoy 1.40 was recorded doing (`ENVOY_FACTS.md`). Envoy is held to the record too: a change in
//! Envoy shows as Envoy's failure, not Outrigger's. Envoy has no response-flags header, so Outrigger's
//! `x-outrigger-response-flags` is checked alone, against the flag Envoy writes in its access log for the case.
//!
//! Statistics are compared by name with one trailing `_total` dropped on both sides (Envoy's Prometheus output
//! adds none; Outrigger's OpenMetrics encoder ends every counter in `_total`), and a sample counts only when its
//! labels are exactly the ones asked for (so `upstream_rq_total` is not mixed up with the per-code
//! `upstream_rq{envoy_response_code=...}`, which drops to the same name). A statistic that is missing reads 0.
//!
//! Without Envoy (outside CI) Outrigger alone is held to the record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::tcp::free_port;
use tokio::net::TcpListener;

const RATE_LIMIT_LISTENER: &str = include_str!("configs/resilience/rate-limit-listener.yaml");
const RATE_LIMIT_ROUTE: &str = include_str!("configs/resilience/rate-limit-route.yaml");
const RATE_LIMIT_HEADERS: &str = include_str!("configs/resilience/rate-limit-headers.yaml");
const RATE_LIMIT_DESCRIPTORS: &str = include_str!("configs/resilience/rate-limit-descriptors.yaml");
const RATE_LIMIT_PER_CONNECTION: &str =
    include_str!("configs/resilience/rate-limit-per-connection.yaml");
const RATE_LIMIT_STAGES: &str = include_str!("configs/resilience/rate-limit-stages.yaml");
const BREAKER_REQUESTS: &str = include_str!("configs/resilience/circuit-breaker-requests.yaml");
const BREAKER_PENDING: &str = include_str!("configs/resilience/circuit-breaker-pending.yaml");
const RETRY_OVERFLOW: &str = include_str!("configs/resilience/retry-overflow.yaml");
const RETRY: &str = include_str!("configs/resilience/retry.yaml");
const RETRY_CONNECT_FAILURE: &str = include_str!("configs/resilience/retry-connect-failure.yaml");
const RETRY_BUFFER_LIMIT: &str = include_str!("configs/resilience/retry-buffer-limit.yaml");
const RETRY_ATTEMPT_COUNT: &str = include_str!("configs/resilience/retry-attempt-count.yaml");
const RETRY_POLICY_DETAILS: &str = include_str!("configs/resilience/retry-policy-details.yaml");
const OUTLIER: &str = include_str!("configs/resilience/outlier.yaml");
const TIMEOUTS: &str = include_str!("configs/resilience/timeouts.yaml");
const MORE: &str = include_str!("configs/resilience/more.yaml");
const NO_HEALTHY_UPSTREAM: &str = include_str!("configs/resilience/no-healthy-upstream.yaml");
const ROUTER_HEADERS: &str = include_str!("configs/resilience/router-headers.yaml");
const DNS_REFRESH: &str = include_str!("configs/resilience/dns-refresh.yaml");
const OUTLIER_DETECTORS: &str = include_str!("configs/resilience/outlier-detectors.yaml");
const UPSTREAM_SETTINGS: &str = include_str!("configs/resilience/upstream-settings.yaml");
const FAULT: &str = include_str!("configs/resilience/fault.yaml");

/// Envoy's body for a request refused by a circuit breaker.
const OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
const FLAGS: &str = "x-outrigger-response-flags";

// ---------------------------------------------------------------------------------------------------------------
// Backends that fail on purpose.

/// What a backend answers, on top of the path conventions of [`answer`].
#[derive(Clone, Copy, Debug)]
enum Behavior {
    /// 200, or what the path asks for.
    Normal,
    /// This status for every request, whatever the path.
    Always(u16),
    /// This status for every other request (the first, third, ...), 200 for the rest.
    EveryOther(u16),
}

/// One request as a backend received it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    body: Bytes,
    attempt: Option<String>,
    /// `x-envoy-expected-rq-timeout-ms` as the router set it.
    expected_timeout: Option<String>,
}

#[derive(Default)]
struct Record {
    seen: Vec<Seen>,
    /// Requests so far for each `fail/<n>/<key>` key.
    failures: HashMap<String, u64>,
}

struct Origin {
    name: &'static str,
    address: SocketAddr,
    record: Arc<Mutex<Record>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// An HTTP/1.1 server on a free loopback port, until dropped.
    async fn start(name: &'static str, behavior: Behavior) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(Record::default()));
        let shared = record.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(name, behavior, record.clone(), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            name,
            address,
            record,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.record.lock().unwrap().seen.clone()
    }

    fn count(&self) -> usize {
        self.record.lock().unwrap().seen.len()
    }
}

/// The body a backend answers with.
fn origin_body(name: &str, received: usize) -> String {
    format!("{{\"backend\":\"{name}\",\"len\":{received}}}")
}

/// Answers [`origin_body`] with `x-backend: NAME`. Anywhere in the path, `slow/<ms>` waits that long before
/// answering, `status/<code>` answers that status, `fail/<n>/<key>` answers 503 to the first n requests with
/// that key and 200 after, and `slowfirst/<n>/<key>` waits a second before answering the first n requests with
/// that key.
async fn answer(
    name: &'static str,
    behavior: Behavior,
    record: Arc<Mutex<Record>>,
    request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut status = 200;
    let mut delay = 0;
    {
        let mut record = record.lock().unwrap();
        record.seen.push(Seen {
            method: parts.method.to_string(),
            body: body.clone(),
            attempt: parts
                .headers
                .get("x-envoy-attempt-count")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            expected_timeout: parts
                .headers
                .get("x-envoy-expected-rq-timeout-ms")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        });
        for (i, segment) in segments.iter().enumerate() {
            let number = segments.get(i + 1).and_then(|s| s.parse::<u64>().ok());
            match (*segment, number) {
                ("slow", Some(ms)) => delay = ms,
                ("status", Some(code)) => status = u16::try_from(code).unwrap_or(500),
                ("fail", Some(n)) => {
                    if let Some(key) = segments.get(i + 2) {
                        let so_far = record.failures.entry(key.to_string()).or_default();
                        if *so_far < n {
                            status = 503;
                        }
                        *so_far += 1;
                    }
                }
                ("slowfirst", Some(n)) => {
                    if let Some(key) = segments.get(i + 2) {
                        let so_far = record.failures.entry(format!("slow:{key}")).or_default();
                        if *so_far < n {
                            delay = 1000;
                        }
                        *so_far += 1;
                    }
                }
                _ => {}
            }
        }
    }
    match behavior {
        Behavior::Always(code) => status = code,
        // The request just recorded is the n-th: odd ones fail.
        Behavior::EveryOther(code) if record.lock().unwrap().seen.len() % 2 == 1 => status = code,
        _ => {}
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = http::Response::new(Full::new(Bytes::from(origin_body(name, body.len()))));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let headers = response.headers_mut();
    headers.insert("x-backend", http::HeaderValue::from_static(name));
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A request body of `len` bytes that differs from one position to the next.
fn pattern(len: usize) -> Bytes {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

// ---------------------------------------------------------------------------------------------------------------
// The client side.

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a connection of its own, answered within 10 s.
async fn send(port: u16, method: &str, path: &str, body: Bytes) -> Reply {
    send_with(port, method, path, &[], body).await
}

/// [`send`] with request headers.
async fn send_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).unwrap();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(Reply {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => panic!("{method} {path} on port {port}: {e}"),
        Err(_) => panic!("{method} {path} on port {port}: no answer in 10 s"),
    }
}

async fn get(port: u16, path: &str) -> Reply {
    send(port, "GET", path, Bytes::new()).await
}

/// `count` GETs at `path_i` (`{i}` replaced by the request's number), started `gap` apart, each on its own
/// connection; the replies in the order the requests were started.
async fn staggered(
    port: u16,
    path: &str,
    count: usize,
    gap: Duration,
) -> Vec<tokio::task::JoinHandle<Reply>> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let path = path.replace("{i}", &i.to_string());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(gap * u32::try_from(i).unwrap()).await;
            get(port, &path).await
        }));
    }
    tasks
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Reply>>) -> Vec<Reply> {
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// What the comparisons look at in a reply. Upstream replies carry the backend's name and body; local replies
/// (the proxy's own) have no backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct View {
    status: u16,
    backend: Option<String>,
    body: String,
    content_type: Option<String>,
    overloaded: Option<String>,
    ratelimited: Option<String>,
}

fn view(reply: &Reply) -> View {
    View {
        status: reply.status,
        backend: reply.header("x-backend"),
        body: reply.text(),
        content_type: reply.header("content-type"),
        overloaded: reply.header("x-envoy-overloaded"),
        ratelimited: reply.header("x-envoy-ratelimited"),
    }
}

fn views(replies: &[Reply]) -> Vec<View> {
    replies.iter().map(view).collect()
}

/// A reply passed on from backend `name`, which received `received` body bytes.
fn upstream(status: u16, name: &str, received: usize) -> View {
    View {
        status,
        backend: Some(name.to_string()),
        body: origin_body(name, received),
        content_type: Some("application/json".to_string()),
        overloaded: None,
        ratelimited: None,
    }
}

/// A reply the proxy made itself: plain text.
fn local(status: u16, body: &str) -> View {
    View {
        status,
        backend: None,
        body: body.to_string(),
        content_type: Some("text/plain".to_string()),
        overloaded: None,
        ratelimited: None,
    }
}

/// A circuit breaker's refusal.
fn overflow() -> View {
    View {
        overloaded: Some("true".to_string()),
        ..local(503, OVERFLOW)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics.

/// A statistic by its Envoy Prometheus name and its complete set of labels.
struct Stat {
    name: String,
    labels: Vec<(String, String)>,
}

fn stat(name: &str, labels: &[(&str, &str)]) -> Stat {
    Stat {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// `envoy_cluster_<name>{envoy_cluster_name=CLUSTER}`.
fn cluster_stat(name: &str, cluster: &str) -> Stat {
    stat(
        &format!("envoy_cluster_{name}"),
        &[("envoy_cluster_name", cluster)],
    )
}

/// `envoy_http_local_rate_limit_<name>{envoy_local_http_ratelimit_prefix=PREFIX}`.
fn rate_limit_stat(name: &str, prefix: &str) -> Stat {
    stat(
        &format!("envoy_http_local_rate_limit_{name}"),
        &[("envoy_local_http_ratelimit_prefix", prefix)],
    )
}

/// The sum of the samples of `wanted` in a Prometheus text page; 0 when there are none.
fn stat_value(text: &str, wanted: &Stat) -> u64 {
    let want = wanted.name.strip_suffix("_total").unwrap_or(&wanted.name);
    let total: f64 = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            if name.strip_suffix("_total").unwrap_or(name) != want {
                return None;
            }
            let labels: Vec<(String, String)> = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .filter_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            let exact = labels.len() == wanted.labels.len()
                && wanted.labels.iter().all(|l| labels.contains(l));
            if !exact {
                return None;
            }
            value.trim().parse::<f64>().ok()
        })
        .sum();
    total as u64
}

/// Each statistic with its value, named for the failure message.
type Values = Vec<(String, u64)>;

/// The expected values, named like [`Proxy::stats`] names them.
fn recorded(stats: &[Stat], values: &[u64]) -> Values {
    assert_eq!(
        stats.len(),
        values.len(),
        "one expected value per statistic"
    );
    stats
        .iter()
        .map(stat_label)
        .zip(values.iter().copied())
        .collect()
}

fn stat_label(stat: &Stat) -> String {
    let labels: Vec<String> = stat.labels.iter().map(|(_, v)| v.clone()).collect();
    format!("{}{{{}}}", stat.name, labels.join(","))
}

// ---------------------------------------------------------------------------------------------------------------
// The two proxies.

/// One proxy under test with its own backends.
struct Proxy {
    kind: &'static str,
    admin: u16,
    values: HashMap<String, u16>,
    origins: Vec<Origin>,
    log: PathBuf,
    /// Stopped when the proxy is dropped.
    _envoy: Option<support::envoy::Envoy>,
    sidecar: Option<support::sidecar::Sidecar>,
}

impl Proxy {
    fn port(&self, listener: &str) -> u16 {
        self.values[&format!("listen_{listener}")]
    }

    fn origin(&self, name: &str) -> &Origin {
        self.origins.iter().find(|o| o.name == name).unwrap()
    }

    async fn stats(&self, wanted: &[Stat]) -> Values {
        let text = get(self.admin, "/stats/prometheus").await.text();
        wanted
            .iter()
            .map(|s| (stat_label(s), stat_value(&text, s)))
            .collect()
    }

    /// `/clusters`' `health_flags` for backend `origin` of `cluster` (`healthy`, `/failed_outlier_check`, ...).
    async fn health_flags(&self, cluster: &str, origin: &str) -> Option<String> {
        let text = get(self.admin, "/clusters").await.text();
        let key = format!("{cluster}::{}::health_flags::", self.origin(origin).address);
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(str::to_string)
    }

    fn is_outrigger(&self) -> bool {
        self.sidecar.is_some()
    }
}

/// What a test runs on: a template, the listeners to wait for (`{listen_NAME}` in the template), the backends to
/// start (`{NAME}` is a backend's port) and the closed ports to name (`{NAME}`, nothing listens there).
struct Setup {
    template: &'static str,
    listeners: &'static [&'static str],
    origins: &'static [(&'static str, Behavior)],
    closed: &'static [&'static str],
}

/// Fills the template with new ports and new backends.
async fn fill(setup: &Setup) -> (HashMap<String, u16>, Vec<Origin>, String) {
    let mut values = HashMap::new();
    values.insert("admin".to_string(), free_port());
    for listener in setup.listeners {
        values.insert(format!("listen_{listener}"), free_port());
    }
    let mut origins = Vec::new();
    for (name, behavior) in setup.origins {
        let origin = Origin::start(name, *behavior).await;
        values.insert(name.to_string(), origin.address.port());
        origins.push(origin);
    }
    for name in setup.closed {
        values.insert(name.to_string(), free_port());
    }
    let pairs: Vec<(&str, String)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    let yaml = support::proxy::fill(setup.template, &pairs);
    (values, origins, yaml)
}

/// Real Envoy (when there is one) and Outrigger, each serving the template with its own ports and backends.
async fn start(test: &str, setup: &Setup) -> Vec<Proxy> {
    let dir = std::env::temp_dir().join(format!(
        "outrigger-resilience-{test}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut proxies = Vec::new();
    if let Some(envoy) = support::peer("envoy") {
        let (values, origins, yaml) = fill(setup).await;
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut process = support::envoy::Envoy::start(&envoy, &config);
        for listener in setup.listeners {
            process.wait_for_port(values[&format!("listen_{listener}")]);
        }
        process.wait_for_port(values["admin"]);
        proxies.push(Proxy {
            kind: "envoy",
            admin: values["admin"],
            values,
            origins,
            log: config.with_extension("log"),
            _envoy: Some(process),
            sidecar: None,
        });
    }
    let (values, origins, yaml) = fill(setup).await;
    let sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &yaml, values["admin"]);
    for listener in setup.listeners {
        let port = values[&format!("listen_{listener}")];
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "outrigger does not listen on {port} ({listener}):\n{}",
                sidecar.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    proxies.push(Proxy {
        kind: "outrigger",
        admin: values["admin"],
        values,
        origins,
        log: sidecar.log.clone(),
        _envoy: None,
        sidecar: Some(sidecar),
    });
    proxies
}

/// Requires every proxy's outcome to equal the one recorded from Envoy 1.40.
fn agree<T: Debug + PartialEq>(what: &str, expected: &T, outcomes: &[(&Proxy, T)]) {
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome != expected)
        .map(|(proxy, outcome)| {
            let note = if proxy.is_outrigger() {
                ""
            } else {
                " (Envoy itself no longer does what ENVOY_FACTS.md records)"
            };
            format!(
                "{}{note}, log {}:\n{outcome:#?}",
                proxy.kind,
                proxy.log.display()
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: Envoy 1.40 was recorded giving\n{expected:#?}\nbut\n{}",
        wrong.join("\n")
    );
}

/// Outrigger's `x-outrigger-response-flags` on each reply for which `expected` names the flag Envoy logs.
fn check_flags(
    proxy: &Proxy,
    what: &str,
    replies: &[Reply],
    expected: impl Fn(&Reply) -> Option<&'static str>,
) {
    if !proxy.is_outrigger() {
        return;
    }
    for (i, reply) in replies.iter().enumerate() {
        if let Some(flag) = expected(reply) {
            assert_eq!(
                reply.header(FLAGS).as_deref(),
                Some(flag),
                "{what}: reply {i} ({} {:?}) should carry Envoy's response flag",
                reply.status,
                reply.text()
            );
        }
    }
}

fn is_local(reply: &Reply) -> bool {
    reply.header("x-backend").is_none()
}

// ---------------------------------------------------------------------------------------------------------------
// Local rate limit.

#[derive(Debug, PartialEq)]
struct RateLimited {
    replies: Vec<(&'static str, Vec<View>)>,
    received: usize,
    stats: Values,
}

/// A bucket of 2 set on the listener: enforced, in shadow mode (enabled, not enforced), and without
/// `filter_enabled` (the filter does nothing at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_at_the_listener() {
    let proxies = start(
        "rate-limit-listener",
        &Setup {
            template: RATE_LIMIT_LISTENER,
            listeners: &["enforced", "shadow", "disabled"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut stats = Vec::new();
    for prefix in ["rl_enforced", "rl_shadow", "rl_disabled"] {
        for name in ["enabled", "enforced", "ok", "rate_limited"] {
            stats.push(rate_limit_stat(name, prefix));
        }
    }
    stats.push(stat(
        "envoy_http_downstream_rq_xx",
        &[
            ("envoy_response_code_class", "4"),
            ("envoy_http_conn_manager_prefix", "enforced"),
        ],
    ));
    stats.push(cluster_stat("upstream_rq_total", "app"));

    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for listener in ["enforced", "shadow", "disabled"] {
            let mut sent = Vec::new();
            for _ in 0..4 {
                sent.push(get(proxy.port(listener), "/").await);
            }
            check_flags(proxy, listener, &sent, |r| {
                (r.status == 429).then_some("RL")
            });
            replies.push((listener, views(&sent)));
        }
        let outcome = RateLimited {
            replies,
            received: proxy.origin("app").count(),
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let ok = upstream(200, "app", 0);
    let limited = local(429, "local_rate_limited");
    let expected = RateLimited {
        replies: vec![
            (
                "enforced",
                vec![ok.clone(), ok.clone(), limited.clone(), limited],
            ),
            ("shadow", vec![ok.clone(); 4]),
            ("disabled", vec![ok; 4]),
        ],
        received: 10,
        stats: recorded(&stats, &[4, 2, 2, 2, 4, 0, 2, 2, 0, 0, 0, 0, 2, 10]),
    };
    agree("local rate limit on the listener", &expected, &outcomes);
}

/// `typed_per_filter_config` on a route: its own bucket (and its own statistics prefix), used instead of the
/// listener's for that route, never in addition to it; `status` replaces the 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_per_route() {
    let proxies = start(
        "rate-limit-route",
        &Setup {
            template: RATE_LIMIT_ROUTE,
            listeners: &["route_only", "both"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut stats = Vec::new();
    for prefix in ["route_rl", "listener_rl", "inner_rl", "outer_rl"] {
        for name in ["enabled", "enforced", "ok", "rate_limited"] {
            stats.push(rate_limit_stat(name, prefix));
        }
    }
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for listener in ["route_only", "both"] {
            for (path, count) in [("/limited", 3), ("/free", 4)] {
                let mut sent = Vec::new();
                for _ in 0..count {
                    sent.push(get(proxy.port(listener), path).await);
                }
                check_flags(proxy, path, &sent, |r| is_local(r).then_some("RL"));
                replies.push((listener, views(&sent)));
            }
        }
        let outcome = RateLimited {
            replies,
            received: proxy.origin("app").count(),
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let ok = upstream(200, "app", 0);
    let expected = RateLimited {
        replies: vec![
            (
                "route_only",
                vec![
                    ok.clone(),
                    local(429, "local_rate_limited"),
                    local(429, "local_rate_limited"),
                ],
            ),
            ("route_only", vec![ok.clone(); 4]),
            (
                "both",
                vec![
                    ok.clone(),
                    local(503, "local_rate_limited"),
                    local(503, "local_rate_limited"),
                ],
            ),
            (
                "both",
                vec![ok.clone(), ok.clone(), ok, local(429, "local_rate_limited")],
            ),
        ],
        received: 9,
        stats: recorded(&stats, &[3, 2, 1, 2, 0, 0, 0, 0, 3, 2, 1, 2, 4, 1, 3, 1]),
    };
    agree("local rate limit per route", &expected, &outcomes);
}

/// `enable_x_ratelimit_headers: DRAFT_VERSION_03`: limit and remaining exactly; the reset is only required to be
/// a number of seconds up to the fill interval (Envoy said 0, then 60, then 60 or 59).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_x_ratelimit_headers() {
    let proxies = start(
        "rate-limit-headers",
        &Setup {
            template: RATE_LIMIT_HEADERS,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let reply = get(proxy.port("main"), "/").await;
            let reset_ok = reply
                .header("x-ratelimit-reset")
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|r| r <= 60);
            seen.push((
                reply.status,
                reply.header("x-ratelimit-limit"),
                reply.header("x-ratelimit-remaining"),
                reset_ok,
            ));
        }
        outcomes.push((proxy, seen));
    }
    let some = |s: &str| Some(s.to_string());
    let expected = vec![
        (200, some("2"), some("1"), true),
        (200, some("2"), some("0"), true),
        (429, some("2"), some("0"), true),
    ];
    agree("x-ratelimit-* headers", &expected, &outcomes);
}

/// A reply of the descriptor tests: status and the `x-ratelimit-limit` / `-remaining` of the bucket that decided.
type Limited = (u16, Option<String>, Option<String>);

fn limited(reply: &Reply) -> Limited {
    (
        reply.status,
        reply.header("x-ratelimit-limit"),
        reply.header("x-ratelimit-remaining"),
    )
}

/// `(status, limit, remaining)`.
fn seen(status: u16, limit: u32, remaining: u32) -> Limited {
    (status, Some(limit.to_string()), Some(remaining.to_string()))
}

#[derive(Debug, PartialEq)]
struct Described {
    replies: Vec<(&'static str, Vec<Limited>)>,
    received: usize,
    stats: Values,
}

/// Sends each `(label, listener, path, x-user)` in order, one request each, and notes what came back; every
/// local reply must carry the `RL` flag.
async fn described(
    proxy: &Proxy,
    sequence: &[(&'static str, &str, &str, Option<&str>)],
    stats: &[Stat],
) -> Described {
    let sequence: Vec<_> = sequence
        .iter()
        .map(|(label, listener, path, user)| {
            let headers = user.iter().map(|u| ("x-user", *u)).collect();
            (*label, *listener, *path, headers)
        })
        .collect();
    described_with(proxy, &sequence, stats).await
}

/// One request of a descriptor test: `(label, listener, path, headers)`.
type Step<'a> = (&'static str, &'a str, &'a str, Vec<(&'a str, &'a str)>);

/// [`described`] with any request headers.
async fn described_with(proxy: &Proxy, sequence: &[Step<'_>], stats: &[Stat]) -> Described {
    let mut replies: Vec<(&'static str, Vec<Limited>)> = Vec::new();
    for (label, listener, path, headers) in sequence {
        let reply = send_with(proxy.port(listener), "GET", path, headers, Bytes::new()).await;
        check_flags(proxy, label, std::slice::from_ref(&reply), |r| {
            is_local(r).then_some("RL")
        });
        match replies.last_mut() {
            Some((last, list)) if last == label => list.push(limited(&reply)),
            _ => replies.push((label, vec![limited(&reply)])),
        }
    }
    Described {
        replies,
        received: proxy.origin("app").count(),
        stats: proxy.stats(stats).await,
    }
}

fn rate_limit_stats(prefix: &str) -> Vec<Stat> {
    ["enabled", "ok", "rate_limited", "enforced"]
        .iter()
        .map(|name| rate_limit_stat(name, prefix))
        .collect()
}

async fn start_descriptors(test: &str) -> Vec<Proxy> {
    start(
        test,
        &Setup {
            template: RATE_LIMIT_DESCRIPTORS,
            listeners: &["always", "never", "wild", "actions"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await
}

/// A route's `generic_key` action makes the descriptor `generic_key=gk`, which has a bucket of 1: the second
/// request is refused by it (and the `x-ratelimit-*` headers describe that bucket). The default bucket of 3 was
/// charged once too (`always_consume_default_token_bucket` is true by default), so a route without actions gets
/// two requests through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_descriptor_generic_key() {
    let proxies = start_descriptors("rate-limit-descriptor-generic-key").await;
    let stats = rate_limit_stats("rl_always");
    let sequence = [
        ("gk", "always", "/gk", None),
        ("gk", "always", "/gk", None),
        ("gk", "always", "/gk", None),
        ("free", "always", "/free", None),
        ("free", "always", "/free", None),
        ("free", "always", "/free", None),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described(proxy, &sequence, &stats).await));
    }
    let expected = Described {
        replies: vec![
            (
                "gk",
                vec![seen(200, 1, 0), seen(429, 1, 0), seen(429, 1, 0)],
            ),
            (
                "free",
                vec![seen(200, 3, 1), seen(200, 3, 0), seen(429, 3, 0)],
            ),
        ],
        received: 3,
        stats: recorded(&stats, &[6, 3, 3, 3]),
    };
    agree("a generic_key descriptor", &expected, &outcomes);
}

/// A `request_headers` action keyed on `x-user`: alice (2) and bob (1) have buckets of their own; carol has no
/// descriptor of hers and a request without the header produces none, so both use only the default bucket of 3,
/// which alice's and bob's requests left whole (`always_consume_default_token_bucket: false`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_descriptor_request_headers() {
    let proxies = start_descriptors("rate-limit-descriptor-headers").await;
    let stats = rate_limit_stats("rl_never");
    let sequence = [
        ("alice", "never", "/hdr", Some("alice")),
        ("alice", "never", "/hdr", Some("alice")),
        ("alice", "never", "/hdr", Some("alice")),
        ("bob", "never", "/hdr", Some("bob")),
        ("bob", "never", "/hdr", Some("bob")),
        ("carol", "never", "/hdr", Some("carol")),
        ("none", "never", "/hdr", None),
        ("none", "never", "/hdr", None),
        ("none", "never", "/hdr", None),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described(proxy, &sequence, &stats).await));
    }
    let expected = Described {
        replies: vec![
            (
                "alice",
                vec![seen(200, 2, 1), seen(200, 2, 0), seen(429, 2, 0)],
            ),
            ("bob", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("carol", vec![seen(200, 3, 2)]),
            (
                "none",
                vec![seen(200, 3, 1), seen(200, 3, 0), seen(429, 3, 0)],
            ),
        ],
        received: 6,
        stats: recorded(&stats, &[9, 6, 3, 3]),
    };
    agree("a request_headers descriptor", &expected, &outcomes);
}

/// The same requests on two listeners that differ only in `always_consume_default_token_bucket`: with true
/// (Envoy's default) the matched descriptors also empty the default bucket of 3, so the route without actions
/// is refused at once; with false it still has its 3 tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_always_consume_default_token_bucket() {
    let proxies = start_descriptors("rate-limit-descriptor-always").await;
    let mut stats = rate_limit_stats("rl_always");
    stats.extend(rate_limit_stats("rl_never"));
    let mut sequence = Vec::new();
    for listener in ["always", "never"] {
        sequence.push(("matched", listener, "/gk", None));
        sequence.push(("matched", listener, "/hdr", Some("alice")));
        sequence.push(("matched", listener, "/hdr", Some("bob")));
        for _ in 0..4 {
            sequence.push(("default", listener, "/free", None));
        }
    }
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described(proxy, &sequence, &stats).await));
    }
    let matched = vec![seen(200, 1, 0), seen(200, 2, 1), seen(200, 1, 0)];
    let expected = Described {
        replies: vec![
            ("matched", matched.clone()),
            ("default", vec![seen(429, 3, 0); 4]),
            ("matched", matched),
            (
                "default",
                vec![
                    seen(200, 3, 2),
                    seen(200, 3, 1),
                    seen(200, 3, 0),
                    seen(429, 3, 0),
                ],
            ),
        ],
        received: 9,
        stats: recorded(&stats, &[7, 3, 4, 4, 7, 6, 1, 1]),
    };
    agree("always_consume_default_token_bucket", &expected, &outcomes);
}

/// The filter's own `rate_limits` and a wildcard descriptor (`user` with no value): a bucket of 1 per
/// `x-user` value, at most 2 kept (`max_dynamic_descriptors`), the least recently used dropped; no default
/// bucket, so a request without the header passes with no `x-ratelimit-*` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_wildcard_descriptor() {
    let proxies = start_descriptors("rate-limit-descriptor-wildcard").await;
    let stats = rate_limit_stats("rl_wild");
    let users = ["u1", "u1", "u2", "u1", "u3", "u2", "u1", "u1"];
    let mut sequence: Vec<(&'static str, &str, &str, Option<&str>)> = users
        .iter()
        .map(|u| ("users", "wild", "/", Some(*u)))
        .collect();
    sequence.push(("none", "wild", "/", None));
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described(proxy, &sequence, &stats).await));
    }
    let (ok, refused) = (seen(200, 1, 0), seen(429, 1, 0));
    let expected = Described {
        replies: vec![
            (
                "users",
                vec![
                    ok.clone(),
                    refused.clone(),
                    ok.clone(),
                    refused.clone(),
                    ok.clone(),
                    ok.clone(),
                    ok,
                    refused,
                ],
            ),
            ("none", vec![(200, None, None)]),
        ],
        received: 6,
        stats: recorded(&stats, &[9, 6, 3, 3]),
    };
    agree("a wildcard descriptor", &expected, &outcomes);
}

/// The virtual host's `rate_limits` count for a route without any (OVERRIDE) or with `include_vh_rate_limits`;
/// `remote_address` is the client's (from `x-forwarded-for` without `use_remote_address`); a
/// `header_value_match` with `expect_match: false` makes its descriptor only when the header is absent. No
/// default bucket: a request that matches nothing passes, without `x-ratelimit-*` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_descriptor_actions() {
    let proxies = start_descriptors("rate-limit-descriptor-actions").await;
    let stats = rate_limit_stats("rl_actions");
    let xff = vec![("x-forwarded-for", "10.1.2.3")];
    let debug = vec![("x-debug", "1")];
    let sequence = [
        ("ra", "actions", "/ra", vec![]),
        ("ra", "actions", "/ra", vec![]),
        ("ra", "actions", "/ra", vec![]),
        ("ra-xff", "actions", "/ra", xff.clone()),
        ("ra-xff", "actions", "/ra", xff),
        ("debug", "actions", "/nodebug", debug.clone()),
        ("debug", "actions", "/nodebug", debug),
        ("nodebug", "actions", "/nodebug", vec![]),
        ("nodebug", "actions", "/nodebug", vec![]),
        ("vh", "actions", "/vh", vec![]),
        ("vh", "actions", "/vh", vec![]),
        ("include", "actions", "/include", vec![]),
        ("include", "actions", "/include", vec![]),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described_with(proxy, &sequence, &stats).await));
    }
    let free = (200, None, None);
    let expected = Described {
        replies: vec![
            (
                "ra",
                vec![seen(200, 2, 1), seen(200, 2, 0), seen(429, 2, 0)],
            ),
            ("ra-xff", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("debug", vec![free.clone(), free]),
            ("nodebug", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("vh", vec![seen(200, 3, 2), seen(200, 3, 1)]),
            ("include", vec![seen(200, 3, 0), seen(429, 3, 0)]),
        ],
        received: 9,
        stats: recorded(&stats, &[13, 9, 4, 4]),
    };
    agree("rate limit actions", &expected, &outcomes);
}

/// `count` GETs of `path`, one after the other on one HTTP/1.1 connection, each answered within 10 s.
async fn on_one_connection(port: u16, path: &str, count: usize) -> Vec<Reply> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let mut replies = Vec::new();
    for _ in 0..count {
        let request = http::Request::get(path)
            .header("host", "rl")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let exchange = async {
            // The previous response may still be finishing on the connection.
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            Reply {
                status,
                headers,
                body,
            }
        };
        let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .unwrap_or_else(|_| panic!("GET {path} on port {port}: no answer in 10 s"));
        replies.push(reply);
    }
    driver.abort();
    replies
}

/// A reply of the per-connection test: status, body and the two headers `response_headers_to_add` names.
type Marked = (u16, String, Option<String>, Option<String>);

/// `local_rate_limit_per_downstream_connection`: each connection has its own bucket of 2, so a second
/// connection starts full however the first spent its tokens; `response_headers_to_add` goes on the refusals
/// only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_per_connection_with_response_headers() {
    let proxies = start(
        "rate-limit-per-connection",
        &Setup {
            template: RATE_LIMIT_PER_CONNECTION,
            listeners: &["perconn"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats = rate_limit_stats("rl_perconn");
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut connections = Vec::new();
        for _ in 0..2 {
            let replies = on_one_connection(proxy.port("perconn"), "/", 3).await;
            check_flags(proxy, "per connection", &replies, |r| {
                is_local(r).then_some("RL")
            });
            let marked: Vec<Marked> = replies
                .iter()
                .map(|r| {
                    (
                        r.status,
                        r.text(),
                        r.header("x-limited-by"),
                        r.header("retry-after"),
                    )
                })
                .collect();
            connections.push(marked);
        }
        let outcome = (
            connections,
            proxy.origin("app").count(),
            proxy.stats(&stats).await,
        );
        outcomes.push((proxy, outcome));
    }
    let ok: Marked = (200, origin_body("app", 0), None, None);
    let refused: Marked = (
        429,
        "local_rate_limited".to_string(),
        Some("perconn".to_string()),
        Some("60".to_string()),
    );
    let one = vec![ok.clone(), ok, refused];
    let expected = (vec![one.clone(), one], 4, recorded(&stats, &[6, 4, 2, 2]));
    agree("a bucket per connection", &expected, &outcomes);
}

/// Which rate limits make the descriptors: on `stage1` the filter's `stage: 1` takes only the route's stage-1
/// rate limit (`b`, bucket 2), on `actions` (stage 0) only the stage-0 one (`a`, bucket 1); a rate limit with a
/// `disable_key` makes none (the request passes: no default bucket); `skip_if_absent` keeps
/// `generic_key=sk` when `x-user` is missing (bucket 1) and without it the descriptor would be dropped; with the
/// header the descriptor has two entries and matches no bucket; `destination_cluster` is the route's cluster
/// (`app` has a bucket of 1, `app2` none); on `own` the filter's `rate_limits` (bucket 2) replace the route's
/// (bucket 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rate_limit_stages_disable_key_and_actions() {
    let proxies = start(
        "rate-limit-stages",
        &Setup {
            template: RATE_LIMIT_STAGES,
            listeners: &["stage1", "actions", "own"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut stats = rate_limit_stats("rl_stage1");
    stats.extend(rate_limit_stats("rl_actions"));
    stats.extend(rate_limit_stats("rl_own"));
    let user = vec![("x-user", "u1")];
    let mut sequence: Vec<Step<'_>> = Vec::new();
    for (label, listener, path, count, headers) in [
        ("stage 1", "stage1", "/", 3, vec![]),
        ("stage 0", "actions", "/stages", 2, vec![]),
        ("disable_key", "actions", "/disabled", 2, vec![]),
        ("skip_if_absent", "actions", "/skip", 2, vec![]),
        ("skip_if_absent, present", "actions", "/skip", 2, user),
        ("destination app", "actions", "/", 2, vec![]),
        ("destination app2", "actions", "/app2", 2, vec![]),
        ("filter's own", "own", "/", 3, vec![]),
    ] {
        for _ in 0..count {
            sequence.push((label, listener, path, headers.clone()));
        }
    }
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        outcomes.push((proxy, described_with(proxy, &sequence, &stats).await));
    }
    let free = (200, None, None);
    let expected = Described {
        replies: vec![
            (
                "stage 1",
                vec![seen(200, 2, 1), seen(200, 2, 0), seen(429, 2, 0)],
            ),
            ("stage 0", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("disable_key", vec![free.clone(), free.clone()]),
            ("skip_if_absent", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("skip_if_absent, present", vec![free.clone(), free.clone()]),
            ("destination app", vec![seen(200, 1, 0), seen(429, 1, 0)]),
            ("destination app2", vec![free.clone(), free]),
            (
                "filter's own",
                vec![seen(200, 2, 1), seen(200, 2, 0), seen(429, 2, 0)],
            ),
        ],
        received: 13,
        stats: recorded(&stats, &[3, 2, 1, 1, 12, 9, 3, 3, 3, 2, 1, 1]),
    };
    agree("rate limit stages and actions", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Circuit breakers.

#[derive(Debug, PartialEq)]
struct Breaker {
    /// Sorted: which request of a concurrent burst wins is not the point.
    replies: Vec<View>,
    /// Gauges read while the burst is in flight.
    during: Values,
    after: Values,
    received: usize,
}

/// `max_requests: 1` and a backend that takes 1 s: of three requests 100 ms apart one goes through, two are
/// refused at once with 503 and `x-envoy-overloaded`, counted in `upstream_rq_active_overflow` (since Envoy 1.38,
/// not in `upstream_rq_pending_overflow`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_max_requests() {
    let proxies = start(
        "breaker-requests",
        &Setup {
            template: BREAKER_REQUESTS,
            listeners: &["main"],
            origins: &[("slow", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let during = [
        cluster_stat("circuit_breakers_default_rq_open", "limited"),
        cluster_stat("circuit_breakers_default_remaining_rq", "limited"),
        cluster_stat("upstream_rq_active", "limited"),
    ];
    let after = [
        cluster_stat("upstream_rq_active_overflow", "limited"),
        cluster_stat("upstream_rq_pending_overflow", "limited"),
        cluster_stat("circuit_breakers_default_rq_open", "limited"),
        cluster_stat("circuit_breakers_default_remaining_rq", "limited"),
        cluster_stat("upstream_rq_total", "limited"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let burst = staggered(
            proxy.port("main"),
            "/slow/1000/r{i}",
            3,
            Duration::from_millis(100),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let in_flight = proxy.stats(&during).await;
        let replies = collect(burst).await;
        check_flags(proxy, "max_requests", &replies, |r| {
            (r.status == 503).then_some("UO")
        });
        let mut seen = views(&replies);
        seen.sort();
        let outcome = Breaker {
            replies: seen,
            during: in_flight,
            after: proxy.stats(&after).await,
            received: proxy.origin("slow").count(),
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Breaker {
        replies: vec![upstream(200, "slow", 0), overflow(), overflow()],
        during: recorded(&during, &[1, 0, 1]),
        after: recorded(&after, &[2, 0, 0, 1, 1]),
        received: 1,
    };
    agree("circuit breaker max_requests: 1", &expected, &outcomes);
}

#[derive(Debug, PartialEq)]
struct Pending {
    queue: Breaker,
    /// Envoy counts `upstream_cx_overflow` once or more for the same burst; at least once is required.
    cx_overflow_counted: bool,
    no_queue: Vec<View>,
    no_queue_stats: Values,
    no_queue_received: usize,
}

/// `max_connections: 1, max_pending_requests: 1` against a backend that takes 1 s: of three requests 100 ms apart
/// the first is sent, the second waits for the connection (and succeeds about 1 s later), the third is refused.
/// And `max_pending_requests: 0`: every HTTP/1.1 request waits for a connection before it is sent, so Envoy refuses
/// them all, even the first, and never connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_pending_queue() {
    let proxies = start(
        "breaker-pending",
        &Setup {
            template: BREAKER_PENDING,
            listeners: &["main"],
            origins: &[("slow", Behavior::Normal), ("idle", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let during = [
        cluster_stat("circuit_breakers_default_cx_open", "one_pending"),
        cluster_stat("circuit_breakers_default_rq_pending_open", "one_pending"),
        cluster_stat("circuit_breakers_default_remaining_cx", "one_pending"),
        cluster_stat("circuit_breakers_default_remaining_pending", "one_pending"),
        cluster_stat("upstream_rq_pending_active", "one_pending"),
        cluster_stat("upstream_rq_active", "one_pending"),
    ];
    let after = [
        cluster_stat("upstream_rq_pending_overflow", "one_pending"),
        cluster_stat("upstream_rq_active_overflow", "one_pending"),
        cluster_stat("upstream_cx_total", "one_pending"),
        cluster_stat("upstream_rq_total", "one_pending"),
    ];
    let cx_overflow = [cluster_stat("upstream_cx_overflow", "one_pending")];
    let no_queue = [
        cluster_stat("upstream_rq_pending_overflow", "no_pending"),
        cluster_stat("upstream_cx_total", "no_pending"),
        cluster_stat("upstream_rq_total", "no_pending"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let burst = staggered(
            proxy.port("main"),
            "/one/slow/1000/r{i}",
            3,
            Duration::from_millis(100),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let in_flight = proxy.stats(&during).await;
        let replies = collect(burst).await;
        check_flags(proxy, "one pending", &replies, |r| {
            (r.status == 503).then_some("UO")
        });
        let mut seen = views(&replies);
        seen.sort();
        let queue = Breaker {
            replies: seen,
            during: in_flight,
            after: proxy.stats(&after).await,
            received: proxy.origin("slow").count(),
        };
        let mut refused = Vec::new();
        for i in 0..3 {
            refused.push(get(proxy.port("main"), &format!("/zero/r{i}")).await);
        }
        check_flags(proxy, "no pending", &refused, |_| Some("UO"));
        let outcome = Pending {
            queue,
            cx_overflow_counted: proxy.stats(&cx_overflow).await[0].1 >= 1,
            no_queue: views(&refused),
            no_queue_stats: proxy.stats(&no_queue).await,
            no_queue_received: proxy.origin("idle").count(),
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Pending {
        queue: Breaker {
            replies: vec![
                upstream(200, "slow", 0),
                upstream(200, "slow", 0),
                overflow(),
            ],
            during: recorded(&during, &[1, 1, 0, 0, 1, 1]),
            after: recorded(&after, &[1, 0, 1, 2]),
            received: 2,
        },
        cx_overflow_counted: true,
        no_queue: vec![overflow(); 3],
        no_queue_stats: recorded(&no_queue, &[3, 0, 0]),
        no_queue_received: 0,
    };
    agree(
        "circuit breakers on the pending queue",
        &expected,
        &outcomes,
    );
}

#[derive(Debug, PartialEq)]
struct Passed {
    replies: Vec<View>,
    received: Vec<usize>,
    stats: Values,
}

/// `max_retries: 0` with a retry policy on 5xx: no retry is made; the client gets the backend's 503 as it came
/// (no `x-envoy-overloaded`), and each refused retry counts in `upstream_rq_retry_overflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_circuit_breaker_max_retries_0() {
    let proxies = start(
        "retry-overflow",
        &Setup {
            template: RETRY_OVERFLOW,
            listeners: &["main"],
            origins: &[("bad", Behavior::Always(503))],
            closed: &[],
        },
    )
    .await;
    let stats = [
        cluster_stat("upstream_rq_retry_overflow", "app"),
        cluster_stat("upstream_rq_retry", "app"),
        cluster_stat("upstream_rq_total", "app"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for i in 0..3 {
            replies.push(get(proxy.port("main"), &format!("/r{i}")).await);
        }
        check_flags(proxy, "max_retries: 0", &replies, |_| Some("UO"));
        let outcome = Passed {
            replies: views(&replies),
            received: vec![proxy.origin("bad").count()],
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![upstream(503, "bad", 0); 3],
        received: vec![3],
        stats: recorded(&stats, &[3, 0, 3]),
    };
    agree("max_retries: 0", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Retries.

/// The retry statistics of cluster `app`, in this order.
fn retry_stats() -> Vec<Stat> {
    [
        "upstream_rq_retry",
        "upstream_rq_retry_success",
        "upstream_rq_retry_limit_exceeded",
        "upstream_rq_retry_backoff_exponential",
        "upstream_rq_total",
        "retry_or_shadow_abandoned",
    ]
    .iter()
    .map(|name| cluster_stat(name, "app"))
    .collect()
}

#[derive(Debug, PartialEq)]
struct Retried {
    reply: View,
    /// Per attempt the backend received: method, body length, and whether the body equals what the client sent.
    attempts: Vec<(String, usize, bool)>,
    stats: Values,
}

/// A 10 kB POST answered 503 twice, then 200: the backend gets the same body three times, the client the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resends_the_post_body_intact() {
    let proxies = start(
        "retry-body",
        &Setup {
            template: RETRY,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats = retry_stats();
    let body = pattern(10 * 1024);
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let reply = send(proxy.port("main"), "POST", "/5xx/fail/2/k1", body.clone()).await;
        let attempts = proxy
            .origin("app")
            .seen()
            .iter()
            .map(|s| (s.method.clone(), s.body.len(), s.body == body))
            .collect();
        let outcome = Retried {
            reply: view(&reply),
            attempts,
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Retried {
        reply: upstream(200, "app", 10 * 1024),
        attempts: vec![("POST".to_string(), 10 * 1024, true); 3],
        stats: recorded(&stats, &[2, 1, 0, 2, 3, 0]),
    };
    agree("POST retried on 503", &expected, &outcomes);
}

/// A backend that always answers 503 and two retries: the client gets the last 503 as the backend sent it, each
/// request counts once in `upstream_rq_retry_limit_exceeded`, every attempt in `upstream_rq_total`, and only the
/// final answers in `upstream_rq_xx` (the retried ones go to `retry_upstream_rq_xx`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_limit_exceeded_passes_on_the_last_503() {
    let proxies = start(
        "retry-limit",
        &Setup {
            template: RETRY,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut stats = retry_stats();
    stats.push(stat(
        "envoy_cluster_upstream_rq_xx",
        &[
            ("envoy_response_code_class", "5"),
            ("envoy_cluster_name", "app"),
        ],
    ));
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for _ in 0..3 {
            replies.push(get(proxy.port("main"), "/5xx/status/503").await);
        }
        check_flags(proxy, "retries exhausted", &replies, |_| Some("URX"));
        let outcome = Passed {
            replies: views(&replies),
            received: vec![proxy.origin("app").count()],
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![upstream(503, "app", 0); 3],
        received: vec![9],
        stats: recorded(&stats, &[6, 0, 3, 6, 9, 0, 3]),
    };
    agree("retries exhausted", &expected, &outcomes);
}

/// `retry_on: retriable-4xx` retries 409 (and passes on the last one), not 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_retriable_4xx_is_409_only() {
    let proxies = start(
        "retry-4xx",
        &Setup {
            template: RETRY,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats = retry_stats();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let conflict = get(proxy.port("main"), "/4xx/status/409").await;
        let after_conflict = proxy.origin("app").count();
        let missing = get(proxy.port("main"), "/4xx/status/404").await;
        let after_missing = proxy.origin("app").count() - after_conflict;
        check_flags(proxy, "409", std::slice::from_ref(&conflict), |_| {
            Some("URX")
        });
        let outcome = Passed {
            replies: vec![view(&conflict), view(&missing)],
            received: vec![after_conflict, after_missing],
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![upstream(409, "app", 0), upstream(404, "app", 0)],
        received: vec![3, 1],
        stats: recorded(&stats, &[2, 0, 1, 2, 4, 0]),
    };
    agree("retriable-4xx", &expected, &outcomes);
}

#[derive(Debug, PartialEq)]
struct ConnectRetry {
    replies: Vec<View>,
    received: usize,
    /// `upstream_cx_connect_fail`, `upstream_rq_retry` and `upstream_rq_retry_success` are equal and 3 or 4:
    /// round robin starts at a random endpoint in Envoy, so the first request may go to the live one directly.
    retries_match_connect_failures: bool,
    upstream_rq_total: u64,
}

/// Two endpoints, one a closed port, and `retry_on: connect-failure`: every request ends at the live one, 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_connect_failure_goes_to_the_other_endpoint() {
    let proxies = start(
        "retry-connect",
        &Setup {
            template: RETRY_CONNECT_FAILURE,
            listeners: &["main"],
            origins: &[("good", Behavior::Normal)],
            closed: &["dead"],
        },
    )
    .await;
    let stats = [
        cluster_stat("upstream_cx_connect_fail", "app"),
        cluster_stat("upstream_rq_retry", "app"),
        cluster_stat("upstream_rq_retry_success", "app"),
        cluster_stat("upstream_rq_total", "app"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for i in 0..4 {
            replies.push(get(proxy.port("main"), &format!("/r{i}")).await);
        }
        let values: Vec<u64> = proxy
            .stats(&stats)
            .await
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let outcome = ConnectRetry {
            replies: views(&replies),
            received: proxy.origin("good").count(),
            retries_match_connect_failures: (3..=4).contains(&values[0])
                && values[1] == values[0]
                && values[2] == values[0],
            upstream_rq_total: values[3],
        };
        outcomes.push((proxy, outcome));
    }
    let expected = ConnectRetry {
        replies: vec![upstream(200, "good", 0); 4],
        received: 4,
        retries_match_connect_failures: true,
        upstream_rq_total: 4,
    };
    agree("connect-failure retry", &expected, &outcomes);
}

/// `request_body_buffer_limit: 1024` on the route: a body of 1024 bytes is kept and retried; one of 1025 is not
/// kept, so its 503 is passed on after one attempt and `retry_or_shadow_abandoned` counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_gives_up_on_a_body_over_the_buffer_limit() {
    let proxies = start(
        "retry-buffer",
        &Setup {
            template: RETRY_BUFFER_LIMIT,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats = retry_stats();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let fits = send(proxy.port("main"), "POST", "/fail/1/a", pattern(1024)).await;
        let fits_attempts = proxy.origin("app").count();
        let over = send(proxy.port("main"), "POST", "/fail/1/b", pattern(1025)).await;
        let attempts = proxy
            .origin("app")
            .seen()
            .iter()
            .map(|s| (s.method.clone(), s.body.len()))
            .collect::<Vec<_>>();
        let outcome = (
            Passed {
                replies: vec![view(&fits), view(&over)],
                received: vec![fits_attempts, attempts.len() - fits_attempts],
                stats: proxy.stats(&stats).await,
            },
            attempts,
        );
        outcomes.push((proxy, outcome));
    }
    let post = |len: usize| ("POST".to_string(), len);
    let expected = (
        Passed {
            replies: vec![upstream(200, "app", 1024), upstream(503, "app", 1025)],
            received: vec![2, 1],
            stats: recorded(&stats, &[1, 1, 0, 1, 3, 1]),
        },
        vec![post(1024), post(1024), post(1025)],
    );
    agree("body over the retry buffer limit", &expected, &outcomes);
}

/// `include_request_attempt_count` and `include_attempt_count_in_response` on the virtual host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_attempt_count_headers() {
    let proxies = start(
        "retry-attempts",
        &Setup {
            template: RETRY_ATTEMPT_COUNT,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let retried = send(proxy.port("main"), "POST", "/fail/2/k", pattern(10 * 1024)).await;
        let plain = get(proxy.port("main"), "/plain").await;
        let upstream_counts: Vec<Option<String>> = proxy
            .origin("app")
            .seen()
            .into_iter()
            .map(|s| s.attempt)
            .collect();
        let outcome = (
            (retried.status, retried.header("x-envoy-attempt-count")),
            (plain.status, plain.header("x-envoy-attempt-count")),
            upstream_counts,
        );
        outcomes.push((proxy, outcome));
    }
    let some = |s: &str| Some(s.to_string());
    let expected = (
        (200, some("3")),
        (200, some("1")),
        vec![some("1"), some("2"), some("3"), some("1")],
    );
    agree("x-envoy-attempt-count", &expected, &outcomes);
}

/// The backends of `retry-policy-details.yaml`.
const DETAILS: Setup = Setup {
    template: RETRY_POLICY_DETAILS,
    listeners: &["main"],
    origins: &[
        ("app", Behavior::Normal),
        ("bad", Behavior::Always(503)),
        ("good", Behavior::Normal),
    ],
    closed: &[],
};

/// A virtual host's `retry_policy`, `hedge_policy` and `request_body_buffer_limit` apply to its routes (a GET
/// failing twice is retried twice; a 1025-byte body is not kept, so its 503 passes; the per-try timeout of the
/// host's policy hedges instead of cutting the slow attempt, so no `upstream_rq_per_try_timeout`); the deprecated
/// `per_request_buffer_limit_bytes` on the virtual host (1024) and on a route (2048, which wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_hedging_and_buffer_limits_of_the_virtual_host() {
    let proxies = start("retry-vhost", &DETAILS).await;
    let stats = [
        cluster_stat("upstream_rq_retry", "app"),
        cluster_stat("retry_or_shadow_abandoned", "app"),
        cluster_stat("upstream_rq_retry", "hedged"),
        cluster_stat("upstream_rq_per_try_timeout", "hedged"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let port = proxy.port("main");
        let mut replies = Vec::new();
        let mut received = Vec::new();
        let requests: [(&str, &str, usize); 5] = [
            ("vh.test", "/fail/2/a", 0),
            ("vh.test", "/fail/1/b", 1024),
            ("vh.test", "/fail/1/c", 1025),
            ("legacy.test", "/fail/1/d", 1025),
            ("legacy.test", "/big/fail/1/e", 1500),
        ];
        for (host, path, len) in requests {
            let before = proxy.origin("app").count();
            let method = if len == 0 { "GET" } else { "POST" };
            replies.push(send_with(port, method, path, &[("host", host)], pattern(len)).await);
            received.push(proxy.origin("app").count() - before);
        }
        let before = proxy.origin("app").count();
        let started = Instant::now();
        let hedged = send_with(
            port,
            "GET",
            "/hedge/slowfirst/1/f",
            &[("host", "vh.test")],
            Bytes::new(),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{}: the hedged attempt answered first",
            proxy.kind
        );
        // The abandoned slow attempt ends before the statistics are read.
        tokio::time::sleep(Duration::from_millis(800)).await;
        replies.push(hedged);
        received.push(proxy.origin("app").count() - before);
        let outcome = Passed {
            replies: views(&replies),
            received,
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![
            upstream(200, "app", 0),
            upstream(200, "app", 1024),
            upstream(503, "app", 1025),
            upstream(503, "app", 1025),
            upstream(200, "app", 1500),
            upstream(200, "app", 0),
        ],
        received: vec![3, 2, 1, 1, 2, 2],
        stats: recorded(&stats, &[4, 2, 1, 0]),
    };
    agree("the virtual host's retry settings", &expected, &outcomes);
}

/// `retriable_headers` retries any answer with a matching header (here every 200, until the retries run out) and
/// none without; `retriable_request_headers` retries only requests that carry a matching header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_response_headers_and_only_for_some_requests() {
    let proxies = start("retry-headers", &DETAILS).await;
    let stats = [cluster_stat("upstream_rq_retry", "app")];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let port = proxy.port("main");
        let mut replies = Vec::new();
        let mut received = Vec::new();
        let requests: [(&str, &[(&str, &str)]); 4] = [
            ("/headers/x", &[("host", "match.test")]),
            ("/noheaders/x", &[("host", "match.test")]),
            (
                "/request/status/503",
                &[("host", "match.test"), ("x-retry", "yes")],
            ),
            (
                "/request/status/503",
                &[("host", "match.test"), ("x-retry", "no")],
            ),
        ];
        for (path, headers) in requests {
            let before = proxy.origin("app").count();
            replies.push(send_with(port, "GET", path, headers, Bytes::new()).await);
            received.push(proxy.origin("app").count() - before);
        }
        let outcome = Passed {
            replies: views(&replies),
            received,
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![
            upstream(200, "app", 0),
            upstream(200, "app", 0),
            upstream(503, "app", 0),
            upstream(503, "app", 0),
        ],
        received: vec![3, 1, 3, 1],
        stats: recorded(&stats, &[4]),
    };
    agree("retriable headers", &expected, &outcomes);
}

#[derive(Debug, PartialEq)]
struct OtherHost {
    replies: Vec<View>,
    good: usize,
    /// Every request the bad host answered was retried once, and only those.
    retries_are_the_bad_hosts_answers: bool,
}

/// `previous_hosts` with `host_selection_retry_max_attempts: 20` over a RANDOM pair of a host that always answers
/// 503 and a good one: the retry never goes back to the bad host, so all 40 requests get 200. Without the
/// predicate a quarter of them would get 503; with it but the default of one redraw, an eighth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_goes_to_another_host_with_previous_hosts() {
    let proxies = start("retry-hosts", &DETAILS).await;
    let stats = [cluster_stat("upstream_rq_retry", "pair")];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for i in 0..40 {
            let path = format!("/r{i}");
            replies.push(
                send_with(
                    proxy.port("main"),
                    "GET",
                    &path,
                    &[("host", "hosts.test")],
                    Bytes::new(),
                )
                .await,
            );
        }
        let retries = proxy.stats(&stats).await[0].1;
        let outcome = OtherHost {
            replies: views(&replies),
            good: proxy.origin("good").count(),
            retries_are_the_bad_hosts_answers: retries
                == u64::try_from(proxy.origin("bad").count()).unwrap(),
        };
        outcomes.push((proxy, outcome));
    }
    let expected = OtherHost {
        replies: vec![upstream(200, "good", 0); 40],
        good: 40,
        retries_are_the_bad_hosts_answers: true,
    };
    agree("previous_hosts", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Outlier detection.

#[derive(Debug, PartialEq)]
struct Ejection {
    errors: usize,
    /// The replies after the bad host's third 503 has certainly been seen (requests 7 to 16).
    later: Vec<View>,
    received: Vec<(&'static str, usize)>,
    stats: Values,
    health: Vec<Option<String>>,
}

fn outlier_stats(cluster: &str) -> Vec<Stat> {
    let mut stats: Vec<Stat> = [
        "ejections_active",
        "ejections_enforced_total",
        "ejections_detected_consecutive_5xx",
        "ejections_enforced_consecutive_5xx",
        "ejections_overflow",
        "ejections_detected_consecutive_gateway_failure",
    ]
    .iter()
    .map(|name| cluster_stat(&format!("outlier_detection_{name}"), cluster))
    .collect();
    stats.push(cluster_stat("membership_healthy", cluster));
    stats.push(cluster_stat("membership_total", cluster));
    stats
}

/// Two hosts, one always 503, `consecutive_5xx: 3`. With `max_ejection_percent: 50` the bad host is ejected as
/// its third 503 comes back and gets nothing more. With the default 10% nothing is ejected (one host of two would
/// be 50%): every detection counts in `ejections_overflow`, including the consecutive gateway failure (502-504)
/// that the default `consecutive_gateway_failure: 5` detects without enforcing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_consecutive_5xx() {
    let proxies = start(
        "outlier",
        &Setup {
            template: OUTLIER,
            listeners: &["main"],
            origins: &[
                ("bad50", Behavior::Always(503)),
                ("good50", Behavior::Normal),
                ("bad10", Behavior::Always(503)),
                ("good10", Behavior::Normal),
            ],
            closed: &[],
        },
    )
    .await;
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut per_cluster = Vec::new();
        for (cluster, bad, good) in [("od50", "bad50", "good50"), ("od10", "bad10", "good10")] {
            let mut replies = Vec::new();
            for i in 0..16 {
                replies.push(get(proxy.port("main"), &format!("/{cluster}/r{i}")).await);
                // An ejection reaches Envoy's worker through its main thread: a moment for it.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let errors = replies.iter().filter(|r| r.status == 503).count();
            let later = if cluster == "od50" {
                views(&replies[6..])
            } else {
                Vec::new()
            };
            per_cluster.push(Ejection {
                errors,
                later,
                received: vec![
                    (bad, proxy.origin(bad).count()),
                    (good, proxy.origin(good).count()),
                ],
                stats: proxy.stats(&outlier_stats(cluster)).await,
                health: vec![
                    proxy.health_flags(cluster, bad).await,
                    proxy.health_flags(cluster, good).await,
                ],
            });
        }
        outcomes.push((proxy, per_cluster));
    }
    let flag = |s: &str| Some(s.to_string());
    let expected = vec![
        Ejection {
            errors: 3,
            later: vec![upstream(200, "good50", 0); 10],
            received: vec![("bad50", 3), ("good50", 13)],
            stats: recorded(&outlier_stats("od50"), &[1, 1, 1, 1, 0, 0, 1, 2]),
            health: vec![flag("/failed_outlier_check"), flag("healthy")],
        },
        Ejection {
            errors: 8,
            later: Vec::new(),
            received: vec![("bad10", 8), ("good10", 8)],
            stats: recorded(&outlier_stats("od10"), &[0, 0, 2, 0, 3, 1, 2, 2]),
            health: vec![flag("healthy"), flag("healthy")],
        },
    ];
    agree("outlier detection", &expected, &outcomes);
}

/// Both hosts always 503 and ejected after three each, `healthy_panic_threshold: 0`: then every request gets
/// Envoy's own 503 "no healthy upstream" (no `x-envoy-overloaded`), counted in `upstream_cx_none_healthy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_no_healthy_upstream_without_panic() {
    let proxies = start(
        "no-healthy",
        &Setup {
            template: NO_HEALTHY_UPSTREAM,
            listeners: &["main"],
            origins: &[
                ("bad0", Behavior::Always(503)),
                ("bad1", Behavior::Always(503)),
            ],
            closed: &[],
        },
    )
    .await;
    let stats = [
        cluster_stat("upstream_cx_none_healthy", "app"),
        cluster_stat("outlier_detection_ejections_active", "app"),
        cluster_stat("lb_healthy_panic", "app"),
        cluster_stat("membership_healthy", "app"),
        cluster_stat("upstream_rq_total", "app"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for i in 0..10 {
            if i == 6 {
                // Envoy applies an ejection on its main thread, then tells the worker: give it a moment.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            replies.push(get(proxy.port("main"), &format!("/r{i}")).await);
        }
        check_flags(proxy, "no healthy upstream", &replies[6..], |_| Some("UH"));
        let mut first = views(&replies[..6]);
        first.sort();
        let outcome = Passed {
            replies: first.into_iter().chain(views(&replies[6..])).collect(),
            received: vec![proxy.origin("bad0").count(), proxy.origin("bad1").count()],
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: [
            vec![upstream(503, "bad0", 0); 3],
            vec![upstream(503, "bad1", 0); 3],
            vec![local(503, "no healthy upstream"); 4],
        ]
        .concat(),
        received: vec![3, 3],
        stats: recorded(&stats, &[4, 2, 0, 0, 6]),
    };
    agree("all hosts ejected, panic threshold 0", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Timeouts.

/// The route timeout covers every attempt and is never retried (504 `UT`, `upstream_rq_timeout`); a per-try
/// timeout, or a per-try idle timeout, on a slow first attempt is retried and the second attempt answers; with
/// hedging the slow attempt stays out while the second one answers first (a retry, but no per-try timeout
/// counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_route_per_try_and_idle() {
    let proxies = start(
        "timeouts",
        &Setup {
            template: TIMEOUTS,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats: Vec<Stat> = [
        "upstream_rq_timeout",
        "upstream_rq_per_try_timeout",
        "upstream_rq_per_try_idle_timeout",
        "upstream_rq_retry",
        "upstream_rq_retry_success",
    ]
    .iter()
    .map(|name| cluster_stat(name, "app"))
    .collect();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let route = get(proxy.port("main"), "/route/slow/1000").await;
        check_flags(proxy, "route timeout", std::slice::from_ref(&route), |_| {
            Some("UT")
        });
        let per_try = get(proxy.port("main"), "/pertry/slowfirst/1/a").await;
        let idle = get(proxy.port("main"), "/idle/slowfirst/1/b").await;
        let started = std::time::Instant::now();
        let hedged = get(proxy.port("main"), "/hedge/slowfirst/1/c").await;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{}: the hedged attempt answered first",
            proxy.kind
        );
        // The abandoned slow attempt still reaches the backend.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let outcome = Passed {
            replies: vec![view(&route), view(&per_try), view(&idle), view(&hedged)],
            received: vec![proxy.origin("app").count()],
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Passed {
        replies: vec![
            local(504, "upstream request timeout"),
            upstream(200, "app", 0),
            upstream(200, "app", 0),
            upstream(200, "app", 0),
        ],
        received: vec![7],
        stats: recorded(&stats, &[1, 1, 1, 3, 3]),
    };
    agree("timeouts", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Failure percentage, priorities, retry budget.

#[derive(Debug, PartialEq)]
struct Swept {
    /// Replies after the interval's sweep.
    later: Vec<View>,
    stats: Values,
    health: Vec<Option<String>>,
}

/// Failure percentage (`enforcing_failure_percentage: 100`, threshold 50 %, 2 hosts of 10+ requests): the host
/// that fails every request is ejected at the next interval's sweep, not before, and gets nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_failure_percentage_at_the_sweep() {
    let proxies = start(
        "failure-percentage",
        &Setup {
            template: MORE,
            listeners: &["main"],
            origins: &[
                ("fpbad", Behavior::Always(503)),
                ("fpgood", Behavior::Normal),
                ("p0a", Behavior::Normal),
                ("p0b", Behavior::Normal),
                ("p1", Behavior::Normal),
                ("budgetapp", Behavior::Normal),
            ],
            closed: &[],
        },
    )
    .await;
    let stats: Vec<Stat> = [
        "outlier_detection_ejections_active",
        "outlier_detection_ejections_detected_failure_percentage",
        "outlier_detection_ejections_enforced_failure_percentage",
    ]
    .iter()
    .map(|name| cluster_stat(name, "fp"))
    .collect();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        for i in 0..30 {
            get(proxy.port("main"), &format!("/fp/r{i}")).await;
        }
        // More than one interval (1 s): the sweep has run.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let mut later = Vec::new();
        for i in 0..6 {
            later.push(get(proxy.port("main"), &format!("/fp/s{i}")).await);
        }
        let outcome = Swept {
            later: views(&later),
            stats: proxy.stats(&stats).await,
            health: vec![
                proxy.health_flags("fp", "fpbad").await,
                proxy.health_flags("fp", "fpgood").await,
            ],
        };
        outcomes.push((proxy, outcome));
    }
    let expected = Swept {
        later: vec![upstream(200, "fpgood", 0); 6],
        stats: recorded(&stats, &[1, 1, 1]),
        health: vec![
            Some("/failed_outlier_check".to_string()),
            Some("healthy".to_string()),
        ],
    };
    agree("failure percentage", &expected, &outcomes);
}

/// Priority 0 has one healthy host of two: its health is 50 % x 1.4 = 70 %, so about 70 % of the requests stay
/// there and 30 % go to priority 1; the UNHEALTHY host gets none. Compared within a tolerance (the draw is
/// random in both proxies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_spill_over_by_health() {
    let proxies = start(
        "priorities",
        &Setup {
            template: MORE,
            listeners: &["main"],
            origins: &[
                ("fpbad", Behavior::Normal),
                ("fpgood", Behavior::Normal),
                ("p0a", Behavior::Normal),
                ("p0b", Behavior::Normal),
                ("p1", Behavior::Normal),
                ("budgetapp", Behavior::Normal),
            ],
            closed: &[],
        },
    )
    .await;
    let requests = 300;
    for proxy in &proxies {
        for i in 0..requests {
            get(proxy.port("main"), &format!("/prio/r{i}")).await;
        }
        let to_p1 = proxy.origin("p1").count();
        assert_eq!(
            proxy.origin("p0b").count(),
            0,
            "{}: the unhealthy host got traffic",
            proxy.kind
        );
        assert_eq!(proxy.origin("p0a").count() + to_p1, requests);
        // 30 % of 300 is 90; the binomial spread is about 8.
        assert!(
            (60..=120).contains(&to_p1),
            "{}: {to_p1} of {requests} went to priority 1, expected about 90",
            proxy.kind
        );
    }
}

/// A retry budget of 0 % with `min_retry_concurrency: 0` allows no retry at all: the backend's 503 goes to the
/// client flagged `UO`, counted in `upstream_rq_retry_overflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_of_zero_allows_no_retry() {
    let proxies = start(
        "retry-budget",
        &Setup {
            template: MORE,
            listeners: &["main"],
            origins: &[
                ("fpbad", Behavior::Normal),
                ("fpgood", Behavior::Normal),
                ("p0a", Behavior::Normal),
                ("p0b", Behavior::Normal),
                ("p1", Behavior::Normal),
                ("budgetapp", Behavior::Always(503)),
            ],
            closed: &[],
        },
    )
    .await;
    let stats: Vec<Stat> = ["upstream_rq_retry", "upstream_rq_retry_overflow"]
        .iter()
        .map(|name| cluster_stat(name, "budget"))
        .collect();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        for i in 0..3 {
            replies.push(get(proxy.port("main"), &format!("/budget/r{i}")).await);
        }
        check_flags(proxy, "retry budget", &replies, |_| Some("UO"));
        outcomes.push((
            proxy,
            Passed {
                replies: views(&replies),
                received: vec![proxy.origin("budgetapp").count()],
                stats: proxy.stats(&stats).await,
            },
        ));
    }
    let expected = Passed {
        replies: vec![upstream(503, "budgetapp", 0); 3],
        received: vec![3],
        stats: recorded(&stats, &[0, 3]),
    };
    agree("retry budget", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// The router's own headers.

/// What a client and a backend see of the router's `x-envoy-*` headers for one request.
#[derive(Debug, PartialEq)]
struct RouterHeaders {
    path: &'static str,
    status: u16,
    /// `x-envoy-expected-rq-timeout-ms` as the backend received it.
    expected_timeout: Option<String>,
    /// The response carries `x-envoy-upstream-service-time` with a number of milliseconds.
    service_time: bool,
    overloaded: Option<String>,
}

/// `suppress_envoy_headers` false (Envoy's default) and true: the expected timeout sent upstream (the route's
/// 15 s default, the per-try timeout when shorter, nothing with `timeout: 0s`), the service time on an upstream's
/// response (never on a local reply) and `x-envoy-overloaded` on a circuit breaker's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_headers_unless_suppressed() {
    let proxies = start(
        "router-headers",
        &Setup {
            template: ROUTER_HEADERS,
            listeners: &["plain", "quiet"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    const PATHS: [&str; 5] = ["/", "/pertry", "/longpertry", "/notimeout", "/full"];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut seen = Vec::new();
        for listener in ["plain", "quiet"] {
            for path in PATHS {
                let before = proxy.origin("app").count();
                let reply = get(proxy.port(listener), path).await;
                let record = proxy.origin("app").record.lock().unwrap();
                let expected_timeout = record
                    .seen
                    .get(before)
                    .and_then(|s| s.expected_timeout.clone());
                seen.push(RouterHeaders {
                    path,
                    status: reply.status,
                    expected_timeout,
                    service_time: reply
                        .header("x-envoy-upstream-service-time")
                        .is_some_and(|v| v.parse::<u64>().is_ok()),
                    overloaded: reply.header("x-envoy-overloaded"),
                });
            }
        }
        outcomes.push((proxy, seen));
    }
    let sent = |path, timeout: Option<&str>, suppressed: bool| RouterHeaders {
        path,
        status: 200,
        expected_timeout: timeout.filter(|_| !suppressed).map(str::to_string),
        service_time: !suppressed,
        overloaded: None,
    };
    let mut expected = Vec::new();
    for suppressed in [false, true] {
        expected.extend([
            sent("/", Some("15000"), suppressed),
            sent("/pertry", Some("1000"), suppressed),
            sent("/longpertry", Some("3000"), suppressed),
            sent("/notimeout", None, suppressed),
            RouterHeaders {
                path: "/full",
                status: 503,
                expected_timeout: None,
                service_time: false,
                overloaded: (!suppressed).then(|| "true".to_string()),
            },
        ]);
    }
    agree("router headers", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Outlier detectors set away from their defaults.

/// What one cluster's detector did: requests each backend got, statistics, and each backend's health flags.
#[derive(Debug, PartialEq)]
struct Detected {
    received: Vec<(&'static str, usize)>,
    stats: Values,
    health: Vec<Option<String>>,
}

async fn detected(
    proxy: &Proxy,
    cluster: &str,
    received: &[(&'static str, &[&str])],
    stats: &[Stat],
    hosts: &[&str],
) -> Detected {
    let mut health = Vec::new();
    for host in hosts {
        health.push(proxy.health_flags(cluster, host).await);
    }
    Detected {
        received: received
            .iter()
            .map(|(name, origins)| (*name, origins.iter().map(|o| proxy.origin(o).count()).sum()))
            .collect(),
        stats: proxy.stats(stats).await,
        health,
    }
}

fn detector_stats(cluster: &str, names: &[&str]) -> Vec<Stat> {
    names
        .iter()
        .map(|name| cluster_stat(&format!("outlier_detection_{name}"), cluster))
        .collect()
}

fn outlier_detectors() -> Setup {
    Setup {
        template: OUTLIER_DETECTORS,
        listeners: &["main"],
        origins: &[
            ("gw502", Behavior::Always(502)),
            ("gw504", Behavior::Always(504)),
            ("gw500", Behavior::Always(500)),
            ("gwok", Behavior::Normal),
            ("look", Behavior::Normal),
            ("srbad", Behavior::Always(500)),
            ("srgood1", Behavior::Normal),
            ("srgood2", Behavior::Normal),
            ("srxbad", Behavior::Always(500)),
            ("srxgood1", Behavior::Normal),
            ("srxgood2", Behavior::Normal),
            ("fpthalf", Behavior::EveryOther(500)),
            ("fptgood", Behavior::Normal),
        ],
        closed: &["loclosed"],
    }
}

/// `consecutive_gateway_failure: 2`, enforced, over four hosts: the ones answering 502 and 504 are ejected at their
/// second answer and get nothing more; the one answering 500 is never ejected (500 is not a gateway failure).
/// And split local-origin errors with `consecutive_local_origin_failure: 2` but
/// `enforcing_consecutive_local_origin_failure: 0`: a closed host is detected twice in four connect failures and
/// never ejected, so it keeps its half of the requests (each a 503 `UF`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_gateway_failures_and_unenforced_local_origin() {
    let proxies = start("outlier-gateway", &outlier_detectors()).await;
    let gw_stats = detector_stats(
        "gw",
        &[
            "ejections_active",
            "ejections_detected_consecutive_gateway_failure",
            "ejections_enforced_consecutive_gateway_failure",
            "ejections_detected_consecutive_5xx",
        ],
    );
    let mut lo_stats = detector_stats(
        "lo",
        &[
            "ejections_active",
            "ejections_detected_consecutive_local_origin_failure",
            "ejections_enforced_consecutive_local_origin_failure",
        ],
    );
    lo_stats.push(cluster_stat("upstream_cx_connect_fail", "lo"));
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        for i in 0..24 {
            get(proxy.port("main"), &format!("/gw/r{i}")).await;
            // An ejection reaches Envoy's worker through its main thread: a moment for it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gw = detected(
            proxy,
            "gw",
            &[
                ("gw502", &["gw502"]),
                ("gw504", &["gw504"]),
                ("gw500 and gwok", &["gw500", "gwok"]),
            ],
            &gw_stats,
            &["gw502", "gw504", "gw500", "gwok"],
        )
        .await;
        let mut failed = Vec::new();
        for i in 0..8 {
            let reply = get(proxy.port("main"), &format!("/lo/r{i}")).await;
            if reply.status == 503 && is_local(&reply) {
                failed.push(reply);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        check_flags(proxy, "connect failure", &failed, |_| Some("UF"));
        let lo = detected(proxy, "lo", &[("look", &["look"])], &lo_stats, &["look"]).await;
        outcomes.push((proxy, (gw, failed.len(), lo)));
    }
    let failed = Some("/failed_outlier_check".to_string());
    let healthy = Some("healthy".to_string());
    let expected = (
        Detected {
            received: vec![("gw502", 2), ("gw504", 2), ("gw500 and gwok", 20)],
            stats: recorded(&gw_stats, &[2, 2, 2, 0]),
            health: vec![failed.clone(), failed, healthy.clone(), healthy.clone()],
        },
        4,
        Detected {
            received: vec![("look", 4)],
            stats: recorded(&lo_stats, &[0, 2, 0, 4]),
            health: vec![healthy],
        },
    );
    agree(
        "consecutive gateway failures, local origin failures",
        &expected,
        &outcomes,
    );
}

#[derive(Debug, PartialEq)]
struct Analysed {
    sr: Detected,
    /// `srx`: detected at least once, never enforced.
    srx_detected: bool,
    srx: Detected,
    fpt: Detected,
}

/// The sweep's analyses with thresholds set away from their defaults, under steady traffic for 6 s (three 2 s
/// intervals), about 10 to 30 requests per host per interval:
/// - success rate over three hosts, one failing every request, with `success_rate_request_volume: 5` (the default
///   100 is never reached) and a stdev factor of 1: the failing host is ejected (`sr`); with
///   `enforcing_success_rate: 0` it is only detected (`srx`);
/// - `failure_percentage_threshold: 40`: a host failing every other request (50 %) is ejected; the default 85
///   would keep it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_success_rate_and_failure_percentage_thresholds() {
    let proxies = start("outlier-analyses", &outlier_detectors()).await;
    let names = |kind: &str| {
        [
            "ejections_active".to_string(),
            format!("ejections_detected_{kind}"),
            format!("ejections_enforced_{kind}"),
        ]
    };
    let sr_names = names("success_rate");
    let sr_names: Vec<&str> = sr_names.iter().map(String::as_str).collect();
    let fp_names = names("failure_percentage");
    let fp_names: Vec<&str> = fp_names.iter().map(String::as_str).collect();
    let sr_stats = detector_stats("sr", &sr_names);
    let srx_stats = detector_stats("srx", &sr_names);
    let fpt_stats = detector_stats("fpt", &fp_names);
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(6) {
            for cluster in ["sr", "srx", "fpt"] {
                get(proxy.port("main"), &format!("/{cluster}/r{i}")).await;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sr = detected(
            proxy,
            "sr",
            &[],
            &sr_stats,
            &["srbad", "srgood1", "srgood2"],
        )
        .await;
        let mut srx = detected(
            proxy,
            "srx",
            &[],
            &srx_stats,
            &["srxbad", "srxgood1", "srxgood2"],
        )
        .await;
        // How many sweeps detected the host depends on the timing; at least one must have.
        let srx_detected = srx.stats[1].1 >= 1;
        srx.stats.remove(1);
        let fpt = detected(proxy, "fpt", &[], &fpt_stats, &["fpthalf", "fptgood"]).await;
        outcomes.push((
            proxy,
            Analysed {
                sr,
                srx_detected,
                srx,
                fpt,
            },
        ));
    }
    let failed = Some("/failed_outlier_check".to_string());
    let healthy = Some("healthy".to_string());
    let mut srx_expected = recorded(&srx_stats, &[0, 0, 0]);
    srx_expected.remove(1);
    let expected = Analysed {
        sr: Detected {
            received: Vec::new(),
            stats: recorded(&sr_stats, &[1, 1, 1]),
            health: vec![failed.clone(), healthy.clone(), healthy.clone()],
        },
        srx_detected: true,
        srx: Detected {
            received: Vec::new(),
            stats: srx_expected,
            health: vec![healthy.clone(), healthy.clone(), healthy.clone()],
        },
        fpt: Detected {
            received: Vec::new(),
            stats: recorded(&fpt_stats, &[1, 1, 1]),
            health: vec![failed, healthy],
        },
    };
    agree("success rate and failure percentage", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// Thresholds by priority, retry budget percent, connect timeout, localities.

fn upstream_settings() -> Setup {
    Setup {
        template: UPSTREAM_SETTINGS,
        listeners: &["main"],
        origins: &[
            ("highapp", Behavior::Normal),
            ("dupapp", Behavior::Normal),
            ("budgetapp", Behavior::Normal),
            ("loca", Behavior::Normal),
            ("locb", Behavior::Normal),
        ],
        closed: &["stuck"],
    }
}

#[derive(Debug, PartialEq)]
struct Thresholded {
    high: Vec<View>,
    dup: Vec<View>,
    budget: Passed,
}

/// Thresholds for priority HIGH only (`max_requests: 1`) leave default-priority requests the default limits: three
/// slow requests at once all pass. Of two DEFAULT entries the first applies (`max_requests: 1`: one of three
/// passes). A retry budget of 100 % (no minimum) lets the one request in flight retry its 503; 20 % would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_thresholds_by_priority_and_retry_budget_percent() {
    let proxies = start("breaker-priority", &upstream_settings()).await;
    let stats: Vec<Stat> = ["upstream_rq_retry", "upstream_rq_retry_overflow"]
        .iter()
        .map(|name| cluster_stat(name, "budget"))
        .collect();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut bursts = Vec::new();
        for cluster in ["high", "dup"] {
            let burst = staggered(
                proxy.port("main"),
                &format!("/{cluster}/slow/1000/r{{i}}"),
                3,
                Duration::from_millis(100),
            )
            .await;
            let replies = collect(burst).await;
            check_flags(proxy, cluster, &replies, |r| {
                (r.status == 503).then_some("UO")
            });
            let mut seen = views(&replies);
            seen.sort();
            bursts.push(seen);
        }
        let mut retried = Vec::new();
        for i in 0..3 {
            retried.push(get(proxy.port("main"), &format!("/budget/fail/1/k{i}")).await);
        }
        let dup = bursts.pop().unwrap();
        let high = bursts.pop().unwrap();
        outcomes.push((
            proxy,
            Thresholded {
                high,
                dup,
                budget: Passed {
                    replies: views(&retried),
                    received: vec![proxy.origin("budgetapp").count()],
                    stats: proxy.stats(&stats).await,
                },
            },
        ));
    }
    let expected = Thresholded {
        high: vec![upstream(200, "highapp", 0); 3],
        dup: vec![upstream(200, "dupapp", 0), overflow(), overflow()],
        budget: Passed {
            replies: vec![upstream(200, "budgetapp", 0); 3],
            received: vec![6],
            stats: recorded(&stats, &[3, 0]),
        },
    };
    agree(
        "thresholds by priority, retry budget percent",
        &expected,
        &outcomes,
    );
}

/// A listener that never accepts, its queue full: a connection to it is never answered (its SYN is dropped), like
/// one to a host that is down. Held until dropped.
struct Unanswered {
    _listener: tokio::net::TcpListener,
    _queued: Vec<tokio::net::TcpStream>,
}

async fn unanswered(port: u16) -> Unanswered {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    let listener = socket.listen(0).unwrap();
    let mut queued = Vec::new();
    // A queue of 0 still takes one connection or two; fill it until a connection hangs.
    for _ in 0..8 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_millis(300), connect).await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    assert!(queued.len() < 8, "the accept queue never filled");
    Unanswered {
        _listener: listener,
        _queued: queued,
    }
}

#[derive(Debug, PartialEq)]
struct TimedOut {
    timeout: View,
    /// Answered well before Envoy's default connect timeout of 5 s.
    quick: bool,
    stats: Values,
    localities: Vec<usize>,
}

/// `connect_timeout: 0.25s` to a host that never answers the handshake: 503 "connection timeout" after a quarter
/// of a second, not after the default 5 s (`upstream_cx_connect_timeout`). And two localities weighted 1 and 9:
/// without `locality_weighted_lb_config` Envoy ignores their weights, so round robin shares 20 requests evenly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_and_unweighted_localities() {
    let proxies = start("connect-timeout", &upstream_settings()).await;
    let stats = [cluster_stat("upstream_cx_connect_timeout", "timeout")];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let _unanswered = unanswered(proxy.values["stuck"]).await;
        let started = Instant::now();
        let reply = get(proxy.port("main"), "/timeout/").await;
        let quick = started.elapsed() < Duration::from_secs(2);
        check_flags(
            proxy,
            "connect timeout",
            std::slice::from_ref(&reply),
            |_| Some("UF"),
        );
        for i in 0..20 {
            get(proxy.port("main"), &format!("/loc/r{i}")).await;
        }
        outcomes.push((
            proxy,
            TimedOut {
                timeout: view(&reply),
                quick,
                stats: proxy.stats(&stats).await,
                localities: vec![proxy.origin("loca").count(), proxy.origin("locb").count()],
            },
        ));
    }
    let expected = TimedOut {
        timeout: local(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
        ),
        quick: true,
        stats: recorded(&stats, &[1]),
        localities: vec![10, 10],
    };
    agree("connect timeout, localities", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// DNS refresh.

#[derive(Debug, PartialEq)]
struct DnsRefresh {
    /// `fast` (every 0.25 s) resolved 4 to 8 times in 1.5 s.
    fast_refreshed: bool,
    /// `slow` (Envoy's default 5 s) did not resolve again in those 1.5 s.
    slow_again: u64,
    /// Both clusters serve.
    statuses: Vec<u16>,
}

/// `dns_refresh_rate`: a STRICT_DNS cluster resolves again at that rate, counted in `update_attempt`; one left at
/// Envoy's default (5 s) does not within the same 1.5 s. The count depends on timers, so it is compared within a
/// range. (The endpoints are IP literals, which Envoy's DNS clusters resolve too: `localhost` would give Envoy
/// `::1` first, where the backend does not listen.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_refresh_rate_sets_how_often_a_dns_cluster_resolves() {
    let proxies = start(
        "dns-refresh",
        &Setup {
            template: DNS_REFRESH,
            listeners: &["main"],
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let stats = [
        cluster_stat("update_attempt", "fast"),
        cluster_stat("update_attempt", "slow"),
    ];
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let statuses = vec![
            get(proxy.port("main"), "/fast").await.status,
            get(proxy.port("main"), "/").await.status,
        ];
        let before = proxy.stats(&stats).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = proxy.stats(&stats).await;
        eprintln!("{}: {before:?} then {after:?}", proxy.kind);
        let again = |i: usize| after[i].1.saturating_sub(before[i].1);
        outcomes.push((
            proxy,
            DnsRefresh {
                fast_refreshed: (4..=8).contains(&again(0)),
                slow_again: again(1),
                statuses,
            },
        ));
    }
    let expected = DnsRefresh {
        fast_refreshed: true,
        slow_again: 0,
        statuses: vec![200, 200],
    };
    agree("dns refresh", &expected, &outcomes);
}

// ---------------------------------------------------------------------------------------------------------------
// The fault filter.

#[derive(Debug, PartialEq)]
struct Faulted {
    /// Per listener: each reply, and whether it took at least the delay it should have (or came at once).
    replies: Vec<(&'static str, Vec<(View, bool)>)>,
    received: usize,
    stats: Values,
}

/// A GET with `headers`, and whether its answer took at least `delay` (`None`: came within 150 ms). Envoy's
/// timers may fire a few milliseconds early (it was seen answering a 300 ms delay in 299 ms): 25 ms of slack.
async fn timed(port: u16, headers: &[(&str, &str)], delay: Option<Duration>) -> (Reply, bool) {
    let started = Instant::now();
    let reply = send_with(port, "GET", "/", headers, Bytes::new()).await;
    let took = started.elapsed();
    let as_expected = match delay {
        Some(delay) => took + Duration::from_millis(25) >= delay,
        None => took < Duration::from_millis(150),
    };
    (reply, as_expected)
}

/// `envoy.filters.http.fault`: a fixed abort (and one at 0 %), aborts and delays from the
/// `x-envoy-fault-*` headers (a status outside [200, 600) or a percentage header of 0 injects nothing; no
/// configured percentage means no fault), a delay then an abort, `max_active_faults` (the second concurrent
/// request gets no fault), header matchers; statuses, bodies, how long each took, the flags Envoy logs (`FI`,
/// `DI`; `DI,FI` for a delayed abort, whose last flag Outrigger's header shows) and `http.<prefix>.fault.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delays_and_aborts_like_envoy() {
    const LISTENERS: &[&str] = &[
        "abort",
        "never",
        "header",
        "headernopct",
        "delayabort",
        "limited",
        "matched",
    ];
    let proxies = start(
        "fault",
        &Setup {
            template: FAULT,
            listeners: LISTENERS,
            origins: &[("app", Behavior::Normal)],
            closed: &[],
        },
    )
    .await;
    let mut stats = Vec::new();
    for prefix in LISTENERS {
        for name in [
            "aborts_injected",
            "delays_injected",
            "faults_overflow",
            "active_faults",
        ] {
            stats.push(stat(
                &format!("envoy_http_fault_{name}"),
                &[("envoy_http_conn_manager_prefix", prefix)],
            ));
        }
    }
    let ms = Duration::from_millis;
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let mut replies = Vec::new();
        let mut flags = Vec::new();
        let mut probe = async |listener: &'static str,
                               headers: &[(&str, &str)],
                               delay: Option<Duration>,
                               flag: Option<&'static str>| {
            let (reply, as_expected) = timed(proxy.port(listener), headers, delay).await;
            flags.push((listener, reply.header(FLAGS), flag));
            if replies
                .last()
                .is_none_or(|(l, _): &(&str, Vec<_>)| *l != listener)
            {
                replies.push((listener, Vec::new()));
            }
            replies
                .last_mut()
                .unwrap()
                .1
                .push((view(&reply), as_expected));
        };
        probe("abort", &[], None, Some("FI")).await;
        probe("never", &[], None, None).await;
        probe("header", &[], None, None).await;
        probe(
            "header",
            &[("x-envoy-fault-abort-request", "502")],
            None,
            Some("FI"),
        )
        .await;
        probe(
            "header",
            &[("x-envoy-fault-abort-request", "700")],
            None,
            None,
        )
        .await;
        let zero = [
            ("x-envoy-fault-abort-request", "502"),
            ("x-envoy-fault-abort-request-percentage", "0"),
        ];
        probe("header", &zero, None, None).await;
        let delay = [("x-envoy-fault-delay-request", "200")];
        probe("header", &delay, Some(ms(200)), Some("DI")).await;
        let both = [
            ("x-envoy-fault-delay-request", "200"),
            ("x-envoy-fault-abort-request", "504"),
        ];
        probe("header", &both, Some(ms(200)), Some("FI")).await;
        probe("headernopct", &both, None, None).await;
        probe("delayabort", &[], Some(ms(300)), Some("FI")).await;
        probe("matched", &[], None, None).await;
        probe("matched", &[("x-fault", "yes")], None, Some("FI")).await;
        // max_active_faults: 1: the first request holds the only place for its 1 s delay.
        let port = proxy.port("limited");
        let first =
            tokio::spawn(async move { timed(port, &[], Some(Duration::from_secs(1))).await });
        tokio::time::sleep(ms(200)).await;
        let (second, second_at_once) = timed(port, &[], None).await;
        let (first, first_delayed) = first.await.unwrap();
        flags.push(("limited", first.header(FLAGS), Some("DI")));
        flags.push(("limited", second.header(FLAGS), None));
        replies.push((
            "limited",
            vec![
                (view(&first), first_delayed),
                (view(&second), second_at_once),
            ],
        ));
        if proxy.is_outrigger() {
            for (listener, seen, expected) in &flags {
                assert_eq!(
                    seen.as_deref(),
                    *expected,
                    "{listener}: Outrigger's response flag should be the one Envoy logs"
                );
            }
        }
        let outcome = Faulted {
            replies,
            received: proxy.origin("app").count(),
            stats: proxy.stats(&stats).await,
        };
        outcomes.push((proxy, outcome));
    }
    let ok = (upstream(200, "app", 0), true);
    let abort = |status| (local(status, "fault filter abort"), true);
    let expected = Faulted {
        replies: vec![
            ("abort", vec![abort(503)]),
            ("never", vec![ok.clone()]),
            (
                "header",
                vec![
                    ok.clone(),
                    abort(502),
                    ok.clone(),
                    ok.clone(),
                    ok.clone(),
                    abort(504),
                ],
            ),
            ("headernopct", vec![ok.clone()]),
            ("delayabort", vec![abort(418)]),
            ("matched", vec![ok.clone(), abort(429)]),
            ("limited", vec![ok.clone(), ok]),
        ],
        received: 9,
        stats: recorded(
            &stats,
            &[
                1, 0, 0, 0, // abort
                0, 0, 0, 0, // never
                2, 2, 0, 0, // header
                0, 0, 0, 0, // headernopct
                1, 1, 0, 0, // delayabort
                0, 1, 1, 0, // limited
                1, 0, 0, 0, // matched
            ],
        ),
    };
    agree("the fault filter", &expected, &outcomes);
}
