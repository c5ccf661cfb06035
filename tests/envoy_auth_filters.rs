//! Authorization HTTP filters in real Envoy 1.40 and in Outrigger side by side: `envoy.filters.http.rbac`
//! (rules, shadow rules, per-route rules) and `envoy.filters.http.ext_authz` with an HTTP and a gRPC
//! authorization service of the test's own (what it receives is compared too; the gRPC one is in
//! `envoy_auth_filters/grpc_authz.rs`). Each test fills one template from `tests/configs/auth/` once per
//! proxy (its own ports and backend), sends both the same requests and requires the same statuses, local reply
//! bodies, what the backend received and the filter's statistics (`/stats/prometheus`); each outcome is also
//! held to what Envoy 1.40 was seen doing, so without Envoy (outside CI) Outrigger alone is checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::tcp::free_port;

const RBAC: &str = include_str!("configs/auth/rbac.yaml");
const RBAC_MATCHER: &str = include_str!("configs/auth/rbac-matcher.yaml");
const EXT_AUTHZ_HTTP: &str = include_str!("configs/auth/ext-authz-http.yaml");
const EXT_AUTHZ_GRPC: &str = include_str!("configs/auth/ext-authz-grpc.yaml");

/// What a client saw: the status, and either the backend's view of the request (path and the headers a test
/// asks about) or the proxy's local reply body.
#[derive(Debug, PartialEq, Clone)]
enum Seen {
    Backend {
        status: u16,
        path: String,
        headers: Vec<(String, Option<String>)>,
    },
    Local {
        status: u16,
        body: String,
        content_type: Option<String>,
    },
}

fn local(status: u16, body: &str) -> Seen {
    Seen::Local {
        status,
        body: body.to_string(),
        content_type: Some("text/plain".to_string()),
    }
}

fn backend(path: &str) -> Seen {
    Seen::Backend {
        status: 200,
        path: path.to_string(),
        headers: Vec::new(),
    }
}

/// One request: method, path, headers.
struct Ask<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

fn ask<'a>(method: &'a str, path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Ask<'a> {
    Ask {
        method,
        path,
        headers,
    }
}

/// Sends `ask` to 127.0.0.1:`port`; `watched` names the request headers the backend's view keeps.
async fn send(port: u16, ask: &Ask<'_>, watched: &[&str]) -> Seen {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(ask.method)
        .uri(format!("http://127.0.0.1:{port}{}", ask.path));
    for (k, v) in ask.headers {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("the proxy answers within 10 s")
    .unwrap_or_else(|e| panic!("{} {}: {e}", ask.method, ask.path));
    let status = response.status().as_u16();
    let from_backend = response.headers().contains_key("x-backend");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if !from_backend {
        return Seen::Local {
            status,
            body,
            content_type,
        };
    }
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    Seen::Backend {
        status,
        path: json["path"].as_str().unwrap().to_string(),
        headers: watched
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    json["headers"][h].as_str().map(str::to_string),
                )
            })
            .collect(),
    }
}

/// One proxy under test: Envoy or Outrigger, with its own backend.
struct Proxy {
    kind: &'static str,
    admin: u16,
    ports: HashMap<String, u16>,
    _envoy: Option<support::envoy::Envoy>,
    _sidecar: Option<support::sidecar::Sidecar>,
    _backend: support::backend::Backend,
    log: PathBuf,
}

impl Proxy {
    fn port(&self) -> u16 {
        self.ports["listen"]
    }

    fn port_of(&self, listener: &str) -> u16 {
        self.ports[listener]
    }

    /// The value of each Prometheus sample `name{envoy_http_conn_manager_prefix=prefix}` (0 when absent).
    async fn http_stats(&self, prefix: &str, names: &[&str]) -> Vec<(String, u64)> {
        self.stats(
            &format!("envoy_http_conn_manager_prefix=\"{prefix}\""),
            names,
        )
        .await
    }

    /// The value of each Prometheus sample `name{...label...}` (0 when absent).
    async fn stats(&self, label: &str, names: &[&str]) -> Vec<(String, u64)> {
        let reply = support::client::get(
            &format!("http://127.0.0.1:{}/stats/prometheus", self.admin),
            &[],
        )
        .await;
        names
            .iter()
            .map(|name| {
                let value = reply
                    .body
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.rsplit_once(' '))
                    .find(|(series, _)| {
                        let bare = series.split('{').next().unwrap_or_default();
                        bare.strip_suffix("_total").unwrap_or(bare) == *name
                            && series.contains(label)
                    })
                    .map_or(0, |(_, v)| v.trim().parse::<f64>().unwrap() as u64);
                (name.to_string(), value)
            })
            .collect()
    }
}

/// Envoy (when installed; under CI it must be) and Outrigger on `template`, each with its own ports and a fresh
/// backend `app`; `extra` are more ports filled in by name (peers the test started).
async fn start(test: &str, template: &str, extra: &[(&str, u16)]) -> Vec<Proxy> {
    let dir = std::env::temp_dir().join(format!("outrigger-auth-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut proxies = Vec::new();
    let envoy = support::peer("envoy");
    for kind in ["envoy", "outrigger"] {
        if kind == "envoy" && envoy.is_none() {
            continue;
        }
        let app = support::backend::Backend::start("app").await;
        let mut ports: HashMap<String, u16> = HashMap::new();
        ports.insert("admin".into(), free_port());
        ports.insert("listen".into(), free_port());
        ports.insert("listen_open".into(), free_port());
        // Any other `{listen_...}` of the template gets a port of its own per proxy too.
        for name in template
            .split('{')
            .filter_map(|t| t.split_once('}'))
            .map(|(n, _)| n)
        {
            if name.starts_with("listen_") && !ports.contains_key(name) {
                ports.insert(name.to_string(), free_port());
            }
        }
        ports.insert("app".into(), app.address.port());
        for (name, port) in extra {
            ports.insert(name.to_string(), *port);
        }
        let pairs: Vec<(&str, String)> = ports
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        let yaml = support::proxy::fill(template, &pairs);
        let admin = ports["admin"];
        if kind == "envoy" {
            let config = dir.join("envoy.yaml");
            std::fs::write(&config, yaml).unwrap();
            let mut process = support::envoy::Envoy::start(envoy.as_ref().unwrap(), &config);
            process.wait_for_port(ports["listen"]);
            process.wait_for_port(admin);
            proxies.push(Proxy {
                kind,
                admin,
                ports,
                _envoy: Some(process),
                _sidecar: None,
                _backend: app,
                log: config.with_extension("log"),
            });
        } else {
            let sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &yaml, admin);
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", ports["listen"])).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "outrigger does not listen:\n{}",
                    sidecar.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = sidecar.log.clone();
            proxies.push(Proxy {
                kind,
                admin,
                ports,
                _envoy: None,
                _sidecar: Some(sidecar),
                _backend: app,
                log,
            });
        }
    }
    proxies
}

/// Requires every proxy's outcome to equal the one Envoy 1.40 was seen giving.
fn agree<T: std::fmt::Debug + PartialEq>(what: &str, expected: &T, outcomes: &[(&Proxy, T)]) {
    for (proxy, outcome) in outcomes {
        assert_eq!(
            outcome,
            expected,
            "{what}: {} differs from what Envoy 1.40 does (log {})",
            proxy.kind,
            proxy.log.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// envoy.filters.http.rbac

/// ALLOW rules by `:method` and `url_path` (the query ignored), a principal's header, the client from
/// `x-forwarded-for` (`remote_ip`, the last entry without `use_remote_address`), `:path` and `:authority`,
/// `destination_port`, `destination_ip` under `not_rule`, `direct_remote_ip`, `not_id`, `or_ids` with a regex
/// path and an `authenticated` principal no plaintext client has; DENY shadow rules counted only; a route's
/// `RBACPerRoute` (DENY by a header) replacing both rule sets, and an empty one enforcing nothing. Statuses,
/// the 403 body and content type, what the backend received, `http.ingress_http.rbac.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rbac_allows_and_denies_like_envoy() {
    let proxies = start("rbac", RBAC, &[]).await;
    let denied = local(403, "RBAC: access denied");
    let cases: Vec<(Ask, Seen)> = vec![
        (ask("GET", "/public/a", &[]), backend("/public/a")),
        (ask("GET", "/public/a?q=1", &[]), backend("/public/a?q=1")),
        (ask("POST", "/public/a", &[]), denied.clone()),
        (ask("GET", "/private", &[]), denied.clone()),
        (
            ask("POST", "/private", &[("x-user", "admin")]),
            backend("/private"),
        ),
        (
            ask("GET", "/private", &[("x-user", "Admin")]),
            denied.clone(),
        ),
        (
            ask("GET", "/xff", &[("x-forwarded-for", "10.1.2.3")]),
            backend("/xff"),
        ),
        (
            ask("GET", "/xff", &[("x-forwarded-for", "10.1.2.3,10.9.9.9")]),
            denied.clone(),
        ),
        (
            ask("GET", "/xff", &[("x-forwarded-for", "10.9.9.9, 10.1.2.3")]),
            backend("/xff"),
        ),
        (ask("GET", "/xff", &[]), denied.clone()),
        (
            ask("GET", "/xff/more", &[("x-forwarded-for", "10.1.2.3")]),
            denied.clone(),
        ),
        (ask("GET", "/other?key=1", &[]), backend("/other?key=1")),
        (ask("GET", "/other?key=12", &[]), denied.clone()),
        (
            ask("GET", "/other", &[("host", "trusted.example")]),
            backend("/other"),
        ),
        (ask("GET", "/port/abc", &[]), backend("/port/abc")),
        (ask("GET", "/port/ABC", &[]), denied.clone()),
        (ask("GET", "/port/abc", &[("x-block", "1")]), denied.clone()),
        (ask("POST", "/perroute/a", &[]), backend("/perroute/a")),
        (ask("GET", "/perroute/a", &[("x-deny", "")]), denied.clone()),
        (ask("POST", "/open/a", &[]), backend("/open/a")),
    ];
    let names = [
        "envoy_http_rbac_allowed",
        "envoy_http_rbac_denied",
        "envoy_http_rbac_shadow_allowed",
        "envoy_http_rbac_shadow_denied",
    ];
    let expected: Vec<Seen> = cases.iter().map(|(_, seen)| seen.clone()).collect();
    let mut outcomes = Vec::new();
    let mut stats = Vec::new();
    for proxy in &proxies {
        let mut seen = Vec::new();
        for (ask, _) in &cases {
            seen.push(send(proxy.port(), ask, &[]).await);
        }
        outcomes.push((proxy, seen));
        stats.push((proxy, proxy.http_stats("ingress_http", &names).await));
    }
    agree("HTTP RBAC replies", &expected, &outcomes);
    // 17 requests meet the filter's own rules: 8 allowed, 9 denied, 2 POSTs the shadow rules would deny; the
    // per-route DENY counts 1 allowed and 1 denied and has no shadow rules; the empty per-route config counts
    // nothing.
    let expected_stats: Vec<(String, u64)> = names
        .iter()
        .map(|n| n.to_string())
        .zip([8 + 1, 9 + 1, 15, 2])
        .collect();
    agree("HTTP RBAC statistics", &expected_stats, &stats);
}

/// The unified `matcher` (`configs/auth/rbac-matcher.yaml`): first match wins in the list; `and`/`or`/`not`
/// predicates; `ignore_case`; a header given twice read as its values joined by `,`; the trusted client from
/// `x-forwarded-for` (`SourceIPInput`) and the peer (`DirectSourceIPInput`) in IP ranges; the destination
/// port; a URI SAN input on a plaintext connection stopping the evaluation (denied, `on_no_match` not
/// reached); a nested matcher without an action letting the list go on; a
/// prefix tree trying shorter prefixes when the longest gives no action; nothing matched and no `on_no_match`
/// denying; LOG allowing; `rules` beside `matcher` ignored; an exact tree as `shadow_matcher` only counted; a
/// route's `RBACPerRoute` matcher. Statuses, bodies and `http.ingress_http.rbac.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rbac_matcher_like_envoy() {
    let proxies = start("rbac-matcher", RBAC_MATCHER, &[]).await;
    let denied = local(403, "RBAC: access denied");
    let cases: Vec<(Ask, Seen)> = vec![
        // No list entry, no tier: no action, denied.
        (ask("GET", "/a", &[]), denied.clone()),
        (
            ask("GET", "/a", &[("x-env", "prod"), ("x-tier", "silver")]),
            denied.clone(),
        ),
        (
            ask("GET", "/a", &[("x-env", "Prod"), ("x-tier", "silver")]),
            denied.clone(),
        ),
        (
            ask(
                "GET",
                "/a",
                &[("x-env", "prod"), ("x-user", "svc-a"), ("x-tier", "silver")],
            ),
            backend("/a"),
        ),
        (
            ask(
                "GET",
                "/a",
                &[("x-env", "prod"), ("x-env", "prod"), ("x-tier", "silver")],
            ),
            backend("/a"),
        ),
        (ask("GET", "/a", &[("x-role", "admin")]), backend("/a")),
        (ask("POST", "/a", &[("x-role", "admin")]), denied.clone()),
        (
            ask("POST", "/a", &[("x-role", "admin"), ("x-tier", "silver")]),
            backend("/a"),
        ),
        (
            ask("GET", "/a", &[("x-forwarded-for", "10.1.2.3")]),
            backend("/a"),
        ),
        (
            ask("GET", "/a", &[("x-forwarded-for", "192.168.0.1")]),
            denied.clone(),
        ),
        (ask("GET", "/log/x", &[]), backend("/log/x")),
        (ask("GET", "/local/x", &[]), backend("/local/x")),
        (ask("GET", "/port/x", &[]), backend("/port/x")),
        (
            ask("GET", "/tls/x", &[("x-tier", "silver")]),
            denied.clone(),
        ),
        (
            ask("GET", "/a", &[("x-tier", "silver-x"), ("x-ok", "1")]),
            denied.clone(),
        ),
        (ask("GET", "/a", &[("x-tier", "silver-x")]), backend("/a")),
        (ask("GET", "/a", &[("x-tier", "bronze")]), denied.clone()),
        (ask("GET", "/a", &[("x-tier", "Silver")]), denied.clone()),
        (ask("DELETE", "/port/x", &[]), backend("/port/x")),
        (ask("GET", "/perroute/a", &[]), backend("/perroute/a")),
        (ask("GET", "/perroute/a", &[("x-deny", "")]), denied.clone()),
    ];
    let names = [
        "envoy_http_rbac_allowed",
        "envoy_http_rbac_denied",
        "envoy_http_rbac_shadow_allowed",
        "envoy_http_rbac_shadow_denied",
    ];
    let expected: Vec<Seen> = cases.iter().map(|(_, seen)| seen.clone()).collect();
    let mut outcomes = Vec::new();
    let mut stats = Vec::new();
    for proxy in &proxies {
        let mut seen = Vec::new();
        for (ask, _) in &cases {
            seen.push(send(proxy.port(), ask, &[]).await);
        }
        outcomes.push((proxy, seen));
        stats.push((proxy, proxy.http_stats("ingress_http", &names).await));
    }
    agree("HTTP RBAC matcher replies", &expected, &outcomes);
    // 19 requests meet the filter's own matchers: 10 allowed, 9 denied; its shadow tree allows the 16 GETs and
    // denies the 2 POSTs (no entry) and the DELETE. The route's matcher counts 1 allowed and 1 denied and has
    // no shadow.
    let expected_stats: Vec<(String, u64)> = names
        .iter()
        .map(|n| n.to_string())
        .zip([10 + 1, 9 + 1, 16, 3])
        .collect();
    agree("HTTP RBAC matcher statistics", &expected_stats, &stats);
}

// ---------------------------------------------------------------------------------------------------------------
// envoy.filters.http.ext_authz, HTTP service

/// What the authorization service saw of one check: method, path, and the headers the test watches.
type Check = (String, String, Vec<(&'static str, Option<String>)>);

/// An HTTP authorization service on loopback: `/deny` 403 with a body and headers, `/teapot` 418 with none,
/// `/error` 500, `/slow` answers after 1 s; anything else 200 with `x-auth-user` and `x-extra`.
struct AuthService {
    port: u16,
    seen: Arc<Mutex<Vec<Check>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AuthService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthService {
    async fn start() -> AuthService {
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Check>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let record = record.clone();
                        async move { Ok::<_, std::convert::Infallible>(judge(request, &record).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AuthService { port, seen, task }
    }

    fn take(&self) -> Vec<Check> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn judge(
    request: http::Request<hyper::body::Incoming>,
    record: &Mutex<Vec<Check>>,
) -> http::Response<Full<Bytes>> {
    let path = request.uri().path_and_query().unwrap().as_str().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let watched = ["content-length", "x-token", "authorization", "x-other"];
    let mut headers: Vec<(&'static str, Option<String>)> =
        watched.iter().map(|h| (*h, header(h))).collect();
    // The host is the client's authority, which differs by proxy: only whether it came along is compared.
    headers.push((
        "host",
        header("host").map(|h| h.starts_with("127.0.0.1:").to_string()),
    ));
    record
        .lock()
        .unwrap()
        .push((request.method().to_string(), path.clone(), headers));
    let mut response = http::Response::builder();
    let body = if path.contains("/deny") {
        response = response
            .status(403)
            .header("x-reason", "policy")
            .header("content-type", "text/x-deny");
        "denied by authz"
    } else if path.contains("/teapot") {
        response = response.status(418);
        ""
    } else if path.contains("/error") {
        response = response.status(500);
        "boom"
    } else {
        if path.contains("/slow") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        response = response
            .status(200)
            .header("x-auth-user", "alice")
            .header("x-extra", "no");
        "ok"
    };
    response.body(Full::new(Bytes::from(body))).unwrap()
}

/// The checks: allowed (the service's `x-auth-user` reaches the backend, `x-extra` does not), denied with a
/// body and an allowed client header (and the service's content type replaced by text/plain), denied with no
/// body, a 500 and a timeout (`status_on_error` 503, no body), a route where the filter is disabled; on the
/// second listener, `failure_mode_allow` lets a 500 and a timeout through and a denial passes on every header
/// of the service. What the service received (method, prefixed path with query, `content-length: 0`, the
/// allowed `x-token` and `authorization`, never `x-other`), and `http.<prefix>.ext_authz.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_http_service_like_envoy() {
    let auth = AuthService::start().await;
    let proxies = start("ext-authz-http", EXT_AUTHZ_HTTP, &[("authz", auth.port)]).await;
    let sent: &[(&str, &str)] = &[
        ("x-token", "t1"),
        ("x-other", "o"),
        ("authorization", "Bearer abc"),
    ];
    let ok = |path: &str| Seen::Backend {
        status: 200,
        path: path.to_string(),
        headers: vec![
            ("x-auth-user".into(), Some("alice".into())),
            ("x-extra".into(), None),
        ],
    };
    let passed = |path: &str| Seen::Backend {
        status: 200,
        path: path.to_string(),
        headers: vec![("x-auth-user".into(), None), ("x-extra".into(), None)],
    };
    let empty = |status: u16| Seen::Local {
        status,
        body: String::new(),
        content_type: None,
    };
    let cases: Vec<(&str, Ask, Seen)> = vec![
        ("listen", ask("POST", "/a?q=1", sent), ok("/a?q=1")),
        (
            "listen",
            ask("GET", "/deny", sent),
            local(403, "denied by authz"),
        ),
        ("listen", ask("GET", "/teapot", sent), empty(418)),
        ("listen", ask("GET", "/error", sent), empty(503)),
        ("listen", ask("GET", "/slow", sent), empty(503)),
        (
            "listen",
            ask("GET", "/public/deny", sent),
            passed("/public/deny"),
        ),
        ("listen_open", ask("GET", "/error", sent), passed("/error")),
        ("listen_open", ask("GET", "/slow", &[]), passed("/slow")),
        (
            "listen_open",
            ask("GET", "/deny", &[]),
            Seen::Local {
                status: 403,
                body: "denied by authz".into(),
                content_type: Some("text/x-deny".into()),
            },
        ),
    ];
    let expected: Vec<(Seen, Option<String>)> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, _, seen))| {
            // The 403 with a body carries the allowed `x-reason`; on the open listener every header of the
            // service (its own content type included).
            let extra = match i {
                1 => Some("policy/text/plain".to_string()),
                8 => Some("policy/text/x-deny".to_string()),
                _ => None,
            };
            (seen.clone(), extra)
        })
        .collect();
    let names = [
        "envoy_http_ext_authz_ok",
        "envoy_http_ext_authz_denied",
        "envoy_http_ext_authz_error",
        "envoy_http_ext_authz_failure_mode_allowed",
    ];
    let mut outcomes = Vec::new();
    let mut checks = Vec::new();
    let mut stats = Vec::new();
    for proxy in &proxies {
        auth.take();
        let mut seen = Vec::new();
        for (listener, ask, _) in &cases {
            let reply = send(proxy.port_of(listener), ask, &["x-auth-user", "x-extra"]).await;
            let extra = reply_headers(proxy.port_of(listener), ask).await;
            seen.push((reply, extra));
        }
        outcomes.push((proxy, seen));
        // Each case was sent twice (once for its reply headers): the service saw every check twice.
        checks.push((
            proxy,
            auth.take().into_iter().step_by(2).collect::<Vec<_>>(),
        ));
        let mut values = proxy.http_stats("ingress_http", &names).await;
        values.extend(proxy.http_stats("open_http", &names).await);
        stats.push((proxy, values));
    }
    agree("ext_authz replies", &expected, &outcomes);
    let with = |token: bool| -> Vec<(&'static str, Option<String>)> {
        vec![
            ("content-length", Some("0".into())),
            ("x-token", token.then(|| "t1".into())),
            ("authorization", token.then(|| "Bearer abc".into())),
            ("x-other", None),
            ("host", Some("true".into())),
        ]
    };
    let check =
        |method: &str, path: &str, token: bool| (method.to_string(), path.to_string(), with(token));
    let expected_checks = vec![
        check("POST", "/check/a?q=1", true),
        check("GET", "/check/deny", true),
        check("GET", "/check/teapot", true),
        check("GET", "/check/error", true),
        check("GET", "/check/slow", true),
        // No x-token on the open listener: it allows no headers but authorization.
        ("GET".to_string(), "/error".to_string(), {
            let mut h = with(true);
            h[1].1 = None;
            h
        }),
        check("GET", "/slow", false),
        check("GET", "/deny", false),
    ];
    agree(
        "what the authorization service received",
        &expected_checks,
        &checks,
    );
    let expected_stats: Vec<(String, u64)> = names
        .iter()
        .chain(names.iter())
        .map(|n| n.to_string())
        // Every case twice: ingress 1 ok, 2 denied, 2 errors; open 1 denied, 2 errors let through.
        .zip([2, 4, 4, 0, 0, 2, 4, 4])
        .collect();
    agree("ext_authz statistics", &expected_stats, &stats);
}

/// The denial's `x-reason` and content type, as `x-reason/content-type`, when it has `x-reason`.
async fn reply_headers(port: u16, ask: &Ask<'_>) -> Option<String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(ask.method)
        .uri(format!("http://127.0.0.1:{port}{}", ask.path));
    for (k, v) in ask.headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let reason = header("x-reason")?;
    Some(format!(
        "{reason}/{}",
        header("content-type").unwrap_or_default()
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// envoy.filters.http.ext_authz, gRPC service

#[path = "envoy_auth_filters/grpc_authz.rs"]
mod grpc_authz;

/// What a client saw of one exchange: the status; the local reply's body and content type, or the backend's
/// view (path, body length, the watched headers); the reply headers the filter may add.
#[derive(Debug, PartialEq, Clone)]
struct Exchange {
    status: u16,
    local: Option<(String, Option<String>)>,
    backend: Option<(String, u64, Headers)>,
    reply_headers: Headers,
}

/// Header names with their value, `None` when absent.
type Headers = Vec<(String, Option<String>)>;

/// The request headers the backend's view keeps, and the reply headers kept.
const WATCHED: &[&str] = &[
    "x-auth-user",
    "x-app",
    "x-ifabsent",
    "x-overwrite",
    "x-missing",
    "x-remove",
    "x-envoy-auth-failure-mode-allowed",
    "x-envoy-auth-partial-body",
];
const REPLY_WATCHED: &[&str] = &["x-resp", "x-reason", "connection"];

/// The client's own headers on every gRPC-service case: what the service's answer sets, appends or removes.
const CLIENT_HEADERS: &[(&str, &str)] = &[
    ("x-auth-user", "mallory"),
    ("x-app", "orig"),
    ("x-ifabsent", "client"),
    ("x-overwrite", "client"),
    ("x-remove", "gone"),
    ("x-token", "t1"),
];

async fn exchange(port: u16, h2: bool, method: &str, path: &str, body: &'static str) -> Exchange {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in CLIENT_HEADERS {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .expect("the proxy answers within 10 s")
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let reply_headers = REPLY_WATCHED
        .iter()
        .map(|h| (h.to_string(), header(h)))
        .collect();
    let from_backend = response.headers().contains_key("x-backend");
    let content_type = header("content-type");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !from_backend {
        return Exchange {
            status,
            local: Some((text, content_type)),
            backend: None,
            reply_headers,
        };
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Exchange {
        status,
        local: None,
        backend: Some((
            json["path"].as_str().unwrap().to_string(),
            json["body_bytes"].as_u64().unwrap(),
            WATCHED
                .iter()
                .map(|h| {
                    (
                        h.to_string(),
                        json["headers"][h].as_str().map(str::to_string),
                    )
                })
                .collect(),
        )),
        reply_headers,
    }
}

/// A GET over mutual TLS (curl, with the test certificate `app.pem` as the client's): only the status.
async fn exchange_mtls(port: u16, path: &str, certs: &str) -> Exchange {
    let curl = support::peer("curl").expect("curl is needed for the mutual TLS case");
    let host = format!("app.default.svc.cluster.local:{port}");
    let mut command = tokio::process::Command::new(curl);
    command.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ]);
    command.arg("--resolve").arg(format!("{host}:127.0.0.1"));
    command.arg("--cacert").arg(format!("{certs}/ca.pem"));
    command.arg("--cert").arg(format!("{certs}/app.pem"));
    command.arg("--key").arg(format!("{certs}/app-key.pem"));
    for (k, v) in CLIENT_HEADERS {
        command.arg("-H").arg(format!("{k}: {v}"));
    }
    command.arg(format!("https://{host}{path}"));
    let output = command.kill_on_drop(true).output().await.unwrap();
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Exchange {
        status,
        local: None,
        backend: None,
        reply_headers: Vec::new(),
    }
}

/// Each case's (listener, method, path, body) through each proxy; the exchanges, the checks the service
/// received, and `http.<prefix>.ext_authz.*` for `prefixes`.
async fn run_grpc_cases(
    test: &str,
    cases: &[(&str, &str, &str, &'static str)],
    prefixes: &[&str],
) -> Vec<(
    String,
    Vec<Exchange>,
    Vec<grpc_authz::View>,
    Vec<(String, u64)>,
)> {
    let auth = grpc_authz::GrpcAuthService::start().await;
    // Nothing listens here: the service that is down.
    let down = free_port();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/certs");
    let template = EXT_AUTHZ_GRPC.replace("{certs}", certs);
    let proxies = start(
        test,
        &template,
        &[("authz", auth.port), ("authz_down", down)],
    )
    .await;
    let names = [
        "envoy_http_ext_authz_ok",
        "envoy_http_ext_authz_denied",
        "envoy_http_ext_authz_error",
        "envoy_http_ext_authz_failure_mode_allowed",
    ];
    let mut runs = Vec::new();
    for proxy in &proxies {
        auth.take();
        let mut seen = Vec::new();
        for (listener, method, path, body) in cases {
            if *listener == "listen_tls" {
                seen.push(exchange_mtls(proxy.port_of(listener), path, certs).await);
                continue;
            }
            // `listen h2`: the listener `listen`, over h2 (prior knowledge).
            let (name, h2) = match listener.strip_suffix(" h2") {
                Some(name) => (name, true),
                None => (*listener, false),
            };
            seen.push(exchange(proxy.port_of(name), h2, method, path, body).await);
        }
        let mut stats = Vec::new();
        for prefix in prefixes {
            stats.extend(
                proxy
                    .http_stats(prefix, &names)
                    .await
                    .into_iter()
                    .map(|(n, v)| (format!("{prefix} {n}"), v)),
            );
        }
        // Envoy counts on the cluster each checked request is routed to as well.
        let cluster_names = [
            "envoy_cluster_ext_authz_ok",
            "envoy_cluster_ext_authz_denied",
            "envoy_cluster_ext_authz_error",
            "envoy_cluster_ext_authz_failure_mode_allowed",
        ];
        stats.extend(
            proxy
                .stats("envoy_cluster_name=\"app\"", &cluster_names)
                .await
                .into_iter()
                .map(|(n, v)| (format!("app {n}"), v)),
        );
        runs.push((proxy.kind.to_string(), seen, auth.take(), stats));
    }
    if runs.len() == 2 {
        let (envoy, ours) = (&runs[0], &runs[1]);
        let mut differences = Vec::new();
        for (i, (a, b)) in envoy.1.iter().zip(&ours.1).enumerate() {
            if a != b {
                differences.push(format!(
                    "case {i} {:?}:\n  envoy {a:?}\n  ours  {b:?}",
                    cases[i]
                ));
            }
        }
        if ours.2.len() != envoy.2.len() {
            differences.push(format!("checks: {:#?}\nvs Envoy's {:#?}", ours.2, envoy.2));
        }
        for (i, (a, b)) in envoy.2.iter().zip(&ours.2).enumerate() {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                if a.get(key) != b.get(key) {
                    differences.push(format!(
                        "check {i} {key}: envoy {:?}, ours {:?}",
                        a.get(key),
                        b.get(key)
                    ));
                }
            }
        }
        if ours.3 != envoy.3 {
            differences.push(format!(
                "statistics: envoy {:?}\n  ours {:?}",
                envoy.3, ours.3
            ));
        }
        assert!(
            differences.is_empty(),
            "Outrigger differs from Envoy 1.40:\n{}",
            differences.join("\n")
        );
    }
    runs
}

/// The check's view, as the service received it, for the field names given.
fn fields(view: &grpc_authz::View, names: &[&str]) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|n| (n.to_string(), view.get(*n).cloned()))
        .collect()
}

/// The gRPC service through both proxies (same YAML, same requests): allowed with headers set, appended,
/// kept and removed, a response header added and the query changed; denied with a custom status, header and
/// body, and with no HTTP response (403); an `error_response` (its own status, header and body), a failed
/// call and a timeout (`status_on_error` 503); a route where the filter is disabled and one with `context_extensions`; a service that is down with
/// `failure_mode_allow` (and its header) and without (403); a request over h2; a cluster that speaks HTTP/1.1 to
/// the service (403); mutual TLS (both principals); `timeout: 0s` (no deadline). The exchanges, every CheckRequest the service got
/// (addresses' ports, ids and times masked), `http.<prefix>.ext_authz.*` and `cluster.app.ext_authz.*` must
/// agree with Envoy 1.40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_grpc_service_like_envoy() {
    let cases: &[(&str, &str, &str, &'static str)] = &[
        ("listen", "GET", "/a?x=1", ""),
        ("listen", "GET", "/query/a?keep=2&drop=1", ""),
        ("listen", "GET", "/deny", ""),
        ("listen", "GET", "/deny-bare", ""),
        ("listen", "GET", "/error-response", ""),
        ("listen", "GET", "/grpc-fail", ""),
        ("listen", "GET", "/slow", ""),
        ("listen", "GET", "/public/deny", ""),
        ("listen", "GET", "/ctx/deny", ""),
        ("listen", "POST", "/a", "hello"),
        ("listen_open", "GET", "/a", ""),
        ("listen_down", "GET", "/a", ""),
        ("listen h2", "GET", "/h2", ""),
        ("listen_h1", "GET", "/a", ""),
        ("listen_tls", "GET", "/tls", ""),
        ("listen_untimed", "GET", "/slow", ""),
    ];
    let runs = run_grpc_cases(
        "ext-authz-grpc",
        cases,
        &["ingress_http", "open_http", "down_http", "h1_http"],
    )
    .await;

    // What Envoy 1.40 was seen doing, so that Outrigger alone is held to it too.
    let changed = vec![
        ("x-auth-user", Some("alice")),
        ("x-app", Some("orig,added")),
        ("x-ifabsent", Some("service")),
        ("x-overwrite", Some("service")),
        ("x-missing", Some("service")),
        ("x-remove", None),
        ("x-envoy-auth-failure-mode-allowed", None),
        ("x-envoy-auth-partial-body", None),
    ];
    let untouched = |failure_mode_header: Option<&'static str>| {
        vec![
            ("x-auth-user", Some("mallory")),
            ("x-app", Some("orig")),
            ("x-ifabsent", Some("client")),
            ("x-overwrite", Some("client")),
            ("x-missing", None),
            ("x-remove", Some("gone")),
            ("x-envoy-auth-failure-mode-allowed", failure_mode_header),
            ("x-envoy-auth-partial-body", None),
        ]
    };
    let to_owned = |h: Vec<(&str, Option<&str>)>| -> Vec<(String, Option<String>)> {
        h.into_iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    };
    let passed =
        |path: &str, length: u64, headers: Vec<(&str, Option<&str>)>, resp: bool| Exchange {
            status: 200,
            local: None,
            backend: Some((path.to_string(), length, to_owned(headers))),
            reply_headers: to_owned(vec![
                ("x-resp", resp.then_some("r1")),
                ("x-reason", None),
                ("connection", None),
            ]),
        };
    let refused = |status: u16, body: &str, reason: Option<&str>| Exchange {
        status,
        local: Some((
            body.to_string(),
            (!body.is_empty()).then(|| "text/plain".to_string()),
        )),
        backend: None,
        reply_headers: to_owned(vec![
            ("x-resp", None),
            ("x-reason", reason),
            ("connection", None),
        ]),
    };
    let denied = refused(401, "denied by grpc authz", Some("policy"));
    let changed_h2 = changed.clone();
    let changed_slow = changed.clone();
    let expected = vec![
        passed("/a?x=1", 0, changed.clone(), true),
        passed("/query/a?added=1&keep=2", 0, changed.clone(), true),
        denied.clone(),
        refused(403, "", None),
        // An `error_response` counts as an error, answered with its own status, header and body.
        refused(502, "the service broke", Some("broken")),
        refused(503, "", None),
        refused(503, "", None),
        passed("/public/deny", 0, untouched(None), false),
        denied,
        passed("/a", 5, changed.clone(), true),
        passed("/a", 0, untouched(Some("true")), false),
        refused(403, "", None),
        passed("/h2", 0, changed_h2, true),
        // The cluster speaks HTTP/1.1: the gRPC service cannot answer, an error (Envoy does not switch to h2).
        refused(403, "", None),
        Exchange {
            status: 200,
            local: None,
            backend: None,
            reply_headers: Vec::new(),
        },
        // `timeout: 0s`: no deadline (the service answers after 1 s; no `grpc-timeout` on the call).
        passed("/slow", 0, changed_slow, true),
    ];
    let check_fields = [
        "method",
        "path",
        "host",
        "scheme",
        "protocol",
        "size",
        "id",
        "time",
        "source.address",
        "destination.address",
        "header :authority",
        "header :path",
        "header x-forwarded-proto",
        "header x-token",
        "header x-request-id",
        "context route",
        "metadata_context",
    ];
    let empty_metadata = "Some(Metadata { filter_metadata: {}, typed_filter_metadata: {} })";
    let check =
        |method: &str, path: &str, context: Option<&str>| -> Vec<(String, Option<String>)> {
            let values = [
                Some(method),
                Some(path),
                Some("127.0.0.1:<port>"),
                Some("http"),
                Some("HTTP/1.1"),
                Some("0"),
                Some("true"),
                Some("true"),
                Some("127.0.0.1:<port>"),
                Some("127.0.0.1:<port>"),
                Some("127.0.0.1:<port>"),
                Some(path),
                Some("http"),
                Some("t1"),
                Some("<id>"),
                context,
                Some(empty_metadata),
            ];
            check_fields
                .iter()
                .zip(values)
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect()
        };
    let expected_checks = vec![
        check("GET", "/a?x=1", None),
        check("GET", "/query/a?keep=2&drop=1", None),
        check("GET", "/deny", None),
        check("GET", "/deny-bare", None),
        check("GET", "/error-response", None),
        check("GET", "/grpc-fail", None),
        check("GET", "/slow", None),
        check("GET", "/ctx/deny", Some("ctx")),
        check("POST", "/a", None),
        {
            let mut h2 = check("GET", "/h2", None);
            h2[4].1 = Some("HTTP/2".to_string());
            h2
        },
        {
            let mut tls = check("GET", "/tls", None);
            let authority = Some("app.default.svc.cluster.local:<port>".to_string());
            tls[2].1 = authority.clone();
            tls[3].1 = Some("https".to_string());
            tls[10].1 = authority;
            tls[12].1 = Some("https".to_string());
            tls
        },
        check("GET", "/slow", None),
    ];
    // ingress: 4 allowed, 3 denied, 3 errors (error_response, failed call, timeout); open: the service down,
    // let through; down and h1: refused with the default 403; and on the cluster `app` every route leads to,
    // all of them (the mutual TLS and untimed requests allowed too).
    let expected_stats = [4, 3, 3, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 6, 3, 6, 1];
    for (kind, exchanges, checks, stats) in &runs {
        assert_eq!(exchanges, &expected, "{kind}: the exchanges");
        let seen: Vec<_> = checks.iter().map(|c| fields(c, &check_fields)).collect();
        assert_eq!(seen, expected_checks, "{kind}: what the service received");
        assert_eq!(
            checks[7].get("context team").map(String::as_str),
            Some("blue"),
            "{kind}: context_extensions"
        );
        // Over mutual TLS both sides' principals are the certificates' URI SAN (the client's is `app.pem` too).
        let spiffe = Some("spiffe://cluster.local/ns/default/sa/app".to_string());
        let principals = fields(&checks[10], &["source.principal", "destination.principal"]);
        assert_eq!(
            principals,
            [
                ("source.principal".to_string(), spiffe.clone()),
                ("destination.principal".to_string(), spiffe)
            ],
            "{kind}"
        );
        assert_eq!(
            checks[0].get("source.principal").map(String::as_str),
            Some(""),
            "{kind}: no principal in plaintext"
        );
        let values: Vec<u64> = stats.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, expected_stats, "{kind}: {stats:?}");
    }
}

/// `with_request_body` through both proxies: a body within `max_request_bytes` goes to the service whole, one
/// past it is refused with 413 (no check), a request without a body is checked without one; with
/// `allow_partial_message` and `pack_as_bytes` the check gets the first bytes as `raw_body` and the backend
/// the whole body. What the service received and the statistics must agree with Envoy 1.40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_grpc_request_body_like_envoy() {
    let cases: &[(&str, &str, &str, &'static str)] = &[
        ("listen_body", "POST", "/b", "hello"),
        ("listen_body", "POST", "/b", "0123456789abcdef"),
        ("listen_body", "GET", "/b", ""),
        ("listen_partial", "POST", "/p", "0123456789abcdef"),
        ("listen_partial", "POST", "/p", "short"),
    ];
    let runs = run_grpc_cases("ext-authz-grpc-body", cases, &["body_http", "partial_http"]).await;
    // What Envoy 1.40 was seen doing: statuses and the bytes the backend got; the check's body, size and
    // `x-envoy-auth-partial-body` (none without a body); 413 `Payload Too Large` closing the connection.
    let expected: Vec<(u16, Option<u64>)> = vec![
        (200, Some(5)),
        (413, None),
        (200, Some(0)),
        (200, Some(16)),
        (200, Some(5)),
    ];
    let names = [
        "body",
        "raw_body",
        "size",
        "header x-envoy-auth-partial-body",
    ];
    let check = |body: &str, raw: &str, size: &str, partial: Option<&str>| {
        names
            .iter()
            .zip([Some(body), Some(raw), Some(size), partial])
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect::<Vec<_>>()
    };
    let expected_checks = vec![
        check("hello", "", "5", Some("false")),
        check("", "", "0", None),
        check("", "0123456789", "16", Some("true")),
        check("", "short", "5", Some("false")),
    ];
    for (kind, exchanges, checks, stats) in &runs {
        let seen: Vec<(u16, Option<u64>)> = exchanges
            .iter()
            .map(|e| (e.status, e.backend.as_ref().map(|b| b.1)))
            .collect();
        assert_eq!(seen, expected, "{kind}: statuses and bodies sent on");
        assert_eq!(
            exchanges[1].local,
            Some((
                "Payload Too Large".to_string(),
                Some("text/plain".to_string())
            )),
            "{kind}"
        );
        assert_eq!(
            exchanges[1].reply_headers[2].1.as_deref(),
            Some("close"),
            "{kind}: the 413 closes the HTTP/1 connection"
        );
        let seen: Vec<_> = checks.iter().map(|c| fields(c, &names)).collect();
        assert_eq!(
            seen, expected_checks,
            "{kind}: the bodies the service received"
        );
        let values: Vec<u64> = stats.iter().map(|(_, v)| *v).collect();
        assert_eq!(
            values,
            [2, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0],
            "{kind}: {stats:?}"
        );
    }
}
