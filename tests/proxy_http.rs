//! The HTTP connection manager on loopback: real backends, the proxy in-process, hyper and curl as clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::backend::Backend;
use support::client::get;
use support::proxy::{address, fill, start};

const CONFIG: &str = r#"
node: {metadata: {OUTRIGGER_ISTIO_STATS: true}}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          upgrade_configs: [{upgrade_type: websocket}]
          request_headers_timeout: 1s
          use_remote_address: true
          route_config:
            virtual_hosts:
            - name: api
              domains: ["api.example.com"]
              routes: [{match: {prefix: /}, direct_response: {status: 201, body: {inline_string: "api host"}}}]
            - name: all
              domains: ["*"]
              routes:
              - {match: {path: /direct}, direct_response: {status: 200, body: {inline_string: hello}}}
              - {match: {prefix: /redirect}, redirect: {https_redirect: true, host_redirect: example.com}}
              - {match: {prefix: /api/}, route: {cluster: a, prefix_rewrite: /v2/}}
              - match: {safe_regex: {regex: "/users/([0-9]+)"}}
                route: {cluster: a, regex_rewrite: {pattern: {regex: "^/users/([0-9]+)$"}, substitution: "/u/\\1"}}
              - {match: {prefix: /header, headers: [{name: x-canary, string_match: {exact: "yes"}}]}, route: {cluster: b}}
              - {match: {prefix: /header}, route: {cluster: a}}
              - {match: {prefix: /query, query_parameters: [{name: debug, present_match: true}]}, route: {cluster: b}}
              - {match: {prefix: /query}, route: {cluster: a}}
              - {match: {prefix: /dead}, route: {cluster: dead}}
              - {match: {prefix: /slow}, route: {cluster: a, timeout: 0.2s}}
              - {match: {prefix: /rr}, route: {cluster: ab}}
              - {match: {prefix: /dns}, route: {cluster: dns}}
              - {match: {prefix: /auto-host}, route: {cluster: dns, auto_host_rewrite: true}}
              - {match: {prefix: /by-header}, route: {cluster_header: x-target-cluster}}
              - {match: {prefix: /lr}, route: {cluster: lr}}
              - {match: {prefix: /random}, route: {cluster: random}}
              - {match: {prefix: /logical}, route: {cluster: logical}}
              - {match: {prefix: /reset}, route: {cluster: reset}}
              - {match: {prefix: /retry}, route: {cluster: half_dead, retry_policy: {retry_on: connect-failure, num_retries: 3}}}
              - match: {prefix: /mutate}
                request_headers_to_add: [{header: {key: x-added, value: "1"}}]
                request_headers_to_remove: [x-remove-me]
                response_headers_to_add: [{header: {key: x-resp, value: "yes"}}]
                route: {cluster: a, host_rewrite_literal: rewritten.local}
              - match: {prefix: /keep-and-replace}
                request_headers_to_add:
                - {header: {key: x-empty-kept, value: ""}, keep_empty_value: true}
                - {header: {key: x-empty-dropped, value: ""}}
                response_headers_to_add:
                - {header: {key: x-backend, value: replaced}, append: false}
                - {header: {key: content-type, value: text/plain}}
                route: {cluster: a}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - {name: a, load_assignment: {cluster_name: a, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}}]}]}}
  - {name: b, load_assignment: {cluster_name: b, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {b}}}}}]}]}}
  - name: ab
    load_assignment: {cluster_name: ab, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {b}}}}}]}]}
  - {name: dead, connect_timeout: 1s, load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {dead}}}}}]}]}}
  - name: half_dead
    connect_timeout: 1s
    load_assignment: {cluster_name: half_dead, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {dead}}}}},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}}]}]}
  - name: lr
    lb_policy: LEAST_REQUEST
    load_assignment: {cluster_name: lr, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {b}}}}}]}]}
  - name: random
    lb_policy: RANDOM
    load_assignment: {cluster_name: random, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}, load_balancing_weight: 1},
      {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {b}}}}, load_balancing_weight: 3}]}]}
  - {name: logical, type: LOGICAL_DNS, dns_lookup_family: V4_ONLY, load_assignment: {cluster_name: logical, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: {b}}}}}]}]}}
  - {name: reset, load_assignment: {cluster_name: reset, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {reset}}}}}]}]}}
  - {name: dns, type: STRICT_DNS, dns_lookup_family: V4_ONLY, load_assignment: {cluster_name: dns, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: {a}}}}}]}]}}
"#;

struct Setup {
    proxy: outrigger_proxy::Proxy,
    url: String,
    _a: Backend,
    _b: Backend,
    _reset: support::tcp::Server,
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn setup() -> Setup {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let reset = support::tcp::closes_at_once().await;
    let config = fill(
        CONFIG,
        &[
            ("a", a.address.port().to_string()),
            ("b", b.address.port().to_string()),
            ("dead", closed_port().to_string()),
            ("reset", reset.address.port().to_string()),
        ],
    );
    let proxy = start(&config).await;
    let url = format!("http://{}", address(&proxy, "http"));
    Setup {
        proxy,
        url,
        _a: a,
        _b: b,
        _reset: reset,
    }
}

/// The proxy's Prometheus text, from its admin API.
async fn stats(s: &Setup) -> String {
    get(
        &format!("http://{}/stats/prometheus", s.proxy.admin_address.unwrap()),
        &[],
    )
    .await
    .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_and_act_like_envoy() {
    let s = setup().await;
    let r = get(&format!("{}/direct", s.url), &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));

    let r = get(&format!("{}/redirect/x?q=1", s.url), &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "https://example.com/redirect/x?q=1");

    let r = get(&format!("{}/api/items?page=2", s.url), &[]).await;
    assert_eq!(r.json()["path"], "/v2/items?page=2");

    let r = get(&format!("{}/users/42", s.url), &[]).await;
    assert_eq!(r.json()["path"], "/u/42");

    assert_eq!(
        get(&format!("{}/header", s.url), &[("x-canary", "yes")])
            .await
            .json()["backend"],
        "b"
    );
    assert_eq!(
        get(&format!("{}/header", s.url), &[("x-canary", "no")])
            .await
            .json()["backend"],
        "a"
    );
    assert_eq!(
        get(&format!("{}/query?debug", s.url), &[]).await.json()["backend"],
        "b"
    );
    assert_eq!(
        get(&format!("{}/query?x=1", s.url), &[]).await.json()["backend"],
        "a"
    );

    let r = get(
        &format!("{}/anything", s.url),
        &[("host", "api.example.com")],
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (201, "api host"));
    let r = get(&format!("{}/dns", s.url), &[]).await;
    assert_eq!(r.json()["backend"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_mutated_and_request_ids_added() {
    let s = setup().await;
    let r = get(
        &format!("{}/mutate", s.url),
        &[
            ("x-remove-me", "1"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
        ],
    )
    .await;
    let seen = &r.json()["headers"];
    assert_eq!(seen["x-added"], "1");
    assert_eq!(seen["host"], "rewritten.local");
    assert!(seen.get("x-remove-me").is_none(), "{seen}");
    assert!(
        seen.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop: {seen}"
    );
    assert_eq!(seen["x-forwarded-proto"], "http");
    // use_remote_address appends the peer; for a loopback peer Envoy appends its own address instead (the
    // first IPv4 address of a non-loopback interface, 127.0.0.1 when there is none).
    let appended = seen["x-forwarded-for"].as_str().unwrap();
    assert!(
        appended.parse::<std::net::Ipv4Addr>().is_ok(),
        "x-forwarded-for: {appended}"
    );
    assert_eq!(seen["x-request-id"].as_str().unwrap().len(), 36);
    assert_eq!(r.headers["x-resp"], "yes");
    assert_eq!(r.headers["server"], "outrigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_false_replaces_and_keep_empty_value_adds_an_empty_header() {
    let s = setup().await;
    let r = get(&format!("{}/keep-and-replace", s.url), &[]).await;
    let seen = &r.json()["headers"];
    assert_eq!(seen["x-empty-kept"], "", "{seen}");
    assert!(seen.get("x-empty-dropped").is_none(), "{seen}");
    let values = |name: &str| -> Vec<&str> {
        r.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    // The backend's own `x-backend: a` is replaced; without `append`, a value is appended.
    assert_eq!(values("x-backend"), ["replaced"]);
    assert_eq!(values("content-type"), ["application/json", "text/plain"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_errors_answer_like_envoy_and_the_proxy_keeps_serving() {
    let s = setup().await;
    let r = get(&format!("{}/nowhere", s.url), &[]).await;
    assert_eq!(
        (
            r.status,
            r.headers["x-outrigger-response-flags"].to_str().unwrap()
        ),
        (404, "NR")
    );
    // No virtual host for the request's host at all.
    let only_api = start(CONFIG_NO_ROUTE).await;
    let r = get(&format!("http://{}/x", address(&only_api, "http")), &[]).await;
    assert_eq!(
        (
            r.status,
            r.headers["x-outrigger-response-flags"].to_str().unwrap()
        ),
        (404, "NR")
    );

    let r = get(&format!("{}/dead", s.url), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["x-outrigger-response-flags"], "UF");
    assert!(r.body.contains("connection failure"), "{}", r.body);

    let r = get(&format!("{}/slow/2000", s.url), &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.headers["x-outrigger-response-flags"], "UT");
    assert_eq!(r.body, "upstream request timeout");

    // Still serving.
    assert_eq!(get(&format!("{}/direct", s.url), &[]).await.status, 200);
    let metrics = stats(&s).await;
    assert!(
        metrics.contains(
            "envoy_cluster_upstream_cx_connect_fail_total{envoy_cluster_name=\"dead\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("envoy_cluster_upstream_rq_timeout_total{envoy_cluster_name=\"a\"} 1"),
        "{metrics}"
    );
}

const CONFIG_NO_ROUTE: &str = r#"
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: only_api
          route_config: {virtual_hosts: [{name: api, domains: ["api.example.com"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_and_retries_skip_dead_endpoints() {
    let s = setup().await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(
            get(&format!("{}/rr", s.url), &[]).await.json()["backend"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.iter().filter(|b| *b == "a").count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|b| *b == "b").count(), 2, "{seen:?}");

    // Round robin puts every first attempt on the dead endpoint, so each of the 6 requests is retried once.
    for _ in 0..6 {
        let r = get(&format!("{}/retry", s.url), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let metrics = stats(&s).await;
    assert!(
        metrics
            .contains("envoy_cluster_upstream_rq_retry_total{envoy_cluster_name=\"half_dead\"} 6"),
        "{metrics}"
    );
}

fn curl(args: &[&str]) -> Option<String> {
    let curl = support::peer("curl")?;
    let output = std::process::Command::new(curl)
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http1_and_h2c_prior_knowledge() {
    let s = setup().await;
    let url = format!("{}/api/x", s.url);
    let Some(h1) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl(&[&url])
    })
    .await
    .unwrap() else {
        return;
    };
    let h1: serde_json::Value = serde_json::from_str(&h1).unwrap();
    assert_eq!(h1["path"], "/v2/x");
    let h2 = tokio::task::spawn_blocking(move || {
        curl(&["--http2-prior-knowledge", "-w", "\n%{http_version}", &url])
    })
    .await
    .unwrap()
    .unwrap();
    let (body, version) = h2.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "curl spoke h2 to the proxy");
    let seen: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["path"], "/v2/x");
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "the cluster speaks HTTP/1.1 upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    let mut client = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    client
        .write_all(
            b"GET /api/ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    client.write_all(b"ping over the tunnel").await.unwrap();
    let mut echoed = [0u8; 20];
    client.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping over the tunnel");

    // An `h2c` upgrade, which Envoy's codec strips, is forwarded as a plain request.
    let r = get(
        &format!("{}/api/x", s.url),
        &[("connection", "upgrade"), ("upgrade", "h2c")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_prometheus_endpoint() {
    let s = setup().await;
    for path in ["/direct", "/nowhere", "/api/x", "/dead"] {
        get(&format!("{}{path}", s.url), &[]).await;
    }
    let metrics = stats(&s).await;
    assert!(
        metrics.contains(
            "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress\"} 4"
        ),
        "{metrics}"
    );
    // Istio's metrics (on by the node metadata) are checked too, histograms included.
    assert!(
        metrics.contains("# TYPE istio_request_duration_milliseconds histogram")
            && metrics.contains("istio_requests_total{reporter=\"source\"")
            && metrics.contains("response_code=\"404\""),
        "{metrics}"
    );
    let Some(promtool) = support::peer("promtool") else {
        return;
    };
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    // Envoy's own gauge `membership_total` ends in `_total`, which promtool's linter dislikes; dashboards
    // know it by that name, so it keeps it. Istio's `istio_request_duration_milliseconds` is in milliseconds,
    // which the linter would have in seconds; Istio's dashboards know that name. Anything else promtool says
    // is a failure.
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !l.starts_with("envoy_cluster_membership_total non-counter metrics should not have")
                && !l.starts_with(
                    "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"",
                )
        })
        .collect();
    assert!(
        problems.is_empty() && (output.status.success() || output.status.code() == Some(3)),
        "promtool ({}): {report}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_and_malformed_requests_get_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    let big = "x".repeat(70 * 1024);
    let r = support::client::try_get(&format!("{}/direct", s.url), &[("x-big", &big)]).await;
    assert_eq!(
        r.map(|r| r.status),
        Ok(431),
        "over max_request_headers_kb (60 KiB by default)"
    );

    let mut raw = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    raw.write_all(b"GET /direct HTTP/1.1\r\nhost x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    let _ = raw.read_to_string(&mut reply).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");

    // The proxy keeps serving.
    assert_eq!(get(&format!("{}/direct", s.url), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_type_and_balancer_serves() {
    let s = setup().await;
    let backend = |r: support::client::Reply| r.json()["backend"].as_str().unwrap().to_string();
    // cluster_header picks the cluster per request.
    assert_eq!(
        backend(
            get(
                &format!("{}/by-header", s.url),
                &[("x-target-cluster", "b")]
            )
            .await
        ),
        "b"
    );
    assert_eq!(
        backend(
            get(
                &format!("{}/by-header", s.url),
                &[("x-target-cluster", "a")]
            )
            .await
        ),
        "a"
    );
    let r = get(
        &format!("{}/by-header", s.url),
        &[("x-target-cluster", "nope")],
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-outrigger-response-flags").as_deref()),
        (503, Some("NC"))
    );
    // LOGICAL_DNS resolves its one name; auto_host_rewrite sends that name as Host.
    assert_eq!(backend(get(&format!("{}/logical", s.url), &[]).await), "b");
    let r = get(
        &format!("{}/auto-host", s.url),
        &[("host", "original.test")],
    )
    .await;
    assert_eq!(r.json()["headers"]["host"], "localhost");
    // LEAST_REQUEST and RANDOM both spread sequential requests over both endpoints.
    for (path, requests) in [("lr", 40), ("random", 60)] {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..requests {
            seen.insert(backend(get(&format!("{}/{path}", s.url), &[]).await));
        }
        assert_eq!(seen.len(), 2, "{path}: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_is_503_ur_and_slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup().await;
    let r = get(&format!("{}/reset", s.url), &[]).await;
    assert_eq!(
        (r.status, r.header("x-outrigger-response-flags").as_deref()),
        (503, Some("UR"))
    );

    // request_headers_timeout is 1s here: a client that never finishes its headers is cut off.
    let mut slow = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    // The proxy times the head from its first byte, so the clock starts before the bytes leave.
    let sent = std::time::Instant::now();
    slow.write_all(b"GET /direct HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut rest),
    )
    .await;
    let after = sent.elapsed();
    assert!(
        closed.is_ok(),
        "the connection stayed open past request_headers_timeout"
    );
    // Not before the timeout (a lower bound: a connection closed at once would pass without it).
    assert!(
        after >= std::time::Duration::from_secs(1) && after < std::time::Duration::from_secs(5),
        "cut off {after:?} after the partial headers, for a 1s request_headers_timeout"
    );
    // Envoy 1.40 answers `408 request header timeout` and closes (compared in
    // tests/envoy_hcm_limits.rs::envoy_and_outrigger_answer_hostile_and_limited_requests_alike).
    let reply = String::from_utf8_lossy(&rest);
    assert!(
        reply.starts_with("HTTP/1.1 408") && reply.ends_with("request header timeout"),
        "{reply}"
    );

    assert_eq!(get(&format!("{}/direct", s.url), &[]).await.status, 200);
}

/// An admin API and one HTTP listener whose routes send each path prefix to a cluster, with `clusters` (YAML list
/// items) below: the shape of the cluster-setting tests.
fn prefix_routes(routes: &[(&str, &str)], clusters: &str) -> String {
    let routes: String = routes
        .iter()
        .map(|(prefix, cluster)| {
            format!(
                "              - {{match: {{prefix: {prefix}}}, route: {{cluster: {cluster}}}}}\n"
            )
        })
        .collect();
    format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
{clusters}"#
    )
}

/// The clusters' protocol settings, each away from Envoy's default: the legacy `http2_protocol_options` makes
/// the upstream h2; `http_protocol_options` (legacy and typed explicit) keeps HTTP/1.1 even next to a legacy h2
/// setting that the typed options override; `common_http_protocol_options.idle_timeout` (legacy and typed, over
/// HTTP/1.1 and h2) closes a pooled connection once idle, so the next request opens a new one, where the default
/// (1 h) reuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_protocol_options_choose_the_protocol_and_close_idle_connections() {
    let backend = Backend::start("app").await;
    let cluster = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    connect_timeout: 1s\n{extra}    load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]}}\n",
            backend.address.port()
        )
    };
    let typed = |options: &str| {
        format!(
            "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        {options}\n"
        )
    };
    let config = prefix_routes(
        &[
            ("/legacy_h2", "legacy_h2"),
            ("/legacy_h1", "legacy_h1"),
            ("/typed_h1", "typed_h1"),
            ("/default", "default"),
        ],
        &[

        cluster(
            "legacy_h2",
            "    http2_protocol_options: {}\n    common_http_protocol_options: {idle_timeout: 0.2s}\n"
        ),
        cluster(
            "legacy_h1",
            "    http_protocol_options: {}\n    common_http_protocol_options: {idle_timeout: 0.2s}\n"
        ),
        cluster(
            "typed_h1",
            &format!(
                "    http2_protocol_options: {{}}\n{}",
                typed(
                    "common_http_protocol_options: {idle_timeout: 0.2s}\n        explicit_http_config: {http_protocol_options: {}}"
                )
            )
        ),
        cluster("default", ""),
        ]
        .concat(),
    );
    let proxy = start(&config).await;
    let url = format!("http://{}", address(&proxy, "http"));
    let version = |path: &'static str| {
        let url = url.clone();
        async move { get(&format!("{url}/{path}"), &[]).await.json()["version"].clone() }
    };
    assert_eq!(version("legacy_h2").await, "HTTP/2.0");
    assert_eq!(version("legacy_h1").await, "HTTP/1.1");
    assert_eq!(version("typed_h1").await, "HTTP/1.1");
    assert_eq!(version("default").await, "HTTP/1.1");
    // A second request after 0.6 s: a new connection where the idle timeout is 0.2 s.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    for path in ["legacy_h2", "legacy_h1", "typed_h1", "default"] {
        version(path).await;
    }
    let stats = get(
        &format!("http://{}/stats", proxy.admin_address.unwrap()),
        &[],
    )
    .await
    .body;
    for (cluster, connections) in [
        ("legacy_h2", 2),
        ("legacy_h1", 2),
        ("typed_h1", 2),
        ("default", 1),
    ] {
        let line = format!("cluster.{cluster}.upstream_cx_total: {connections}");
        assert!(stats.lines().any(|l| l == line), "{line} in\n{stats}");
    }
}

/// `connect_timeout` covers the TLS handshake too, as in Envoy: an upstream that accepts the TCP connection and
/// never answers the ClientHello gets 503 "connection timeout" within the timeout, counted in
/// `upstream_cx_connect_timeout`, over HTTP/1.1 and h2 alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_answers_is_a_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let cluster = |name: &str, extra: &str| {
        format!(
            "  - name: {name}\n    connect_timeout: 0.3s\n{extra}    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext}}\n    load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]}}\n"
        )
    };
    let config = prefix_routes(
        &[("/h2", "silent_h2"), ("/", "silent_h1")],
        &[
            cluster("silent_h1", ""),
            cluster("silent_h2", "    http2_protocol_options: {}\n"),
        ]
        .concat(),
    );
    let proxy = start(&config).await;
    let url = format!("http://{}", address(&proxy, "http"));
    for path in ["/h1", "/h2"] {
        let started = std::time::Instant::now();
        let reply = get(&format!("{url}{path}"), &[]).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.body);
        assert!(
            reply.body.ends_with("reset reason: connection timeout"),
            "{path}: {}",
            reply.body
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{path}: the handshake waited past connect_timeout"
        );
    }
    let stats = get(
        &format!("http://{}/stats", proxy.admin_address.unwrap()),
        &[],
    )
    .await
    .body;
    for line in [
        "cluster.silent_h1.upstream_cx_connect_timeout: 1",
        "cluster.silent_h2.upstream_cx_connect_timeout: 1",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line} in\n{stats}");
    }
    holder.abort();
}
