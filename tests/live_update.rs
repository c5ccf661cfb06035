//! A running proxy takes a new configuration without dropping traffic (`Proxy::apply`, what an xDS update
//! does): a changed listener takes over its socket while a request loop runs and nothing fails, requests in
//! flight finish, open HTTP/1.1 connections are told to close, a removed listener stops accepting, and RDS route
//! configurations reach open connections from their next request on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use outrigger_config::model::RouteConfig;
use outrigger_config::{Format, load_bytes};
use outrigger_proxy::{Proxy, Update};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::try_get;
use support::tcp::free_port;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn snapshot(yaml: &str) -> outrigger_config::Snapshot {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(loaded) => loaded.snapshot,
        Err(problems) => panic!("test config refused: {problems:#?}\n{yaml}"),
    }
}

/// A listener on `port` routing everything to the cluster `backend` at `backend`, its route adding
/// `x-version: <version>` to responses; and a second listener `extra` when `extra_port` is set.
fn config(port: u16, backend: &Backend, version: u32, extra_port: Option<u16>) -> String {
    let listener = |name: &str, port: u16| {
        format!(
            r#"
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          drain_timeout: 1s
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              response_headers_to_add: [{{header: {{key: x-version, value: "{version}"}}}}]
              routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]"#
        )
    };
    let extra = extra_port.map(|p| listener("extra", p)).unwrap_or_default();
    format!(
        r#"
static_resources:
  listeners:{main}{extra}
  clusters:
  - {{name: backend, load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}}}}}]}}]}}}}
"#,
        main = listener("http", port),
        backend_port = backend.address.port(),
    )
}

fn update(yaml: &str) -> Update {
    Update {
        snapshot: snapshot(yaml),
        routes: HashMap::new(),
        secrets: HashMap::new(),
        dynamic: None,
    }
}

/// One HTTP/1.1 keep-alive connection, request by request.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    async fn open(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Status line, headers (lowercase names) and body of a GET on this connection.
    async fn get(&mut self, path: &str) -> (u16, HashMap<String, String>, String) {
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).await.unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = HashMap::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
        }
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.unwrap();
        (status, headers, String::from_utf8(body).unwrap())
    }
}

/// GETs on fresh connections, one after another, until `stop` (or 20 s, or 20,000 requests); counts failures.
fn request_loop(port: u16, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let url = format!("http://127.0.0.1:{port}/");
        let (mut sent, mut failed) = (0, 0);
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed)
            && started.elapsed() < Duration::from_secs(20)
            && sent < 20_000
        {
            sent += 1;
            match try_get(&url, &[]).await {
                Ok(reply) if reply.status == 200 => {}
                Ok(reply) => {
                    failed += 1;
                    eprintln!("request {sent}: {} {}", reply.status, reply.body);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("request {sent}: {e}");
                }
            }
        }
        (sent, failed)
    })
}

async fn wait_for_version(port: u16, version: &str) {
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(reply) = try_get(&url, &[]).await
            && reply.header("x-version").as_deref() == Some(version)
        {
            return;
        }
        assert!(Instant::now() < deadline, "version {version} never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_listener_takes_over_its_socket_without_failing_a_request() {
    let (one, two) = (Backend::start("one").await, Backend::start("two").await);
    let (port, extra) = (free_port(), free_port());
    let proxy: Proxy = support::proxy::start(&config(port, &one, 1, Some(extra))).await;
    let mut kept = KeepAlive::open(port).await;
    let (status, headers, _) = kept.get("/").await;
    assert_eq!((status, headers["x-version"].as_str()), (200, "1"));
    let extra_before = KeepAlive::open(extra).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = request_loop(port, stop.clone());
    let slow = tokio::spawn(try_get_owned(format!("http://127.0.0.1:{port}/slow/1500")));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Version 2: the listener's routes change (so it is replaced), the cluster's endpoint moves to `two`, and
    // the `extra` listener is gone.
    proxy
        .apply(update(&config(port, &two, 2, None)))
        .await
        .unwrap();
    // The connection opened before the update is served by the old listener (within its `drain_timeout`), and
    // told to close; clusters are live, so its request already goes to `two`.
    let (status, headers, body) = kept.get("/").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-version"], "1", "the old listener's routes");
    assert!(body.contains("\"two\""), "clusters are live: {body}");
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    wait_for_version(port, "2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = load.await.unwrap();
    assert!(sent > 20, "the loop ran: {sent} requests");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed across the update"
    );

    // The request in flight during the update finished.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status, 200);

    // The removed listener accepts no more connections; the new one serves version 2 from `two`.
    drop(extra_before);
    assert!(
        TcpStream::connect(("127.0.0.1", extra)).await.is_err(),
        "the removed listener still accepts"
    );
    let reply = try_get(&format!("http://127.0.0.1:{port}/"), &[])
        .await
        .unwrap();
    assert!(reply.body.contains("\"two\""), "{}", reply.body);
    assert_eq!(
        proxy
            .addresses()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["http"]
    );
}

async fn try_get_owned(url: String) -> Result<support::client::Reply, String> {
    try_get(&url, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_listener_keeps_its_connections_and_a_failed_update_changes_nothing() {
    let one = Backend::start("one").await;
    let port = free_port();
    let yaml = config(port, &one, 1, None);
    let proxy: Proxy = support::proxy::start(&yaml).await;
    let mut kept = KeepAlive::open(port).await;
    assert_eq!(kept.get("/").await.0, 200);
    proxy.apply(update(&yaml)).await.unwrap();
    // Unchanged: the same connection goes on without being told to close.
    let (status, headers, _) = kept.get("/").await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("connection"), "{headers:?}");

    // A listener whose port is taken: the update is refused, naming it, and version 1 keeps serving.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let error = proxy
        .apply(update(&config(port, &one, 2, Some(taken_port))))
        .await
        .unwrap_err();
    assert!(
        error.contains("\"extra\"") && error.contains(&taken_port.to_string()),
        "{error}"
    );
    let (status, headers, _) = kept.get("/").await;
    assert_eq!((status, headers["x-version"].as_str()), (200, "1"));
}

/// The route configuration `name` as RDS delivers it, routing to the cluster `cluster`.
fn route_config(name: &str, cluster: &str) -> Arc<RouteConfig> {
    let document = format!(
        r#"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: {name}
  virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: {cluster}}}}}]}}]
"#
    );
    let (resources, _) =
        outrigger_config::resource::documents::parse(document.as_bytes(), Format::Yaml).unwrap();
    let converted =
        outrigger_config::resource::from_bytes::<RouteConfig>(&resources[0].value).unwrap();
    Arc::new(converted.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_route_configuration_reaches_open_connections() {
    let (one, two) = (Backend::start("one").await, Backend::start("two").await);
    let port = free_port();
    let endpoint = |name: &str, backend: &Backend| {
        format!(
            "{{name: {name}, load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]}}}}",
            backend.address.port()
        )
    };
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          rds: {{route_config_name: routes, config_source: {{ads: {{}}}}}}
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - {one}
  - {two}
"#,
        one = endpoint("one", &one),
        two = endpoint("two", &two),
    );
    let proxy: Proxy = support::proxy::start(&yaml).await;
    let mut connection = KeepAlive::open(port).await;
    // No route configuration yet: 404, as Envoy answers once it stops waiting for RDS.
    assert_eq!(connection.get("/").await.0, 404);

    let rds = |cluster: &str| Update {
        snapshot: snapshot(&yaml),
        routes: HashMap::from([("routes".to_string(), route_config("routes", cluster))]),
        secrets: HashMap::new(),
        dynamic: None,
    };
    proxy.apply(rds("one")).await.unwrap();
    let (status, _, body) = connection.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"one\""), "{body}");
    proxy.apply(rds("two")).await.unwrap();
    let (status, headers, body) = connection.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"two\""), "{body}");
    assert!(
        !headers.contains_key("connection"),
        "the connection stays open: {headers:?}"
    );
    let served = AtomicUsize::new(0);
    for _ in 0..3 {
        if connection.get("/").await.2.contains("\"two\"") {
            served.fetch_add(1, Ordering::Relaxed);
        }
    }
    assert_eq!(served.load(Ordering::Relaxed), 3);
}
