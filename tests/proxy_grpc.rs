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
