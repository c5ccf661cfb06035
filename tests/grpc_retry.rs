//! gRPC calls are retried like any request: `retry_on: unavailable` turns a server's first UNAVAILABLE into OK,
//! and the retried call carries the same request message (its body is replayed). Against a tonic server and a
//! Python grpcio server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use support::proxy::{address, fill, start};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
};

const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: grpc
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: grpc
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route:
                  cluster: grpc_backend
                  retry_policy: {retry_on: unavailable, num_retries: 2}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: grpc_backend
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: grpc_backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {port}}}}}]}]}
"#;

/// UNAVAILABLE on the first call; later, SERVING only for the service name the client sent.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<AtomicU32>,
}

#[tonic::async_trait]
impl Health for Flaky {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(tonic::Status::unavailable("try again"));
        }
        if request.get_ref().service != "retry.me" {
            return Err(tonic::Status::not_found(
                "the retried request lost its message",
            ));
        }
        Ok(tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tonic::codegen::BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_unavailable_is_retried_with_the_message_intact() {
    let flaky = Flaky::default();
    // Bound here, so the server listens before it is spawned and no other process can take its port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(flaky.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let proxy = start(&fill(CONFIG, &[("port", port.to_string())])).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", address(&proxy, "grpc")))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = client
        .check(HealthCheckRequest {
            service: "retry.me".into(),
        })
        .await
        .expect("the retry turns UNAVAILABLE into OK")
        .into_inner();
    assert_eq!(reply.status, ServingStatus::Serving as i32);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2, "one retry");
    let admin = proxy.admin_address.expect("the admin listens");
    let stats = support::client::get(&format!("http://{admin}/stats"), &[])
        .await
        .body;
    assert!(
        stats
            .lines()
            .any(|l| l == "cluster.grpc_backend.upstream_rq_retry: 1"),
        "{stats}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_unavailable_is_retried_with_the_message_intact() {
    use std::io::Read;
    let Some(python) = support::python_with_grpcio() else {
        return;
    };
    let script = support::grpc_peer_script();
    let mut server = support::grpcio_server(&python, "flaky");
    let port = server.port;
    let proxy = start(&fill(CONFIG, &[("port", port.to_string())])).await;
    let through = address(&proxy, "grpc").to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(["check", &through])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "SERVING",
        "grpcio client: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Closing stdin makes the peer print how many calls it served, then exit.
    drop(server.guard.0.stdin.take());
    let mut rest = String::new();
    server.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest.trim(),
        "2",
        "the grpcio server saw the first call and one retry"
    );
}
