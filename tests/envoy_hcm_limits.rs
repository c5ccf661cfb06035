//! The connection manager's timeouts and limits in real Envoy 1.40 and in `outrigger run -c`, side by side:
//! the same YAML (only ports differ), the same bytes on raw connections (partial bodies, stalls, pipelined
//! requests), then the statuses, local-reply bodies, `Connection: close`, whether the connection was closed,
//! what the upstream received, and the statistics must agree.
//!
//! Covered: `stream_idle_timeout`, `request_timeout`, `request_headers_timeout` (a slowloris gets 408),
//! `common_http_protocol_options.max_requests_per_connection`, malformed and smuggling-shaped requests,
//! `common_http_protocol_options.idle_timeout`,
//! `max_connection_duration` and `max_headers_count` (HTTP/1 and h2; `stream_idle_timeout` and
//! `request_timeout` on h2 uploads too), `normalize_path` with `merge_slashes`,
//! and `use_remote_address` with `xff_num_trusted_hops`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "envoy_hcm_limits/wire.rs"]
mod wire;

use std::time::Duration;
use support::backend::Backend;
use support::tcp::free_port;
use wire::{Step, Transcript, exchange};

/// A listener: its name (also its stat prefix), the fields added to its connection manager, its route action.
type Listener = (&'static str, &'static str, &'static str);

/// One listener per concern; `{route}` is filled with the route each needs.
const LISTENERS: &[Listener] = &[
    ("si", "stream_idle_timeout: 1s", "{cluster: backend}"),
    (
        "ws",
        "stream_idle_timeout: 1s, upgrade_configs: [{upgrade_type: websocket}]",
        "{cluster: backend}",
    ),
    (
        "rt",
        "codec_type: HTTP1, request_timeout: 1s",
        "{cluster: backend}",
    ),
    ("rt2", "request_timeout: 1s", "{cluster: backend}"),
    (
        "idle",
        "drain_timeout: 1s, common_http_protocol_options: {idle_timeout: 1s, max_headers_count: 5}",
        "{cluster: backend}",
    ),
    (
        "dur",
        "common_http_protocol_options: {max_connection_duration: 1s}",
        "{cluster: backend}",
    ),
    ("trickle", "stream_idle_timeout: 1s", "{cluster: trickle}"),
    (
        "norm",
        "normalize_path: true, merge_slashes: true",
        "{cluster: backend}",
    ),
    (
        "xff1",
        "use_remote_address: true, xff_num_trusted_hops: 1",
        "{cluster: backend}",
    ),
    ("xff0", "use_remote_address: true", "{cluster: backend}"),
    ("hops", "xff_num_trusted_hops: 2", "{cluster: backend}"),
];

/// The YAML of `listeners` (name, HCM fields, route) on `ports`, with the `backend` and `trickle` clusters.
fn config(listeners: &[Listener], admin: u16, ports: &[u16], backend: u16, trickle: u16) -> String {
    let mut yaml = format!(
        "admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}\nstatic_resources:\n  listeners:\n"
    );
    for ((name, fields, route), port) in listeners.iter().zip(ports) {
        // `norm` sends what its prefix route does not take to a rewrite, to see routing on the new path.
        let routes = if *name == "norm" {
            "[{match: {prefix: /b/}, route: {cluster: backend}}, {match: {prefix: /}, route: {cluster: backend, prefix_rewrite: /other/}}]".to_string()
        } else {
            format!("[{{match: {{prefix: /}}, route: {route}}}]")
        };
        yaml.push_str(&format!(
            r#"  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager,
          stat_prefix: {name}, {fields},
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: {routes}}}]}},
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]}}
"#
        ));
    }
    yaml.push_str("  clusters:\n");
    for (name, port) in [("backend", backend), ("trickle", trickle)] {
        yaml.push_str(&format!(
            "  - {{name: {name}, load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: \
             {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]}}}}\n"
        ));
    }
    yaml
}

/// Envoy's and Outrigger's listener ports, in the order of their listener table, and their admin ports.
struct Ports {
    listeners: &'static [Listener],
    envoy: Vec<u16>,
    ours: Vec<u16>,
    envoy_admin: u16,
    ours_admin: u16,
}

impl Ports {
    fn of(&self, listener: &str) -> (u16, u16) {
        let i = self
            .listeners
            .iter()
            .position(|(n, _, _)| *n == listener)
            .unwrap();
        (self.envoy[i], self.ours[i])
    }
}

/// One scenario on raw connections: what is sent, how long to watch.
struct Case {
    name: &'static str,
    listener: &'static str,
    steps: Vec<Step>,
    watch: Duration,
    /// Whether the connection must be closed alike. Not after a drain's `Connection: close`: Envoy keeps the
    /// socket open until `drain_timeout` (5 s by default), hyper closes it once the response is sent.
    compare_close: bool,
}

fn send(text: &str) -> Step {
    Step::Send(text.as_bytes().to_vec())
}

fn wait(ms: u64) -> Step {
    Step::Wait(Duration::from_millis(ms))
}

fn get(path: &str) -> Step {
    send(&format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"))
}

fn cases() -> Vec<Case> {
    let post10 = "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc";
    let secs = Duration::from_secs;
    vec![
        Case {
            name: "stream idle: the upstream is slow (504)",
            listener: "si",
            steps: vec![get("/slow/2500")],
            watch: secs(2),
            compare_close: true,
        },
        Case {
            name: "stream idle: the body stalls (408, closed)",
            listener: "si",
            steps: vec![send(post10)],
            watch: secs(3),
            compare_close: true,
        },
        Case {
            name: "stream idle: body data keeps the stream alive",
            listener: "si",
            steps: vec![
                send(post10),
                wait(600),
                send("de"),
                wait(600),
                send("fg"),
                wait(600),
                send("hij"),
            ],
            watch: secs(3),
            compare_close: true,
        },
        Case {
            name: "stream idle: a complete body, then a slow upstream (504)",
            listener: "si",
            steps: vec![send(
                "POST /slow/2500 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            )],
            watch: secs(2),
            compare_close: true,
        },
        Case {
            name: "stream idle: the response stalls (reset)",
            listener: "trickle",
            steps: vec![get("/")],
            watch: secs(3),
            compare_close: true,
        },
        Case {
            name: "stream idle: a WebSocket tunnel that falls silent is reset",
            listener: "ws",
            steps: vec![
                send(
                    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                ),
                wait(600),
                send("ping"),
                wait(600),
                send("pong"),
            ],
            watch: Duration::from_millis(2500),
            compare_close: true,
        },
        Case {
            name: "request timeout: a body still arriving (408, closed)",
            listener: "rt",
            steps: vec![send(post10), wait(500), send("de"), wait(400), send("fg")],
            watch: secs(3),
            compare_close: true,
        },
        Case {
            name: "request timeout: disarmed by a complete request",
            listener: "rt",
            steps: vec![send(
                "POST /slow/1500 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            )],
            watch: secs(3),
            compare_close: true,
        },
        Case {
            name: "idle timeout: a connection that sends nothing is closed",
            listener: "idle",
            steps: vec![],
            watch: secs(2),
            compare_close: true,
        },
        Case {
            name: "idle timeout: a request in the drain window closes the connection",
            listener: "idle",
            steps: vec![get("/a"), wait(1400), get("/b")],
            watch: secs(2),
            compare_close: true,
        },
        Case {
            name: "idle timeout: a connection left idle after a request is closed",
            listener: "idle",
            steps: vec![get("/a")],
            watch: secs(5),
            compare_close: true,
        },
        Case {
            name: "max headers count: five pass",
            listener: "idle",
            steps: vec![send(
                "GET / HTTP/1.1\r\nHost: a\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\n\r\n",
            )],
            watch: Duration::from_millis(500),
            compare_close: true,
        },
        Case {
            name: "max headers count: six get 431",
            listener: "idle",
            steps: vec![send(
                "GET / HTTP/1.1\r\nHost: a\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n",
            )],
            watch: secs(2),
            compare_close: true,
        },
        Case {
            name: "max connection duration: the next response closes the connection",
            listener: "dur",
            steps: vec![get("/a"), wait(600), get("/slow/800")],
            watch: secs(3),
            compare_close: false,
        },
    ]
}

/// An h2 upload scenario: the body's pieces, `gap_ms` apart, then its end (`finish`) or a stall.
#[derive(Clone, Copy)]
struct H2Upload {
    listener: &'static str,
    path: &'static str,
    pieces: &'static [&'static str],
    gap_ms: u64,
    finish: bool,
}

impl H2Upload {
    const fn new(
        listener: &'static str,
        path: &'static str,
        pieces: &'static [&'static str],
        gap_ms: u64,
        finish: bool,
    ) -> Self {
        Self {
            listener,
            path,
            pieces,
            gap_ms,
            finish,
        }
    }
}

/// Paths sent with `normalize_path` and `merge_slashes`; hyper refuses `<`, `>` and `` ` `` in a request
/// target before any of this runs, so they are not here.
const PATHS: &[&str] = &[
    "/b/../b/x",
    "/b//x",
    "/b/./x//y/",
    "/a/../../b/x",
    "/b/%2e%2e/x",
    "/b/%2F/x",
    "/b/a%2fb",
    "/b/x%41%7e%5F",
    "/b/x?q=/../a//b",
    "/b/x%2",
    "/b/%zz",
    "/b\\x",
    "/b/x/..",
    "/b/x/.",
    "//b/x",
    "/b/a%3f",
    "/b/x;p=1/../y",
    "/B/x",
    "/b/x|y",
    "/b/{x}",
    "/b/x'y",
    "/b/x\"y",
    "/b/x^y",
    "/b/x%00",
    "/b/a%2eb",
    "/b/.%2e/c",
    "/b/%2e",
    "/b/..%2f",
    "/b/x%25y",
    "/b/[x]",
    "/b/x!$&()*+,;=",
    "///",
    "/b/%",
    "/b/%C3%A9",
];

/// `x-forwarded-for` values sent to the address listeners.
const FORWARDED: &[Option<&str>] = &[
    None,
    Some("8.8.8.8"),
    Some("1.2.3.4, 8.8.8.8"),
    Some("8.8.8.8, 10.0.0.1"),
    Some("garbage"),
];

/// Headers a client sends that the address rules decide about.
const SPOOFED: &[(&str, &str)] = &[
    ("x-envoy-retry-on", "5xx"),
    ("x-envoy-internal", "true"),
    ("x-envoy-external-address", "9.9.9.9"),
    ("x-envoy-original-path", "/op"),
    ("x-envoy-downstream-service-cluster", "dc"),
    ("x-envoy-max-retries", "3"),
    ("x-envoy-foo", "1"),
    ("x-forwarded-proto", "https"),
];

/// What the upstream saw of the address headers: `x-forwarded-*` and every `x-envoy-*` but the router's.
fn address_headers(transcript: &Transcript) -> Vec<(String, String)> {
    let Some(seen) = transcript.responses.first().and_then(|r| r.json()) else {
        return vec![("no upstream".into(), transcript.summary())];
    };
    let mut headers: Vec<(String, String)> = seen["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            (k.starts_with("x-envoy-") || k.starts_with("x-forwarded-"))
                && *k != "x-envoy-expected-rq-timeout-ms"
        })
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    headers.sort();
    headers
}

/// The statistics both must agree on, for every listener.
const STATS: &[&str] = &[
    "downstream_rq_idle_timeout",
    "downstream_rq_timeout",
    "downstream_cx_idle_timeout",
    "downstream_cx_max_duration_reached",
    "downstream_rq_2xx",
    "downstream_rq_4xx",
    "downstream_rq_5xx",
];

async fn stats(admin: u16) -> Vec<String> {
    let text = support::client::get(&format!("http://127.0.0.1:{admin}/stats"), &[])
        .await
        .body;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("0")
            .to_string()
    };
    LISTENERS
        .iter()
        .flat_map(|(listener, _, _)| STATS.iter().map(move |s| format!("http.{listener}.{s}")))
        .map(|name| format!("{name}: {}", value(&name)))
        .collect()
}

/// Both proxies serving `yaml` (made from an admin port and the ports of `listeners`), each on its own ports,
/// ready.
fn start(
    envoy: &std::path::Path,
    tag: &str,
    listeners: &'static [Listener],
    yaml: impl Fn(u16, &[u16]) -> String,
) -> (
    Ports,
    std::path::PathBuf,
    support::envoy::Envoy,
    support::sidecar::Sidecar,
) {
    let ports = Ports {
        listeners,
        envoy: listeners.iter().map(|_| free_port()).collect(),
        ours: listeners.iter().map(|_| free_port()).collect(),
        envoy_admin: free_port(),
        ours_admin: free_port(),
    };
    let dir = std::env::temp_dir().join(format!("outrigger-hcm-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let envoy_config = dir.join("envoy.yaml");
    std::fs::write(&envoy_config, yaml(ports.envoy_admin, &ports.envoy)).unwrap();
    let mut envoy = support::envoy::Envoy::start(envoy, &envoy_config);
    let ours = support::sidecar::Sidecar::start(
        &dir,
        "outrigger",
        &yaml(ports.ours_admin, &ports.ours),
        ports.ours_admin,
    );
    for port in &ports.envoy {
        envoy.wait_for_port(*port);
    }
    (ports, dir, envoy, ours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_and_outrigger_apply_the_connection_manager_limits_alike() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("backend").await;
    let trickle = wire::trickle_server().await;
    let (b, t) = (backend.address.port(), trickle.port());
    let (ports, dir, envoy, ours) = start(&envoy, "limits", LISTENERS, |admin, ports| {
        config(LISTENERS, admin, ports, b, t)
    });

    let mut differences = Vec::new();
    let mut compared = 0;
    // The timing scenarios, each on both proxies at once.
    let runs = cases().into_iter().map(|case| {
        let (e, o) = ports.of(case.listener);
        async move {
            let (theirs, mine) = tokio::join!(
                exchange(e, &case.steps, case.watch),
                exchange(o, &case.steps, case.watch)
            );
            (case.name, case.compare_close, theirs, mine)
        }
    });
    for (name, compare_close, theirs, mine) in futures_join_all(runs).await {
        compared += 1;
        if theirs.outcome().closed_if(compare_close) != mine.outcome().closed_if(compare_close) {
            differences.push(format!(
                "{name}:\n  envoy:     {}\n  outrigger: {}",
                theirs.summary(),
                mine.summary()
            ));
        }
    }
    // h2: the header count (pseudo-headers included) and the idle timeout's GOAWAY.
    let (e, o) = ports.of("idle");
    for extra in [1, 2] {
        let (theirs, mine) =
            tokio::join!(wire::h2_get(e, "/h2", extra), wire::h2_get(o, "/h2", extra));
        compared += 1;
        if theirs != mine {
            differences.push(format!(
                "h2 with {extra} extra headers:\n  envoy:     {theirs}\n  outrigger: {mine}"
            ));
        }
    }
    let (se, so) = ports.of("si");
    let (theirs, mine) = tokio::join!(
        wire::h2_get(se, "/slow/2500", 0),
        wire::h2_get(so, "/slow/2500", 0)
    );
    compared += 1;
    if theirs != mine {
        differences.push(format!(
            "h2 stream idle timeout:\n  envoy:     {theirs}\n  outrigger: {mine}"
        ));
    }
    // h2 uploads: a body that stalls (408 from either timer), a body that trickles in time, a complete body
    // that disarms `request_timeout` before a slow upstream.
    let uploads = [
        H2Upload::new("si", "/post", &["abc"], 0, false),
        H2Upload::new("si", "/post", &["abc", "de", "fg", "hij"], 600, true),
        H2Upload::new("rt2", "/post", &["abc", "de", "fg"], 450, false),
        H2Upload::new("rt2", "/slow/1500", &["abc"], 0, true),
    ];
    let runs = uploads.map(|u| {
        let (ue, uo) = ports.of(u.listener);
        let (gap, watch) = (Duration::from_millis(u.gap_ms), Duration::from_secs(3));
        async move {
            let (theirs, mine) = tokio::join!(
                wire::h2_upload(ue, u.path, u.pieces, gap, u.finish, watch),
                wire::h2_upload(uo, u.path, u.pieces, gap, u.finish, watch)
            );
            let name = format!(
                "{} {} {:?} finished {}",
                u.listener, u.path, u.pieces, u.finish
            );
            (name, theirs, mine)
        }
    });
    for (name, theirs, mine) in futures_join_all(runs.into_iter()).await {
        compared += 1;
        if theirs != mine {
            differences.push(format!(
                "h2 upload on {name}:
  envoy:     {theirs}
  outrigger: {mine}"
            ));
        }
    }
    let (theirs, mine) = tokio::join!(wire::h2_idle_close(e), wire::h2_idle_close(o));
    compared += 1;
    if theirs != mine {
        differences.push(format!(
            "h2 idle connection:\n  envoy:     {theirs}\n  outrigger: {mine}"
        ));
    }
    // Path normalization: status and the path the upstream received.
    let (e, o) = ports.of("norm");
    for path in PATHS {
        let steps = [send(&format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ))];
        let watch = Duration::from_secs(2);
        let (theirs, mine) = tokio::join!(exchange(e, &steps, watch), exchange(o, &steps, watch));
        compared += 1;
        if theirs.first_path() != mine.first_path() {
            differences.push(format!(
                "normalize {path}:\n  envoy:     {:?}\n  outrigger: {:?}",
                theirs.first_path(),
                mine.first_path()
            ));
        }
    }
    // Addresses: what the upstream sees of x-forwarded-* and x-envoy-*.
    for listener in ["xff1", "xff0", "hops"] {
        let (e, o) = ports.of(listener);
        for forwarded in FORWARDED {
            let mut head = String::from("GET /addr HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
            for (k, v) in SPOOFED {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if let Some(xff) = forwarded {
                head.push_str(&format!("x-forwarded-for: {xff}\r\n"));
            }
            head.push_str("\r\n");
            let steps = [send(&head)];
            let watch = Duration::from_secs(2);
            let (theirs, mine) =
                tokio::join!(exchange(e, &steps, watch), exchange(o, &steps, watch));
            compared += 1;
            let (theirs, mine) = (address_headers(&theirs), address_headers(&mine));
            if theirs != mine {
                differences.push(format!(
                    "{listener} with x-forwarded-for {forwarded:?}:\n  envoy:     {theirs:?}\n  outrigger: {mine:?}"
                ));
            }
        }
    }
    // Let the idle connections of the scenarios above end before reading the counters.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (theirs, mine) = (
        stats(ports.envoy_admin).await,
        stats(ports.ours_admin).await,
    );
    for (a, b) in theirs.iter().zip(&mine) {
        compared += 1;
        if a != b {
            differences.push(format!("statistic: envoy {a}, outrigger {b}"));
        }
    }
    drop(ours);
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared > 60, "only {compared} comparisons");
    assert!(
        differences.is_empty(),
        "{} of {compared} comparisons differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Runs every future at once and returns their results in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

/// The connection manager's protocol options: `codec_type` (each listener serves only its protocol),
/// `http2_protocol_options` (as the h2 SETTINGS and connection window), `max_request_headers_kb` below and above
/// the default 60, `server_name`, `generate_request_id: false`, and `upgrade_configs` with `enabled: false` (an
/// upgrade switched off is refused like one never configured), and a route's `upgrade_configs` overriding them.
const OPTIONS: &[Listener] = &[
    ("h1", "codec_type: HTTP1", "{cluster: backend}"),
    (
        "h2",
        "codec_type: HTTP2, http2_protocol_options: {max_concurrent_streams: 7, \
         initial_stream_window_size: 131072, initial_connection_window_size: 1048576}",
        "{cluster: backend}",
    ),
    ("kb2", "max_request_headers_kb: 2", "{cluster: backend}"),
    ("kb96", "max_request_headers_kb: 96", "{cluster: backend}"),
    (
        "named",
        "server_name: edge-7, generate_request_id: false",
        "{cluster: backend}",
    ),
    ("plain", "generate_request_id: true", "{cluster: backend}"),
    (
        "ws",
        "upgrade_configs: [{upgrade_type: websocket}]",
        "{cluster: backend}",
    ),
    (
        "noup",
        "upgrade_configs: [{upgrade_type: websocket, enabled: false}]",
        "{cluster: backend}",
    ),
    // A route's own `upgrade_configs` decide for its requests: allowing one the connection manager never
    // lists, refusing one it allows, allowing one it switched off (the type's case does not matter).
    (
        "rws",
        "generate_request_id: true",
        "{cluster: backend, upgrade_configs: [{upgrade_type: websocket}]}",
    ),
    (
        "rno",
        "upgrade_configs: [{upgrade_type: websocket}]",
        "{cluster: backend, upgrade_configs: [{upgrade_type: websocket, enabled: false}]}",
    ),
    (
        "ron",
        "upgrade_configs: [{upgrade_type: websocket, enabled: false}]",
        "{cluster: backend, upgrade_configs: [{upgrade_type: WebSocket}]}",
    ),
];

/// A GET with one header `x-big` of `size` bytes.
fn big_header(size: usize) -> Step {
    send(&format!(
        "GET /big HTTP/1.1\r\nHost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(size)
    ))
}

const WEBSOCKET: &str =
    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_and_outrigger_apply_the_connection_manager_options_alike() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("backend").await;
    let trickle = wire::trickle_server().await;
    let (b, t) = (backend.address.port(), trickle.port());
    let (ports, dir, envoy, ours) = start(&envoy, "options", OPTIONS, |admin, ports| {
        config(OPTIONS, admin, ports, b, t)
    });
    let watch = Duration::from_secs(2);
    let mut differences = Vec::new();
    let mut compared = 0;
    let mut differ = |what: String, theirs: String, mine: String| {
        compared += 1;
        if theirs != mine {
            differences.push(format!(
                "{what}:\n  envoy:     {theirs}\n  outrigger: {mine}"
            ));
        }
    };

    // Raw HTTP/1 exchanges: statuses, bodies, `Connection`, `Content-Type`, whether the connection closed.
    let exchanges = [
        ("HTTP/1.1 to codec_type HTTP1", "h1", get("/")),
        ("HTTP/1.1 to codec_type HTTP2", "h2", get("/")),
        (
            "a 1.5 KiB header under max_request_headers_kb 2",
            "kb2",
            big_header(1500),
        ),
        (
            "a 3 KiB header over max_request_headers_kb 2",
            "kb2",
            big_header(3000),
        ),
        (
            "a 70 KiB header under max_request_headers_kb 96",
            "kb96",
            big_header(70_000),
        ),
        (
            "a 100 KiB header over max_request_headers_kb 96",
            "kb96",
            big_header(100_000),
        ),
        ("a WebSocket upgrade allowed", "ws", send(WEBSOCKET)),
        (
            "a WebSocket upgrade with enabled: false",
            "noup",
            send(WEBSOCKET),
        ),
        (
            "a WebSocket upgrade never configured",
            "plain",
            send(WEBSOCKET),
        ),
        (
            "a WebSocket upgrade allowed by its route only",
            "rws",
            send(WEBSOCKET),
        ),
        (
            "a WebSocket upgrade refused by its route",
            "rno",
            send(WEBSOCKET),
        ),
        (
            "a WebSocket upgrade switched off but allowed by its route",
            "ron",
            send(WEBSOCKET),
        ),
    ];
    for (what, listener, step) in exchanges {
        let (e, o) = ports.of(listener);
        let steps = [step];
        let (theirs, mine) = tokio::join!(exchange(e, &steps, watch), exchange(o, &steps, watch));
        // h2's frames are no HTTP/1 response: only statuses and the close are compared there.
        let (theirs, mine) = if listener == "h2" {
            let brief = |t: &Transcript| {
                let statuses: Vec<u16> = t.responses.iter().map(|r| r.status).collect();
                format!("HTTP/1 statuses {statuses:?}, closed {}", t.closed)
            };
            (brief(&theirs), brief(&mine))
        } else {
            (theirs.summary(), mine.summary())
        };
        differ(what.to_string(), theirs, mine);
    }

    // h2: prior knowledge to each codec, and the settings `http2_protocol_options` gives.
    for listener in ["h1", "h2"] {
        let (e, o) = ports.of(listener);
        let (theirs, mine) = tokio::join!(wire::h2_get(e, "/h2", 0), wire::h2_get(o, "/h2", 0));
        differ(format!("h2 to {listener}"), theirs, mine);
    }
    for (listener, size) in [
        ("kb2", 1500),
        ("kb2", 3000),
        ("kb96", 70_000),
        ("kb96", 100_000),
    ] {
        let (e, o) = ports.of(listener);
        let big = || vec![("x-big".to_string(), "a".repeat(size))];
        let (theirs, mine) = tokio::join!(
            wire::h2_get_with(e, "/big", big()),
            wire::h2_get_with(o, "/big", big())
        );
        differ(
            format!("h2 with a {size}-byte header to {listener}"),
            theirs,
            mine,
        );
    }
    let (e, o) = ports.of("h2");
    let (theirs, mine) = tokio::join!(wire::h2_settings(e), wire::h2_settings(o));
    assert_eq!(
        theirs, "setting 3 = 7, setting 4 = 131072, connection window += 983041",
        "Envoy's SETTINGS and connection WINDOW_UPDATE"
    );
    differ("h2 SETTINGS and connection window".into(), theirs, mine);

    // `server` on the response, and the `x-request-id` the upstream saw, sent or not.
    for listener in ["named", "plain"] {
        let (e, o) = ports.of(listener);
        for sent in [None, Some("client-id-1")] {
            let mut head = String::from("GET /id HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
            if let Some(id) = sent {
                head.push_str(&format!("x-request-id: {id}\r\n"));
            }
            head.push_str("\r\n");
            let steps = [send(&head)];
            let (theirs, mine) =
                tokio::join!(exchange(e, &steps, watch), exchange(o, &steps, watch));
            let seen = |t: &Transcript| {
                let Some(response) = t.responses.first() else {
                    return format!("no response: {}", t.summary());
                };
                let id =
                    response
                        .json()
                        .map(|seen| match seen["headers"]["x-request-id"].as_str() {
                            Some(id) if Some(id) == sent => "the client's".to_string(),
                            Some(id) if uuid_like(id) => "a new UUID".to_string(),
                            other => format!("{other:?}"),
                        });
                // The default `server` differs on purpose (Outrigger names itself): compare it only when set.
                let server = (listener == "named").then(|| response.header("server"));
                format!("x-request-id {id:?}, server {server:?}")
            };
            differ(
                format!("{listener} with x-request-id {sent:?}"),
                seen(&theirs),
                seen(&mine),
            );
        }
    }

    drop(ours);
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared >= 16, "only {compared} comparisons");
    assert!(
        differences.is_empty(),
        "{} of {compared} comparisons differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Whether `id` has a UUID's shape (8-4-4-4-12 hex digits).
fn uuid_like(id: &str) -> bool {
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// `x-forwarded-client-cert` with every `set_current_client_cert_details` field, `cert` and `chain` among them:
/// the same client certificate through each proxy's mTLS listener must give the application the same header,
/// byte for byte.
const XFCC: &[Listener] = &[("xfcc", "", "")];

fn xfcc_config(pki: &std::path::Path, admin: u16, port: u16, backend: u16) -> String {
    format!(
        r#"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - name: xfcc
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates: [{{certificate_chain: {{filename: "{pki}/server/cert.pem"}}, private_key: {{filename: "{pki}/server/key.pem"}}}}]
            validation_context: {{trusted_ca: {{filename: "{pki}/server/ca.pem"}}}}
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: xfcc
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: {{subject: true, cert: true, chain: true, uri: true, dns: true}}
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]}}]}}
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - {{name: backend, load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}}}}}]}}]}}}}
"#,
        pki = pki.display()
    )
}

/// The `x-forwarded-client-cert` the backend saw of one request sent with `client`'s certificate.
fn xfcc_through(port: u16, curl: &std::path::Path, client: &std::path::Path) -> String {
    let output = std::process::Command::new(curl)
        .args(["-sS", "--max-time", "5", "-k", "--cert"])
        .arg(client.join("cert.pem"))
        .arg("--key")
        .arg(client.join("key.pem"))
        .arg(format!("https://127.0.0.1:{port}/xfcc"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&output.stdout).into_owned();
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| {
        panic!(
            "no answer from the backend: {body}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    seen["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or("(none)")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_outrigger_forward_the_same_client_certificate_details() {
    let (Some(envoy), Some(curl)) = (support::peer("envoy"), support::peer("curl")) else {
        return;
    };
    let backend = Backend::start("backend").await;
    let pki = support::pki::Pki::new("hcm-xfcc");
    pki.issue("server", &support::pki::spiffe("server"));
    let client = pki.issue("client", &support::pki::spiffe("client"));
    let b = backend.address.port();
    let (ports, dir, envoy, ours) = start(&envoy, "xfcc", XFCC, |admin, ports| {
        xfcc_config(&pki.dir, admin, ports[0], b)
    });
    let (e, o) = ports.of("xfcc");
    let curl_ = curl.clone();
    let client_ = client.clone();
    let theirs = tokio::task::spawn_blocking(move || xfcc_through(e, &curl_, &client_));
    let mine = tokio::task::spawn_blocking(move || xfcc_through(o, &curl, &client));
    let (theirs, mine) = (theirs.await.unwrap(), mine.await.unwrap());
    drop(ours);
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    // Envoy's own header shows that each field was written: the ones `cert` and `chain` add among them.
    for field in [
        "By=",
        ";Hash=",
        ";Cert=\"-----BEGIN%20CERTIFICATE-----%0A",
        ";Chain=\"",
        ";Subject=\"",
        ";URI=",
    ] {
        assert!(theirs.contains(field), "Envoy wrote no {field}: {theirs}");
    }
    assert_eq!(
        mine, theirs,
        "x-forwarded-client-cert: outrigger, then Envoy"
    );
}

/// Listeners of the hostile-client comparison: a request limit per connection, a headers timeout, defaults.
const HOSTILE_LISTENERS: &[Listener] = &[
    (
        "maxrq",
        "common_http_protocol_options: {max_requests_per_connection: 2}",
        "{cluster: backend}",
    ),
    ("hdr", "request_headers_timeout: 1s", "{cluster: backend}"),
    ("plain", "drain_timeout: 5s", "{cluster: backend}"),
];

/// Requests a hostile or broken client sends, on the `plain` listener: each must end as Envoy ends it.
fn hostile_cases() -> Vec<Case> {
    let secs = Duration::from_secs;
    let plain = |name, text: String| Case {
        name,
        listener: "plain",
        steps: vec![Step::Send(text.into_bytes())],
        watch: secs(2),
        compare_close: true,
    };
    vec![
        Case {
            name: "max_requests_per_connection: the second response closes the connection",
            listener: "maxrq",
            steps: vec![get("/a"), wait(300), get("/b"), wait(300), get("/c")],
            watch: secs(1),
            compare_close: false,
        },
        Case {
            name: "slowloris: headers trickled past request_headers_timeout",
            listener: "hdr",
            steps: vec![
                send("GET / HTTP/1.1\r\nHost: a\r\n"),
                wait(400),
                send("x-a: 1\r\n"),
                wait(400),
                send("x-b: 1\r\n"),
                wait(400),
                send("x-c: 1\r\n"),
            ],
            watch: secs(2),
            compare_close: true,
        },
        plain(
            "smuggling: Content-Length and Transfer-Encoding",
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".into(),
        ),
        plain(
            "smuggling: two different Content-Lengths",
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into(),
        ),
        plain(
            "smuggling: a Content-Length list",
            "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd".into(),
        ),
        plain(
            "smuggling: Transfer-Encoding not ending in chunked",
            "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n".into(),
        ),
        plain(
            "obs-fold",
            "GET /f HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n".into(),
        ),
        plain("bare LF line ends", "GET /lf HTTP/1.1\nHost: a\n\n".into()),
        plain(
            "a space in a header name",
            "GET /n HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n".into(),
        ),
        plain(
            "a control character in a header value",
            "GET /v HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n".into(),
        ),
        plain(
            "an absurd :path of 70 KiB",
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70 * 1024)),
        ),
        plain(
            "a path without its slash",
            "GET abc HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        plain(
            "a NUL in the path",
            "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        plain(
            "an unknown HTTP version",
            "GET / HTTP/1.7\r\nHost: a\r\n\r\n".into(),
        ),
        plain("not HTTP at all", "\x16\x03\x01garbage\r\n\r\n".into()),
    ]
}

/// `max_requests_per_connection`, the slowloris cut by `request_headers_timeout`, and request shapes used for
/// smuggling or simply broken (both Content-Length and Transfer-Encoding, two Content-Lengths, obs-fold, bare
/// LF, invalid header names and values, absurd paths): Envoy 1.40 and Outrigger answer each alike (status,
/// local reply, `Connection`, whether the connection is closed, what the upstream saw) and count alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn envoy_and_outrigger_answer_hostile_and_limited_requests_alike() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("backend").await;
    let b = backend.address.port();
    let (ports, dir, envoy, ours) = start(&envoy, "hostile", HOSTILE_LISTENERS, |admin, ports| {
        config(HOSTILE_LISTENERS, admin, ports, b, b)
    });
    let runs = hostile_cases().into_iter().map(|case| {
        let (e, o) = ports.of(case.listener);
        async move {
            let (theirs, mine) = tokio::join!(
                exchange(e, &case.steps, case.watch),
                exchange(o, &case.steps, case.watch)
            );
            (case.name, case.compare_close, theirs, mine)
        }
    });
    let mut differences = Vec::new();
    let mut compared = 0;
    for (name, compare_close, theirs, mine) in futures_join_all(runs).await {
        compared += 1;
        if theirs.outcome().closed_if(compare_close) != mine.outcome().closed_if(compare_close) {
            differences.push(format!(
                "{name}:\n  envoy:     {}\n  outrigger: {}",
                theirs.summary(),
                mine.summary()
            ));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stat = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("0")
            .to_string()
    };
    let envoy_stats = support::client::get(
        &format!("http://127.0.0.1:{}/stats", ports.envoy_admin),
        &[],
    )
    .await
    .body;
    let our_stats =
        support::client::get(&format!("http://127.0.0.1:{}/stats", ports.ours_admin), &[])
            .await
            .body;
    for name in [
        "http.maxrq.downstream_cx_max_requests_reached",
        "http.maxrq.downstream_rq_2xx",
        "http.hdr.downstream_rq_4xx",
        "http.plain.downstream_rq_2xx",
        // Every codec refusal counts a protocol error (issue 14).
        "http.hdr.downstream_cx_protocol_error",
        "http.plain.downstream_cx_protocol_error",
        "http.maxrq.downstream_cx_protocol_error",
    ] {
        compared += 1;
        let (a, b) = (stat(&envoy_stats, name), stat(&our_stats, name));
        if a != b {
            differences.push(format!("statistic {name}: envoy {a}, outrigger {b}"));
        }
    }
    drop(ours);
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        differences.is_empty(),
        "{} of {compared} comparisons differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
