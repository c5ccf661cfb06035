//! The load reporting service (`cluster_manager.load_stats_config`) in real Envoy 1.40 and in Outrigger, side
//! by side: the same YAML, the test's own LRS server (`load_reporting/server.rs`), the same requests (200s and
//! 503s from a backend, one to a refused port, one connection through `tcp_proxy`). What each proxy reports
//! must agree: the first request (the node, no clusters), the counts summed over the reports (per cluster,
//! locality and endpoint), the clusters of the previous period on the first request of a new stream, the 5 s
//! before reconnecting, and a second period asking for every cluster (`send_all_clusters`, the LRS stream
//! itself in progress) without endpoint granularity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "load_reporting/server.rs"]
mod server;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterStats;
use server::{LrsServer, Period, Received};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::tcp::free_port;

const CONFIG: &str = r#"
node: {id: lrs-node, cluster: lrs-cluster, locality: {zone: node-zone}}
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: LISTEN}}
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
              - match: {prefix: "/down"}
                route: {cluster: dead}
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - address: {socket_address: {address: 127.0.0.1, port_value: TCP}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: app
  clusters:
  - name: app
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - locality: {region: r1, zone: za}
        lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: BACKEND}}}
      - locality: {region: r1, zone: zb}
        priority: 1
        lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: DEAD}}}
  - name: dead
    connect_timeout: 1s
    load_assignment:
      cluster_name: dead
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: DEAD}}}
  - name: lrs
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: lrs
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: LRS}}}
cluster_manager:
  load_stats_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: lrs}}]
admin: {address: {socket_address: {address: 127.0.0.1, port_value: ADMIN}}}
"#;

/// Counts summed over reports: per cluster, per locality (`region/zone priority`) and per endpoint.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sums {
    /// (successful, error, issued, the largest in progress seen)
    localities: BTreeMap<(String, String), (u64, u64, u64, u64)>,
    endpoints: BTreeMap<(String, String), (u64, u64, u64)>,
}

fn sums(reports: &[&Received]) -> BTreeMap<String, Sums> {
    let mut out: BTreeMap<String, Sums> = BTreeMap::new();
    for received in reports {
        for cluster in &received.request.cluster_stats {
            add(
                out.entry(cluster.cluster_name.clone()).or_default(),
                cluster,
            );
        }
    }
    out
}

fn add(sums: &mut Sums, cluster: &ClusterStats) {
    for locality in &cluster.upstream_locality_stats {
        let l = locality
            .locality
            .clone()
            .expect("a locality message, as Envoy sends");
        let key = (
            cluster.cluster_name.clone(),
            format!("{}/{} p{}", l.region, l.zone, locality.priority),
        );
        let entry = sums.localities.entry(key).or_default();
        entry.0 += locality.total_successful_requests;
        entry.1 += locality.total_error_requests;
        entry.2 += locality.total_issued_requests;
        entry.3 = entry.3.max(locality.total_requests_in_progress);
        for endpoint in &locality.upstream_endpoint_stats {
            let address = format!("{:?}", endpoint.address);
            let entry = sums
                .endpoints
                .entry((cluster.cluster_name.clone(), address))
                .or_default();
            entry.0 += endpoint.total_successful_requests;
            entry.1 += endpoint.total_error_requests;
            entry.2 += endpoint.total_issued_requests;
        }
    }
}

/// What one proxy did, for comparison.
#[derive(Debug, PartialEq)]
struct Observed {
    /// The first request: node id, cluster, locality zone, client features, clusters reported, header.
    first: (String, String, String, Vec<String>, usize, Option<String>),
    every_request_has_the_node: bool,
    first_period: BTreeMap<String, Sums>,
    /// The clusters on the first request of the second stream.
    reconnect_clusters: BTreeSet<String>,
    /// Seconds between the end of the first stream and the second (rounded).
    reconnect_after_s: u64,
    second_period: BTreeMap<String, Sums>,
}

/// Stops the proxy when dropped.
enum Proxy {
    Envoy(#[allow(dead_code)] support::envoy::Envoy),
    Outrigger(#[allow(dead_code)] support::sidecar::Sidecar),
}

async fn run(envoy: Option<PathBuf>, backend: u16, dead: u16) -> Observed {
    let lrs = LrsServer::start(vec![
        Period {
            clusters: vec!["app".into(), "dead".into()],
            send_all: false,
            granular: true,
        },
        Period {
            clusters: Vec::new(),
            send_all: true,
            granular: false,
        },
    ])
    .await;
    let (listen, admin, tcp) = (free_port(), free_port(), free_port());
    let config = CONFIG
        .replace("LISTEN", &listen.to_string())
        .replace("TCP", &tcp.to_string())
        .replace("ADMIN", &admin.to_string())
        .replace("BACKEND", &backend.to_string())
        .replace("DEAD", &dead.to_string())
        .replace("LRS", &lrs.port.to_string());
    let name = if envoy.is_some() {
        "envoy"
    } else {
        "outrigger"
    };
    let dir = std::env::temp_dir().join(format!("outrigger-lrs-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _proxy = match &envoy {
        Some(binary) => {
            let path = dir.join("envoy.yaml");
            std::fs::write(&path, &config).unwrap();
            let mut envoy = support::envoy::Envoy::start(binary, &path);
            envoy.wait_for_port(listen);
            Proxy::Envoy(envoy)
        }
        None => Proxy::Outrigger(support::sidecar::Sidecar::start(&dir, name, &config, admin)),
    };
    let url = |path: &str| format!("http://127.0.0.1:{listen}{path}");
    // Counting starts when the proxy has the service's answer (counts before it are dropped): its first
    // report of the period says it has.
    wait_until(name, "the first period's first report", || {
        lrs.received()
            .iter()
            .any(|r| r.stream == 1 && !r.request.cluster_stats.is_empty())
    })
    .await;
    for path in [
        "/status/200",
        "/status/200",
        "/status/200",
        "/status/503",
        "/status/503",
    ] {
        let status = path.trim_start_matches("/status/").parse::<u16>().unwrap();
        assert_eq!(
            support::client::get(&url(path), &[]).await.status,
            status,
            "{name}"
        );
    }
    assert_eq!(
        support::client::get(&url("/down"), &[]).await.status,
        503,
        "{name}"
    );
    // One connection through tcp_proxy: issued, neither a success nor an error.
    let through_tcp = format!("http://127.0.0.1:{tcp}/status/200");
    assert_eq!(
        support::client::get(&through_tcp, &[]).await.status,
        200,
        "{name}"
    );
    let first_period = || {
        let received = lrs.received();
        let stream1: Vec<&Received> = received.iter().filter(|r| r.stream == 1).collect();
        sums(&stream1)
    };
    wait_until(name, "the first period's counts", || {
        let sums = first_period();
        let issued = |c: &str| {
            sums.get(c)
                .map(|s| s.localities.values().map(|v| v.2 + v.1).sum::<u64>())
                .unwrap_or(0)
        };
        issued("app") >= 8 && issued("dead") >= 1
    })
    .await;
    // One more report, so that the requests' ends (in progress back to 0) are in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lrs.close_first_stream();
    let closed = Instant::now();
    wait_until(name, "a second stream", || {
        lrs.received().iter().any(|r| r.stream == 2)
    })
    .await;
    let received = lrs.received();
    let reopened = received.iter().find(|r| r.stream == 2).unwrap();
    let reconnect_after_s = (reopened.at - closed).as_secs_f64().round() as u64;
    let reconnect_clusters = reopened
        .request
        .cluster_stats
        .iter()
        .map(|c| c.cluster_name.clone())
        .collect();
    wait_until(name, "the second period's first report", || {
        lrs.received()
            .iter()
            .any(|r| r.stream == 2 && lrs.answered(2).is_some_and(|a| r.at > a))
    })
    .await;
    let answered = lrs.answered(2).unwrap();
    assert_eq!(
        support::client::get(&url("/status/200"), &[]).await.status,
        200
    );
    let second_period = || {
        let received = lrs.received();
        let after: Vec<&Received> = received
            .iter()
            .filter(|r| r.stream == 2 && r.at > answered)
            .collect();
        sums(&after)
    };
    wait_until(name, "the second period's counts", || {
        second_period()
            .get("app")
            .is_some_and(|s| s.localities.values().any(|v| v.2 == 1))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let received = lrs.received();
    let first = &received[0];
    let node = first
        .request
        .node
        .clone()
        .expect("the node on the first request");
    Observed {
        first: (
            node.id,
            node.cluster,
            node.locality.map(|l| l.zone).unwrap_or_default(),
            node.client_features,
            first.request.cluster_stats.len(),
            first.internal_header.clone(),
        ),
        every_request_has_the_node: received.iter().all(|r| r.request.node.is_some()),
        first_period: first_period(),
        reconnect_clusters,
        reconnect_after_s,
        second_period: second_period(),
    }
}

async fn wait_until(who: &str, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{who}: no {what} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_like_envoy() {
    let backend = Backend::start("app").await;
    // Nothing listens here: a connect failure.
    let dead = free_port();
    let envoy = support::peer("envoy");
    let ours = run(None, backend.address.port(), dead);
    let theirs = async {
        match envoy {
            Some(binary) => Some(run(Some(binary), backend.address.port(), dead).await),
            None => None,
        }
    };
    let (ours, theirs) = tokio::join!(ours, theirs);

    // What Outrigger must report, whatever Envoy does.
    assert_eq!(
        ours.first,
        (
            "lrs-node".to_string(),
            "lrs-cluster".to_string(),
            "node-zone".to_string(),
            vec!["envoy.lrs.supports_send_all_clusters".to_string()],
            0,
            Some("true".to_string()),
        )
    );
    assert!(ours.every_request_has_the_node);
    let app = &ours.first_period["app"];
    // 3 successes and 2 errors (the 503s), all issued and over, and the tcp_proxy connection issued; the
    // quiet locality zb is left out.
    assert_eq!(
        app.localities.iter().collect::<Vec<_>>(),
        vec![(&("app".to_string(), "r1/za p0".to_string()), &(3, 2, 6, 0))]
    );
    assert_eq!(app.endpoints.len(), 1);
    // The refused connect: an error, never issued, in the cluster's unnamed locality.
    let dead_sums = &ours.first_period["dead"];
    assert_eq!(
        dead_sums.localities.values().collect::<Vec<_>>(),
        vec![&(0, 1, 0, 0)]
    );
    assert_eq!(
        ours.reconnect_clusters,
        BTreeSet::from(["app".to_string(), "dead".to_string()])
    );
    assert_eq!(ours.reconnect_after_s, 5);
    // The second period: every cluster, without endpoints; the load reports' own stream is in progress.
    assert_eq!(
        ours.second_period.keys().collect::<Vec<_>>(),
        vec!["app", "dead", "lrs"]
    );
    assert!(ours.second_period["app"].endpoints.is_empty());
    assert_eq!(
        ours.second_period["lrs"]
            .localities
            .values()
            .collect::<Vec<_>>(),
        vec![&(0, 0, 0, 1)]
    );

    if let Some(theirs) = theirs {
        assert_eq!(ours.first.1, theirs.first.1);
        // Envoy lists more client features; the one about LRS is in both.
        assert!(theirs.first.3.contains(&ours.first.3[0]), "{theirs:?}");
        let strip = |o: &Observed| {
            (
                o.first.0.clone(),
                o.first.2.clone(),
                o.first.4,
                o.first.5.clone(),
            )
        };
        assert_eq!(strip(&ours), strip(&theirs));
        assert_eq!(
            ours.every_request_has_the_node,
            theirs.every_request_has_the_node
        );
        assert_eq!(ours.first_period, theirs.first_period);
        assert_eq!(ours.reconnect_clusters, theirs.reconnect_clusters);
        assert_eq!(ours.reconnect_after_s, theirs.reconnect_after_s);
        assert_eq!(ours.second_period, theirs.second_period);
    }
}
