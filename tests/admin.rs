//! The admin API on Envoy's paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, post};
use support::proxy::start;

const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
node: {id: sidecar-1, cluster: reviews, metadata: {NAMESPACE: web}, locality: {region: eu, zone: eu-1a, sub_zone: rack-7}, user_agent_name: mesh-agent}
static_resources:
  listeners:
  - name: web
    stat_prefix: webin
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - {name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_like_envoy() {
    let proxy = start(CONFIG).await;
    let admin = format!("http://{}", proxy.admin_address.unwrap());
    let web = format!("http://{}", support::proxy::address(&proxy, "web"));

    let r = get(&format!("{admin}/ready"), &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "LIVE\n"));

    let info = get(&format!("{admin}/server_info"), &[]).await.json();
    assert_eq!(info["state"], "LIVE");
    // The node as Envoy shows it (and as it is told to a control plane).
    assert_eq!(info["node"]["id"], "sidecar-1");
    assert_eq!(info["node"]["cluster"], "reviews");
    assert_eq!(info["node"]["metadata"]["NAMESPACE"], "web");
    assert_eq!(
        info["node"]["locality"],
        serde_json::json!({"region": "eu", "zone": "eu-1a", "sub_zone": "rack-7"})
    );
    assert_eq!(info["node"]["user_agent_name"], "mesh-agent");

    let dump = get(&format!("{admin}/config_dump"), &[]).await.json();
    assert_eq!(dump["listeners"][0]["name"], "web");
    assert_eq!(
        dump["clusters"][0]["connect_timeout"], "5s",
        "defaults are in the dump"
    );

    let listeners = get(&format!("{admin}/listeners"), &[]).await.body;
    assert!(listeners.starts_with("web::127.0.0.1:0"), "{listeners}");
    let clusters = get(&format!("{admin}/clusters"), &[]).await.body;
    assert!(
        clusters.contains("backend::127.0.0.1:1::weight::1"),
        "{clusters}"
    );

    assert_eq!(get(&format!("{web}/"), &[]).await.status, 503);
    let stats = get(&format!("{admin}/stats"), &[]).await.body;
    for line in [
        // As in Envoy, a failed connect is not an upstream request, but its 503 is charged to the cluster.
        "cluster.backend.upstream_rq_total: 0",
        "cluster.backend.upstream_rq_5xx: 1",
        "http.web.downstream_rq_5xx: 1",
        "cluster.backend.upstream_cx_connect_fail: 1",
        // The listener's statistics under its stat_prefix (Envoy 1.40: `listener.inbound.downstream_cx_total`
        // for `stat_prefix: inbound`, tagged `envoy_listener_address="inbound"` in Prometheus).
        "listener.webin.downstream_cx_total: 1",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line} missing:\n{stats}");
    }

    // Mutations need POST.
    assert_eq!(
        get(&format!("{admin}/healthcheck/fail"), &[]).await.status,
        405
    );
    assert_eq!(post(&format!("{admin}/healthcheck/fail")).await.status, 200);
    assert_eq!(get(&format!("{admin}/ready"), &[]).await.status, 503);
    assert_eq!(post(&format!("{admin}/healthcheck/ok")).await.status, 200);
    assert_eq!(get(&format!("{admin}/ready"), &[]).await.status, 200);
    // No logger was installed in-process; the binary installs one (see drain.rs).
    assert_eq!(
        post(&format!("{admin}/logging?level=debug")).await.status,
        501
    );

    assert_eq!(post(&format!("{admin}/drain_listeners")).await.status, 200);
    let r = get(&format!("{admin}/ready"), &[]).await;
    assert_eq!((r.status, r.body.as_str()), (503, "DRAINING\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_sends_goaway_to_h2_clients() {
    use http_body_util::{BodyExt, Empty};
    let backend = support::backend::Backend::start("h2").await;
    let config = CONFIG.replace(
        "port_value: 1}",
        &format!("port_value: {}}}", backend.address.port()),
    );
    let proxy = start(&config).await;
    let stream = tokio::net::TcpStream::connect(support::proxy::address(&proxy, "web"))
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = || {
        http::Request::get("http://web.test/")
            .body(Empty::new())
            .unwrap()
    };
    let response = sender.send_request(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;

    let admin = format!("http://{}", proxy.admin_address.unwrap());
    assert_eq!(post(&format!("{admin}/drain_listeners")).await.status, 200);
    // GOAWAY ends the connection cleanly once its streams are done.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), connection).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the h2 connection did not end cleanly: {ended:?}"
    );
    assert!(
        sender.send_request(request()).await.is_err(),
        "no new streams after GOAWAY"
    );
}
