#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::ads_client::Options;
use std::time::Duration;

fn cluster(yaml: &str) -> Cluster {
    let bootstrap = format!("static_resources:\n  clusters:\n{yaml}");
    let loaded = outrigger_config::load_bytes(bootstrap.as_bytes(), outrigger_config::Format::Yaml)
        .map_err(|d| {
            format!(
                "{:?}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        })
        .unwrap();
    loaded.snapshot.clusters[0].clone()
}

#[test]
fn the_server_is_the_first_endpoint_of_the_cluster() {
    let c = cluster(
        "  - name: xds\n    type: STRICT_DNS\n    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: cp.example, port_value: 18000}}}}]}]}\n",
    );
    let server = Server::from_cluster(&c, None).unwrap();
    assert_eq!(server.uri, "http://cp.example:18000");
    let c = cluster(
        "  - name: xds\n    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: \"::1\", port_value: 15010}}}}]}]}\n",
    );
    assert_eq!(
        Server::from_cluster(&c, None).unwrap().uri,
        "http://[::1]:15010"
    );
}

#[test]
fn tls_to_the_control_plane_needs_a_connector() {
    let c = cluster(
        "  - name: xds-tls\n    load_assignment: {cluster_name: xds-tls, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15012}}}}]}]}\n    transport_socket: {name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: istiod}}\n",
    );
    let error = Server::from_cluster(&c, None).unwrap_err();
    assert!(
        error.contains("\"xds-tls\"") && error.contains("TLS connector"),
        "{error}"
    );
}

#[test]
fn options_come_from_the_bootstrap() {
    let bootstrap = r#"
node: {id: sidecar~10.0.0.1~web.ns~ns.svc.cluster.local, cluster: web.ns}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 5s}
static_resources:
  listeners:
  - name: in
    address: {socket_address: {address: 127.0.0.1, port_value: 15006}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          rds: {route_config_name: inbound, config_source: {ads: {}}}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: xds
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]}
  - name: app
    type: EDS
    eds_cluster_config: {eds_config: {ads: {}}, service_name: app.svc}
"#;
    let loaded = outrigger_config::load_bytes(bootstrap.as_bytes(), outrigger_config::Format::Yaml)
        .map_err(|d| {
            format!(
                "{:?}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        })
        .unwrap();
    let options = Options::from_snapshot(&loaded.snapshot).unwrap();
    assert!(options.delta && options.set_node_on_first_message_only);
    assert!(options.clusters && !options.listeners);
    assert_eq!(options.static_route_names, ["inbound"]);
    assert_eq!(options.static_endpoint_names, ["app.svc"]);
    assert_eq!(options.initial_fetch_timeout, Duration::from_secs(5));
    assert_eq!(
        options.node.id,
        "sidecar~10.0.0.1~web.ns~ns.svc.cluster.local"
    );
    let server = Server::from_cluster(loaded.snapshot.cluster("xds").unwrap(), None).unwrap();
    assert_eq!(server.uri, "http://127.0.0.1:15010");
}

/// Forwards one connection to `upstream` until `silent` is set; then it swallows every byte both ways and
/// keeps the sockets open (a network that went quiet, not one that closed).
async fn silenceable_proxy(
    upstream: std::net::SocketAddr,
    silent: Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let pipe = |silent: Arc<std::sync::atomic::AtomicBool>| {
            move |mut from: tokio::net::tcp::OwnedReadHalf,
                  mut to: tokio::net::tcp::OwnedWriteHalf| async move {
                let mut buffer = vec![0; 16 * 1024];
                loop {
                    let n = match from.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if silent.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    if to.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            }
        };
        let up = tokio::spawn(pipe(silent.clone())(client_read, server_write));
        let down = tokio::spawn(pipe(silent)(server_read, client_write));
        let _ = tokio::join!(up, down);
    });
    address
}

#[derive(Default)]
struct Events(std::sync::Mutex<Vec<(Event, std::time::Instant)>>);

impl crate::ads_client::Sink for Events {
    fn apply(
        &self,
        _: crate::ads_client::Kind,
        _: &crate::ads_client::Resources,
    ) -> Result<(), String> {
        Ok(())
    }
    fn event(&self, event: Event) {
        self.0
            .lock()
            .unwrap()
            .push((event, std::time::Instant::now()));
    }
}

use crate::ads_client::Event;
use std::sync::Arc;

/// `connection_keepalive` on the control plane's cluster: once the network goes silent (the proxy between
/// swallows everything, the TCP connection stays up), the unanswered PING ends the stream within about
/// interval + timeout; without keepalive the client would wait for ever on an open stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_control_plane_is_detected_by_keepalive() {
    use outrigger_config::model::http::Keepalive;
    let folder = std::env::temp_dir().join(format!("outrigger-keepalive-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let control_plane =
        crate::control_plane::ControlPlane::bind(folder.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let upstream = control_plane.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(control_plane.serve(async {
        let _ = stopped.await;
    }));
    let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let address = silenceable_proxy(upstream, silent.clone()).await;
    let (interval, timeout) = (Duration::from_millis(200), Duration::from_millis(300));
    let server = Server::plaintext("xds", address.to_string()).with_keepalive(Some(Keepalive {
        interval: Some(interval),
        timeout,
    }));
    let mut options = Options::from_snapshot(
        &outrigger_config::load_bytes(
            b"node: {id: keepalive, cluster: tests}\ndynamic_resources:\n  ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}\n  cds_config: {ads: {}}\nstatic_resources:\n  clusters:\n  - {name: xds, type: STATIC, load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}\n",
            outrigger_config::Format::Yaml,
        )
        .map_err(|d| format!("{:?}", d.iter().map(ToString::to_string).collect::<Vec<_>>()))
        .unwrap()
        .snapshot,
    )
    .unwrap();
    options.initial_fetch_timeout = Duration::ZERO;
    let events = Arc::new(Events::default());
    let handle = crate::ads_client::spawn(server, options, events.clone());
    let seen = |wanted: &Event| {
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e == wanted)
            .map(|(_, at)| *at)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen(&Event::Connected).is_none() {
        assert!(std::time::Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few keepalive rounds while the network works: the stream stays up.
    tokio::time::sleep(interval * 3).await;
    assert!(
        seen(&Event::Disconnected).is_none(),
        "answered PINGs must not end the stream"
    );
    let silenced = std::time::Instant::now();
    silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = silenced + Duration::from_secs(5);
    let disconnected = loop {
        if let Some(at) = seen(&Event::Disconnected) {
            break at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent control plane was not detected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = disconnected - silenced;
    // At most one interval until the next PING, then the timeout; some slack for scheduling.
    assert!(
        took <= interval + timeout + Duration::from_millis(500),
        "{took:?}"
    );
    handle.shutdown().await;
    let _ = stop.send(());
    let _ = served.await;
    let _ = std::fs::remove_dir_all(&folder);
}
