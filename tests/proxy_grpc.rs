//! gRPC through the proxy: h2 on both sides, trailers carried end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::backend::Backend;
use support::proxy::{address, fill, start};

const CONFIG: &str = r#"
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
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /, grpc: {}}, route: {cluster: grpc_backend}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: grpc_backend
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: grpc_backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {port}}}}}]}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_pass_through_over_h2() {
    let backend = Backend::start("grpc").await;
    let proxy = start(&fill(
        CONFIG,
        &[("port", backend.address.port().to_string())],
    ))
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // A gRPC message frame: uncompressed, 3 bytes.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 3, b'h', b'e', b'y']);
    let request = http::Request::post(format!("http://{}/test.Echo/Say", address(&proxy, "grpc")))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(frame))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");
    let seen: serde_json::Value = serde_json::from_slice(&collected.to_bytes()).unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["body_bytes"], 8);
    assert_eq!(seen["headers"]["te"], "trailers");
    let proxy_address = address(&proxy, "grpc").to_string();
    assert_eq!(
        seen["authority"],
        proxy_address.as_str(),
        "the upstream sees the request's authority: {seen}"
    );

    // A non-gRPC request does not match the `grpc: {}` route.
    let plain = http::Request::get(format!("http://{}/", address(&proxy, "grpc")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.request(plain).await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_unary_and_streaming_calls_through_the_proxy() {
    let Some(python) = support::python_with_grpcio() else {
        return;
    };
    let script = support::grpc_peer_script();
    let server = support::grpcio_server(&python, "serve");
    let port = server.port;
    let proxy = start(&fill(CONFIG, &[("port", port.to_string())])).await;
    let through = address(&proxy, "grpc").to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(["call", &through])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "grpcio client: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["unary"], "SERVING");
    // The error status travels in trailers; the client must see it.
    assert_eq!(summary["missing"], "NOT_FOUND");
    assert_eq!(summary["stream"].as_array().unwrap().len(), 3, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_unary_and_streaming_calls_through_the_proxy() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("outrigger.test", tonic_health::ServingStatus::Serving)
        .await;
    // Bound here, so the server listens before it is spawned and no other process can take its port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let proxy = start(&fill(CONFIG, &[("port", port.to_string())])).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", address(&proxy, "grpc")))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = HealthClient::new(channel);

    let request = || HealthCheckRequest {
        service: "outrigger.test".into(),
    };
    let unary = client.check(request()).await.unwrap().into_inner();
    assert_eq!(unary.status, ServingStatus::Serving as i32);
    let missing = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        missing.code(),
        tonic::Code::NotFound,
        "the status travels in trailers"
    );

    let mut watch = client.watch(request()).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("outrigger.test", tonic_health::ServingStatus::NotServing)
        .await;
    let second = watch.message().await.unwrap().unwrap();
    assert_eq!(
        second.status,
        ServingStatus::NotServing as i32,
        "a later stream message arrives"
    );
    server.abort();
}
