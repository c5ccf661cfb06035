//! The same route tables in real Envoy 1.40 and in Outrigger, the same requests to both: status codes, the
//! chosen upstream, the rewritten path and headers, response headers, and redirect locations must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::backend::Backend;
use support::tcp::free_port;

/// A request to send to both proxies: host, path and extra headers.
type Probe = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// One route table (the `virtual_hosts` of a `route_config`, with other `route_config` fields in `settings`) and
/// the requests to compare on it.
struct Table {
    settings: &'static str,
    virtual_hosts: &'static str,
    requests: &'static [Probe],
}

const TABLES: &[Table] = &[
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /b/}, route: {cluster: b}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[("x", "/", &[]), ("x", "/b/1", &[]), ("x", "/bb", &[])],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {path: /exact}, route: {cluster: b}},
          {match: {prefix: /ex}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/exact", &[]),
            ("x", "/exact/more", &[]),
            ("x", "/ex", &[]),
            ("x", "/other", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {safe_regex: {regex: "/items/[0-9]+"}}, route: {cluster: b}},
          {match: {prefix: /items}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/items/42", &[]),
            ("x", "/items/x42", &[]),
            ("x", "/items/42/sub", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /, headers: [{name: x-canary, string_match: {exact: "true"}}]}, route: {cluster: b}},
          {match: {prefix: /, headers: [{name: x-user, string_match: {prefix: "adm"}}]}, route: {cluster: b}},
          {match: {prefix: /, headers: [{name: x-debug, present_match: true}]}, direct_response: {status: 418}},
          {match: {prefix: /, headers: [{name: x-region, string_match: {exact: "eu"}, invert_match: true}]}, direct_response: {status: 451}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/", &[("x-canary", "true")]),
            ("x", "/", &[("x-canary", "false"), ("x-region", "eu")]),
            ("x", "/", &[("x-user", "admin"), ("x-region", "eu")]),
            ("x", "/", &[("x-debug", ""), ("x-region", "eu")]),
            ("x", "/", &[("x-region", "us")]),
            ("x", "/", &[("x-region", "eu")]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /, query_parameters: [{name: v, string_match: {exact: "2"}}]}, route: {cluster: b}},
          {match: {prefix: /, query_parameters: [{name: debug, present_match: true}]}, direct_response: {status: 202}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/?v=2", &[]),
            ("x", "/?v=3", &[]),
            ("x", "/?debug=1&v=1", &[]),
            ("x", "/", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /api/v1/}, route: {cluster: a, prefix_rewrite: /v1/}},
          {match: {prefix: /old}, route: {cluster: b, prefix_rewrite: /new}}]}]"#,
        requests: &[
            ("x", "/api/v1/users?id=3", &[]),
            ("x", "/old/path", &[]),
            ("x", "/oldish", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {safe_regex: {regex: "/user/([a-z]+)/profile"}},
           route: {cluster: a, regex_rewrite: {pattern: {regex: "^/user/([a-z]+)/profile$"}, substitution: "/profiles/\\1"}}},
          {match: {prefix: /}, route: {cluster: b, regex_rewrite: {pattern: {regex: "o"}, substitution: "0"}}}]}]"#,
        requests: &[
            ("x", "/user/ann/profile", &[]),
            ("x", "/foo/boo", &[]),
            ("x", "/user/ann/profile?x=1", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[
          {name: exact, domains: ["api.example.com"], routes: [{match: {prefix: /}, direct_response: {status: 201}}]},
          {name: suffix, domains: ["*.example.com"], routes: [{match: {prefix: /}, direct_response: {status: 202}}]},
          {name: prefix, domains: ["shop.*"], routes: [{match: {prefix: /}, direct_response: {status: 203}}]},
          {name: with_port, domains: ["ported.local:8080"], routes: [{match: {prefix: /}, direct_response: {status: 205}}]},
          {name: any, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("api.example.com", "/", &[]),
            ("www.example.com", "/", &[]),
            ("shop.local", "/", &[]),
            ("ported.local:8080", "/", &[]),
            ("ported.local", "/", &[]),
            ("other.net", "/", &[]),
            ("API.EXAMPLE.COM", "/", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /secure}, redirect: {https_redirect: true}},
          {match: {prefix: /moved}, redirect: {host_redirect: new.example.com, response_code: PERMANENT_REDIRECT}},
          {match: {prefix: /page}, redirect: {path_redirect: /landing, strip_query: true, response_code: FOUND}},
          {match: {prefix: /docs/}, redirect: {prefix_rewrite: /documentation/, response_code: TEMPORARY_REDIRECT}},
          {match: {prefix: /port}, redirect: {port_redirect: 8443, response_code: SEE_OTHER}}]}]"#,
        requests: &[
            ("site.test", "/secure/x?y=1", &[]),
            ("site.test", "/moved/a", &[]),
            ("site.test", "/page?q=1", &[]),
            ("site.test", "/docs/intro", &[]),
            ("site.test", "/port/z", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"],
          request_headers_to_add: [{header: {key: x-vhost, value: "1"}}],
          routes: [
          {match: {prefix: /hello}, direct_response: {status: 200, body: {inline_string: "hi"}}},
          {match: {prefix: /empty}, direct_response: {status: 200, body: {inline_string: ""}}},
          {match: {prefix: /}, route: {cluster: a},
           request_headers_to_add: [{header: {key: x-added, value: "yes"}}, {header: {key: x-replace, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}],
           request_headers_to_remove: [x-remove-me],
           response_headers_to_add: [{header: {key: x-resp, value: "route"}}]}]}]"#,
        requests: &[
            ("x", "/hello", &[]),
            ("x", "/empty", &[]),
            ("x", "/", &[("x-remove-me", "1"), ("x-replace", "old")]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /w}, route: {weighted_clusters: {clusters: [{name: a, weight: 0}, {name: b, weight: 100,
             request_headers_to_add: [{header: {key: x-added, value: "weighted"}}],
             request_headers_to_remove: [x-remove-me]}]}}},
          {match: {prefix: /API, case_sensitive: false}, route: {cluster: b}},
          {match: {path_separated_prefix: /svc}, route: {cluster: b}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/w", &[("x-remove-me", "1")]),
            ("x", "/api/x", &[]),
            ("x", "/svc", &[]),
            ("x", "/svc/1", &[]),
            ("x", "/svcx", &[]),
        ],
    },
    Table {
        settings: "",
        virtual_hosts: r#"[{name: only, domains: ["known.test"], routes: [
          {match: {prefix: /dead}, route: {cluster: dead}},
          {match: {path: /x}, route: {cluster: a}}]}]"#,
        requests: &[
            ("known.test", "/dead", &[]),
            ("known.test", "/nothing", &[]),
            ("unknown.test", "/x", &[]),
        ],
    },
    // Header changes for the whole route configuration; an unknown cluster allowed by `validate_clusters: false`.
    Table {
        settings: r#"validate_clusters: false
request_headers_to_add: [{header: {key: x-rc, value: "rc"}}]
request_headers_to_remove: [x-remove-me]
response_headers_to_add: [{header: {key: x-rc-resp, value: "rc"}}]
response_headers_to_remove: [content-type]"#,
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /hello}, direct_response: {status: 200, body: {inline_string: "hi"}}},
          {match: {prefix: /nowhere}, route: {cluster: nowhere}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/", &[("x-remove-me", "1")]),
            ("x", "/hello", &[]),
            ("x", "/nowhere", &[]),
        ],
    },
    // Header changes of a virtual host, of a route and of a weighted cluster; a `total_weight` that is not the
    // sum of the weights, which Envoy 1.40 ignores (were it used, every request to /total would go to `a`).
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"],
          request_headers_to_remove: [x-remove-me],
          response_headers_to_add: [{header: {key: x-vh-resp, value: "vh"}}],
          response_headers_to_remove: [x-backend],
          routes: [
          {match: {prefix: /route}, route: {cluster: a}, response_headers_to_remove: [content-type]},
          {match: {prefix: /weighted}, route: {weighted_clusters: {clusters: [{name: a, weight: 0}, {name: b, weight: 100,
             response_headers_to_add: [{header: {key: x-wc-resp, value: "wc"}}],
             response_headers_to_remove: [content-type]}]}}},
          {match: {prefix: /total}, route: {weighted_clusters: {total_weight: 1, clusters: [{name: a, weight: 1}, {name: b, weight: 999999}]}}},
          {match: {prefix: /}, route: {cluster: b}}]}]"#,
        requests: &[
            ("x", "/route", &[("x-remove-me", "1")]),
            ("x", "/weighted", &[]),
            ("x", "/total", &[]),
            ("x", "/total/again", &[]),
            ("x", "/", &[("x-remove-me", "1")]),
        ],
    },
    // The deprecated header match forms, and `treat_missing_header_as_empty`.
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /, headers: [{name: x-e, exact_match: "v"}]}, direct_response: {status: 201}},
          {match: {prefix: /, headers: [{name: x-re, safe_regex_match: {regex: "a+b"}}]}, direct_response: {status: 202}},
          {match: {prefix: /, headers: [{name: x-p, prefix_match: "pre"}]}, direct_response: {status: 203}},
          {match: {prefix: /, headers: [{name: x-s, suffix_match: "suf"}]}, direct_response: {status: 204}},
          {match: {prefix: /, headers: [{name: x-c, contains_match: "mid"}]}, direct_response: {status: 205}},
          {match: {prefix: /, headers: [{name: x-m, string_match: {exact: ""}, treat_missing_header_as_empty: true}]}, direct_response: {status: 206}},
          {match: {prefix: /}, route: {cluster: a}}]}]"#,
        requests: &[
            ("x", "/", &[("x-e", "v")]),
            ("x", "/", &[("x-e", "vv"), ("x-m", "z")]),
            ("x", "/", &[("x-re", "aab")]),
            ("x", "/", &[("x-re", "aabc"), ("x-m", "z")]),
            ("x", "/", &[("x-p", "prefix")]),
            ("x", "/", &[("x-p", "apre"), ("x-m", "z")]),
            ("x", "/", &[("x-s", "endsuf")]),
            ("x", "/", &[("x-c", "a-mid-b")]),
            ("x", "/", &[("x-c", "nothing"), ("x-m", "z")]),
            ("x", "/", &[]),
            ("x", "/", &[("x-m", "")]),
        ],
    },
    // Redirects to another scheme (the request's port kept unless it is the old scheme's default, the scheme kept
    // as written), and with a regex rewrite of the path.
    Table {
        settings: "",
        virtual_hosts: r#"[{name: all, domains: ["*"], routes: [
          {match: {prefix: /s/}, redirect: {scheme_redirect: https}},
          {match: {prefix: /ws/}, redirect: {scheme_redirect: HTTPS, host_redirect: other.test}},
          {match: {prefix: /r/}, redirect: {regex_rewrite: {pattern: {regex: "^/r/([a-z]+)/([0-9]+)$"}, substitution: "/new/\\2/\\1"}}},
          {match: {prefix: /q/}, redirect: {regex_rewrite: {pattern: {regex: "q"}, substitution: "Q"}, strip_query: true}}]}]"#,
        requests: &[
            ("site.test", "/s/a?b=1", &[]),
            ("site.test:8080", "/s/a", &[]),
            ("site.test:80", "/s/a", &[]),
            ("site.test", "/ws/x", &[]),
            ("site.test:8080", "/ws/x", &[]),
            ("site.test:8080", "/r/abc/12", &[]),
            ("site.test", "/r/abc/12?k=v", &[]),
            ("site.test", "/r/abc", &[]),
            ("site.test", "/q/qq?x=1", &[]),
        ],
    },
];

/// `dead` is a port nothing listens on, for connect failures.
fn bootstrap(ports: &[u16], admin: u16, a: u16, b: u16, dead: u16) -> String {
    let mut yaml = format!(
        "admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}\nstatic_resources:\n  listeners:\n"
    );
    for (i, (table, port)) in TABLES.iter().zip(ports).enumerate() {
        yaml.push_str(&format!(
            r#"  - name: t{i}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t{i}
          route_config:
            {}
            virtual_hosts: {}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#,
            table.settings.replace('\n', "\n            "),
            table.virtual_hosts.replace('\n', "\n              ")
        ));
    }
    yaml.push_str("  clusters:\n");
    for (name, port) in [("a", a), ("b", b), ("dead", dead)] {
        yaml.push_str(&format!(
            "  - {{name: {name}, load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: \
             {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]}}}}\n"
        ));
    }
    yaml
}

/// What must agree between the two proxies for one request.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: u16,
    backend: Option<String>,
    upstream_path: Option<String>,
    upstream_headers: Vec<(String, Option<String>)>,
    location: Option<String>,
    response_headers: Vec<(String, Option<String>)>,
}

/// The request headers the backend's description is checked for.
const UPSTREAM_HEADERS: &[&str] = &["x-added", "x-replace", "x-remove-me", "x-vhost", "x-rc"];
/// The response headers compared (the backend sends `content-type` and `x-backend`).
const RESPONSE_HEADERS: &[&str] = &[
    "x-resp",
    "x-rc-resp",
    "x-vh-resp",
    "x-wc-resp",
    "content-type",
    "x-backend",
];

async fn send(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Outcome {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    let reply = support::client::get(&format!("http://127.0.0.1:{port}{path}"), &all).await;
    // The backend's description of what it received (`x-backend` may be removed on the way).
    let seen = serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .filter(|s| s["backend"].is_string());
    let backend = seen
        .as_ref()
        .map(|s| s["backend"].as_str().unwrap().to_string());
    let upstream_headers = UPSTREAM_HEADERS
        .iter()
        .map(|name| {
            let value = seen
                .as_ref()
                .and_then(|s| s["headers"][*name].as_str().map(str::to_string));
            (name.to_string(), value)
        })
        .collect();
    Outcome {
        status: reply.status,
        upstream_path: seen
            .as_ref()
            .map(|s| s["path"].as_str().unwrap().to_string()),
        backend,
        upstream_headers,
        location: reply.header("location"),
        response_headers: RESPONSE_HEADERS
            .iter()
            .map(|name| (name.to_string(), reply.header(name)))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_outrigger_route_alike() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    assert!(TABLES.len() >= 16);
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (a_port, b_port, dead) = (a.address.port(), b.address.port(), free_port());
    let envoy_ports: Vec<u16> = TABLES.iter().map(|_| free_port()).collect();
    let ours_ports: Vec<u16> = TABLES.iter().map(|_| free_port()).collect();

    let dir = std::env::temp_dir().join(format!("outrigger-differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let envoy_config = dir.join("envoy.yaml");
    std::fs::write(
        &envoy_config,
        bootstrap(&envoy_ports, free_port(), a_port, b_port, dead),
    )
    .unwrap();
    let mut envoy = support::envoy::Envoy::start(&envoy, &envoy_config);
    let ours = support::proxy::start(&bootstrap(&ours_ports, 0, a_port, b_port, dead)).await;
    for port in &envoy_ports {
        envoy.wait_for_port(*port);
    }
    let mut differences = Vec::new();
    let mut compared = 0;
    for (i, table) in TABLES.iter().enumerate() {
        for (host, path, headers) in table.requests {
            let theirs = send(envoy_ports[i], host, path, headers).await;
            let mine = send(ours_ports[i], host, path, headers).await;
            compared += 1;
            if theirs != mine {
                differences.push(format!("table {i}, {host}{path} {headers:?}:\n  envoy:     {theirs:?}\n  outrigger: {mine:?}"));
            }
        }
    }
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        differences.is_empty(),
        "{} of {compared} requests differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// One listener to backend `a`; `/r` retries (its request body is kept for a replay).
fn methods_bootstrap(port: u16, admin: u16, a: u16) -> String {
    format!(
        r#"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - name: m
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: m
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /r}}
                route: {{cluster: a, retry_policy: {{retry_on: 5xx, num_retries: 1}}}}
              - match: {{prefix: /}}
                route: {{cluster: a}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - {{name: a, load_assignment: {{cluster_name: a, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {a}}}}}}}}}]}}]}}}}
"#
    )
}

/// A raw HTTP/1.1 request (`connection: close`): the status and, when the backend answered, the framing headers
/// it saw (`content-length`, `transfer-encoding`).
async fn raw_h1(port: u16, head: &str) -> (u16, Option<(Option<String>, Option<String>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("the proxy answers and closes within 5 s")
    .unwrap();
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, framing(text.split_once("\r\n\r\n").map(|(_, b)| b)))
}

/// The framing headers in the backend's description of the request, if `body` is one.
fn framing(body: Option<&str>) -> Option<(Option<String>, Option<String>)> {
    let seen: serde_json::Value = serde_json::from_str(body?).ok()?;
    let header = |name: &str| seen["headers"][name].as_str().map(str::to_string);
    seen["backend"]
        .is_string()
        .then(|| (header("content-length"), header("transfer-encoding")))
}

/// The same over h2 (prior knowledge), with an empty body that ends with the headers.
async fn h2_headers_only(
    port: u16,
    method: &str,
) -> (u16, Option<(Option<String>, Option<String>)>) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}/x"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, framing(std::str::from_utf8(&body).ok()))
}

/// Envoy 1.40's HTTP/1 codec knows 34 methods and refuses any other with a 400 (over h2 every method goes
/// through), and writes `content-length: 0` upstream on a request that ends with its headers unless its method
/// has no body by definition. Both proxies get the same requests; statuses and the framing the backend saw must
/// agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_and_headers_only_requests_reach_the_upstream_as_through_envoy() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let a = Backend::start("a").await;
    let (envoy_port, ours_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("outrigger-methods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(
        &config,
        methods_bootstrap(envoy_port, free_port(), a.address.port()),
    )
    .unwrap();
    let mut envoy = support::envoy::Envoy::start(&envoy, &config);
    let ours = support::proxy::start(&methods_bootstrap(ours_port, 0, a.address.port())).await;
    envoy.wait_for_port(envoy_port);

    let mut differences = Vec::new();
    let mut probes: Vec<String> = Vec::new();
    for method in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "MSEARCH",
        "DESCRIBE", "FOO", "get", "M-SEARCH",
    ] {
        for path in ["/x", "/r"] {
            probes.push(format!(
                "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            ));
        }
    }
    // With framing of its own, a request keeps it: an empty chunked body, an explicit length.
    probes.push(
        "POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\n"
            .into(),
    );
    probes.push(
        "PUT /x HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
    );
    for probe in &probes {
        let theirs = raw_h1(envoy_port, probe).await;
        let mine = raw_h1(ours_port, probe).await;
        if theirs != mine {
            differences.push(format!(
                "{:?}:\n  envoy:     {theirs:?}\n  outrigger: {mine:?}",
                probe.lines().next().unwrap_or_default()
            ));
        }
    }
    let refused = raw_h1(ours_port, &probes[20]).await;
    assert_eq!(refused.0, 400, "DESCRIBE over HTTP/1.1: {refused:?}");
    let posted = raw_h1(ours_port, &probes[4]).await;
    assert_eq!(
        posted,
        (200, Some((Some("0".to_string()), None))),
        "a headers-only POST gets content-length: 0 upstream"
    );
    // Not compared: `QUERY`, which Envoy 1.40 answers with an empty 400 in cases not pinned down yet (README).
    for method in ["GET", "POST", "DELETE", "OPTIONS", "DESCRIBE", "FOO"] {
        let theirs = h2_headers_only(envoy_port, method).await;
        let mine = h2_headers_only(ours_port, method).await;
        if theirs != mine {
            differences.push(format!(
                "h2 {method}:\n  envoy:     {theirs:?}\n  outrigger: {mine:?}"
            ));
        }
    }
    drop(ours);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        differences.is_empty(),
        "{} requests differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
