//! The cache filter with its in-memory store, in real Envoy 1.40 and in Outrigger side by side, with the same YAML
//! (`configs/filters/cache.yaml`) and the same requests, each proxy with its own backend. The backend answers by
//! path with chosen freshness headers (`max-age`, `s-maxage`, `no-store`, `private`, `no-cache`, `expires`, an
//! old `date`, `age`, `vary`, `etag`, `last-modified`), counts its hits and records the conditional headers it
//! receives; `etag` and `last-modified` answer a matching validation with 304.
//!
//! Compared: status, body (which backend hit made it), the presence of `age` and its value (within a second:
//! both round the same clock down to whole seconds), the route's added response header (left out on what the
//! cache sent upstream, as Envoy's own client sends it), the headers the filter writes (`content-range`,
//! `content-length`), the backend's hit counts, and the validation headers it received (dates read as "a date").
//! Envoy 1.40 crashes when a response varying on an allowed header is served from its store, so only a `vary`
//! that is not allowed (and `*`) is compared here; `proxy/src/http/cache/tests.rs` covers the variants.

use super::{Reply, send, support};
use bytes::Bytes;
use http_body_util::Full;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

const TEMPLATE: &str = include_str!("../configs/filters/cache.yaml");
const LISTENERS: &[&str] = &["cache", "ignore", "disabled"];
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// What the backend saw: hits per path (with query) and, in order, the validators of each request.
#[derive(Default)]
struct Seen {
    hits: BTreeMap<String, u32>,
    validators: Vec<String>,
}

fn answer(
    request: &http::Request<hyper::body::Incoming>,
    seen: &Mutex<Seen>,
) -> http::Response<Full<Bytes>> {
    let target = request.uri().to_string();
    let path = request.uri().path();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (inm, ims) = (header("if-none-match"), header("if-modified-since"));
    let added = header("x-route-request");
    let timeout = header("x-envoy-expected-rq-timeout-ms");
    let n = {
        let mut seen = seen.lock().unwrap();
        // A date the proxy copied from a stored response reads "date": its value depends on the second.
        let ims_shown = ims.as_ref().map(|v| {
            if v != LAST_MODIFIED && httpdate::parse_http_date(v).is_ok() {
                "date".to_string()
            } else {
                v.clone()
            }
        });
        seen.validators.push(format!(
            "{target} inm={inm:?} ims={ims_shown:?} added={added:?} timeout={timeout:?}"
        ));
        let n = seen.hits.entry(target.clone()).or_default();
        *n += 1;
        *n
    };
    let now = SystemTime::now();
    let mut status = 200;
    let mut date = Some(now);
    let mut response = http::Response::builder();
    let kind = path.trim_start_matches('/');
    let cache_control = match kind {
        "max-age" => Some("max-age=100"),
        "s-maxage" => Some("max-age=0, s-maxage=100"),
        "no-store" => Some("no-store, max-age=100"),
        "private" => Some("private, max-age=100"),
        "no-cache" => Some("no-cache"),
        _ => None,
    };
    if let Some(value) = cache_control {
        response = response.header("cache-control", value);
    }
    let mut response = match kind {
        "expires" | "expires-no-date" => {
            if kind == "expires-no-date" {
                date = None;
            }
            response.header(
                "expires",
                httpdate::fmt_http_date(now + Duration::from_secs(100)),
            )
        }
        "aged" => response
            .header("cache-control", "max-age=100")
            .header("age", "30"),
        "old-date" => {
            date = Some(now - Duration::from_secs(20));
            response.header("cache-control", "max-age=100")
        }
        "etag" | "etag-changed" => {
            if kind == "etag" && inm.as_deref() == Some("\"v1\"") {
                status = 304;
            }
            response
                .header("cache-control", "max-age=1")
                .header("etag", "\"v1\"")
        }
        "last-modified" => {
            if ims.as_deref().is_some_and(|v| !v.is_empty()) {
                status = 304;
            }
            response
                .header("cache-control", "max-age=1")
                .header("last-modified", LAST_MODIFIED)
        }
        _ if kind.starts_with("status/") => {
            status = kind["status/".len()..].parse().unwrap();
            response.header("cache-control", "max-age=100")
        }
        _ if kind.starts_with("vary/") => response
            .header("cache-control", "max-age=100")
            .header("vary", &kind["vary/".len()..]),
        _ => response,
    };
    if let Some(date) = date {
        response = response.header("date", httpdate::fmt_http_date(date));
    }
    let body = if status == 304 || status == 204 {
        Bytes::new()
    } else {
        Bytes::from(format!("{target} #{n}"))
    };
    response.status(status).body(Full::new(body)).unwrap()
}

struct Backend {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend() -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&request, &seen);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .auto_date_header(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Backend { port, seen, task }
}

struct Proxy {
    kind: &'static str,
    ports: BTreeMap<String, u16>,
    backend: Backend,
    _envoy: Option<support::envoy::Envoy>,
    _sidecar: Option<support::sidecar::Sidecar>,
}

async fn fill(dir: &Path, kind: &str) -> (String, u16, BTreeMap<String, u16>, Backend) {
    let backend = backend().await;
    let values = [("app", backend.port.to_string())];
    let (yaml, admin, ports, _) = super::fill_ports(dir, kind, TEMPLATE, LISTENERS, &values);
    (yaml, admin, ports, backend)
}

async fn start() -> Vec<Proxy> {
    let dir = std::env::temp_dir().join(format!("outrigger-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut proxies = Vec::new();
    if let Some(envoy) = support::peer("envoy") {
        let (_, admin, ports, backend) = fill(&dir, "envoy").await;
        let mut process = support::envoy::Envoy::start(&envoy, &dir.join("envoy.yaml"));
        for port in ports.values() {
            process.wait_for_port(*port);
        }
        process.wait_for_port(admin);
        proxies.push(Proxy {
            kind: "envoy",
            ports,
            backend,
            _envoy: Some(process),
            _sidecar: None,
        });
    }
    let (yaml, admin, ports, backend) = fill(&dir, "outrigger").await;
    let sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &yaml, admin);
    for port in ports.values() {
        support::tcp::wait_until_listening(*port, "outrigger").await;
    }
    proxies.push(Proxy {
        kind: "outrigger",
        ports,
        backend,
        _envoy: None,
        _sidecar: Some(sidecar),
    });
    proxies
}

/// One step: a request, or a pause that lets `max-age=1` entries go stale (2 s: the age is whole seconds and
/// starts below one, so 2 s is past it whatever the clock's phase).
enum Step {
    Send(&'static str, String),
    Pause,
}

fn send_on(listener: &'static str, method: &str, path: &str, headers: &[&str]) -> Step {
    let mut head = format!("{method} {path} HTTP/1.1");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    Step::Send(listener, head)
}

fn get(path: &str, headers: &[&str]) -> Step {
    send_on("cache", "GET", path, headers)
}

fn twice(path: &str, out: &mut Vec<Step>) {
    out.push(get(path, &[]));
    out.push(get(path, &[]));
}

fn steps() -> Vec<Step> {
    let mut s = Vec::new();
    // Which responses are stored, by their freshness headers and status.
    for path in [
        "/max-age",
        "/s-maxage",
        "/no-store",
        "/private",
        "/no-cache",
        "/none",
        "/expires",
        "/expires-no-date",
        "/aged",
        "/old-date",
        "/status/204",
        "/status/302",
        "/status/404",
        "/status/500",
        "/status/501",
        "/vary/user-agent",
        "/vary/*",
    ] {
        twice(path, &mut s);
    }
    // Which requests use the cache.
    s.push(get("/max-age?q=auth", &["authorization: x"]));
    s.push(get("/max-age?q=auth", &["authorization: x"]));
    s.push(get("/max-age?q=auth", &[]));
    s.push(send_on(
        "cache",
        "POST",
        "/max-age?q=post",
        &["content-length: 0"],
    ));
    s.push(send_on(
        "cache",
        "POST",
        "/max-age?q=post",
        &["content-length: 0"],
    ));
    s.push(send_on("cache", "HEAD", "/max-age?q=head", &[]));
    s.push(get("/max-age?q=head", &[]));
    s.push(send_on("cache", "HEAD", "/max-age?q=head", &[]));
    s.push(get("/max-age?q=inm", &[]));
    s.push(get("/max-age?q=inm", &["if-none-match: \"x\""]));
    s.push(get("/max-age?q=host", &["host: a.test"]));
    s.push(get("/max-age?q=host", &["host: b.test"]));
    s.push(get("/max-age?q=host", &["host: a.test"]));
    // The request's cache-control and pragma.
    s.push(get("/max-age?q=no-cache", &[]));
    s.push(get("/max-age?q=no-cache", &["cache-control: no-cache"]));
    s.push(get("/max-age?q=pragma", &[]));
    s.push(get("/max-age?q=pragma", &["pragma: no-cache"]));
    s.push(get(
        "/max-age?q=pragma",
        &["pragma: no-cache", "cache-control: max-age=100"],
    ));
    s.push(get("/max-age?q=no-store", &["cache-control: no-store"]));
    s.push(get("/max-age?q=no-store", &[]));
    s.push(get("/max-age?q=no-store", &["cache-control: no-store"]));
    // Ranges served from a stored response.
    s.push(get("/max-age?q=range", &[]));
    for range in [
        "bytes=0-3",
        "bytes=5-",
        "bytes=-4",
        "bytes=100-",
        "bytes=0-1,3-4",
        "bytes=0-",
    ] {
        s.push(get("/max-age?q=range", &[&format!("range: {range}")]));
    }
    // Validation of stale entries: 304 (by etag, by last-modified) and a new 200.
    for path in ["/etag", "/last-modified", "/etag-changed"] {
        s.push(get(path, &[]));
    }
    s.push(Step::Pause);
    for path in ["/etag", "/last-modified", "/etag-changed"] {
        twice(path, &mut s);
    }
    s.push(send_on("cache", "HEAD", "/etag", &[]));
    // ignore_request_cache_control_header (with max_body_bytes and key_creator_params, which Envoy ignores).
    s.push(send_on("ignore", "GET", "/max-age?q=ignore", &[]));
    s.push(send_on(
        "ignore",
        "GET",
        "/max-age?q=ignore",
        &["cache-control: no-cache"],
    ));
    s.push(send_on(
        "ignore",
        "GET",
        "/max-age?q=ignore",
        &["pragma: no-cache"],
    ));
    s.push(send_on(
        "ignore",
        "GET",
        "/max-age?q=ignore-store",
        &["cache-control: no-store"],
    ));
    s.push(send_on("ignore", "GET", "/max-age?q=ignore-store", &[]));
    s.push(send_on(
        "ignore",
        "GET",
        "/max-age?q=ignore",
        &["host: other.test"],
    ));
    // disabled
    s.push(send_on("disabled", "GET", "/max-age?q=off", &[]));
    s.push(send_on("disabled", "GET", "/max-age?q=off", &[]));
    s
}

/// What is compared of one reply.
#[derive(Debug)]
struct View {
    request: String,
    status: u16,
    body: String,
    age: Option<i64>,
    headers: BTreeMap<String, String>,
}

fn view(request: &str, reply: &Reply) -> View {
    let headers = [
        "x-route-response",
        "content-range",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "vary",
    ]
    .iter()
    .filter_map(|h| reply.headers.get(*h).map(|v| (h.to_string(), v.clone())))
    .collect();
    View {
        request: request.replace("\r\n", " | "),
        status: reply.status,
        body: String::from_utf8_lossy(&reply.raw).into_owned(),
        age: reply.headers.get("age").map(|a| a.parse().unwrap()),
        headers,
    }
}

async fn run(proxy: &Proxy, steps: &[Step]) -> Vec<View> {
    let mut views = Vec::new();
    for step in steps {
        match step {
            Step::Pause => tokio::time::sleep(Duration::from_millis(2100)).await,
            Step::Send(listener, head) => {
                let reply = send(proxy.ports[*listener], head, b"").await;
                views.push(view(head, &reply));
            }
        }
    }
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_like_envoy() {
    let proxies = start().await;
    let steps = steps();
    let mut outcomes = Vec::new();
    for proxy in &proxies {
        let views = run(proxy, &steps).await;
        let seen = proxy.backend.seen.lock().unwrap();
        outcomes.push((views, seen.hits.clone(), seen.validators.clone()));
    }
    let (ours, hits, validators) = outcomes.last().unwrap();
    // What Envoy does, written down, so the test also stands where Envoy is missing (outside CI).
    let find = |request: &str, nth: usize| {
        ours.iter()
            .filter(|v| v.request.starts_with(request))
            .nth(nth)
            .unwrap_or_else(|| panic!("no reply {nth} to {request}"))
    };
    assert_eq!(find("GET /max-age HTTP", 1).body, "/max-age #1");
    assert!(find("GET /max-age HTTP", 1).age.is_some_and(|a| a <= 1));
    assert!(
        find("GET /aged HTTP", 1)
            .age
            .is_some_and(|a| (30..=31).contains(&a))
    );
    assert!(
        find("GET /old-date HTTP", 1)
            .age
            .is_some_and(|a| (20..=21).contains(&a))
    );
    assert_eq!(find("GET /no-store HTTP", 1).body, "/no-store #2");
    let range = find("GET /max-age?q=range HTTP/1.1 | range: bytes=0-3", 0);
    assert_eq!((range.status, range.body.as_str()), (206, "/max"));
    assert_eq!(find("GET /etag HTTP", 1).body, "/etag #1");
    assert_eq!(find("GET /etag HTTP", 1).age, None);
    assert_eq!(find("GET /etag-changed HTTP", 1).body, "/etag-changed #2");
    assert_eq!(hits["/etag"], 2);
    let validated = |line: &str| validators.iter().any(|v| v.starts_with(line));
    assert!(validated(
        "/etag inm=Some(\"\\\"v1\\\"\") ims=Some(\"date\") added=None timeout=None"
    ));
    assert!(validated(&format!(
        "/last-modified inm=None ims=Some({LAST_MODIFIED:?})"
    )));
    // What the cache sends upstream goes without the route's header changes (as Envoy's own client sends it);
    // a request it does not look up goes through the router as usual.
    assert!(
        !find("GET /max-age HTTP", 0)
            .headers
            .contains_key("x-route-response")
    );
    assert!(
        find("POST /max-age?q=post", 0)
            .headers
            .contains_key("x-route-response")
    );
    assert!(validated(
        "/max-age?q=post inm=None ims=None added=Some(\"added\") timeout=Some(\"5000\")"
    ));
    assert_eq!(hits["/max-age?q=off"], 2);
    // no-cache and pragma ignored; another host still misses (Envoy ignores `exclude_host`).
    assert_eq!(hits["/max-age?q=ignore"], 2);
    assert_eq!(hits["/max-age?q=ignore-store"], 1);

    let Some((envoy, envoy_hits, envoy_validators)) =
        outcomes.first().filter(|_| proxies.len() == 2)
    else {
        return;
    };
    assert_eq!(proxies[0].kind, "envoy");
    for (e, o) in envoy.iter().zip(ours) {
        let context = format!("{}\nenvoy:     {e:?}\noutrigger: {o:?}", e.request);
        assert_eq!(
            (e.status, &e.body, &e.headers, e.age.is_some()),
            (o.status, &o.body, &o.headers, o.age.is_some()),
            "{context}"
        );
        if let (Some(a), Some(b)) = (e.age, o.age) {
            assert!((a - b).abs() <= 1, "{context}");
        }
    }
    assert_eq!(envoy_hits, hits, "backend hits");
    assert_eq!(
        envoy_validators, validators,
        "validation headers the backend received"
    );
}
