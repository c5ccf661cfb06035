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
    let server = Server::from_cluster(&c).unwrap();
    assert_eq!(server.uri, "http://cp.example:18000");
    let c = cluster(
        "  - name: xds\n    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: \"::1\", port_value: 15010}}}}]}]}\n",
    );
    assert_eq!(Server::from_cluster(&c).unwrap().uri, "http://[::1]:15010");
}

#[test]
fn tls_to_the_control_plane_is_refused_by_name() {
    let c = cluster(
        "  - name: xds-tls\n    load_assignment: {cluster_name: xds-tls, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15012}}}}]}]}\n    transport_socket: {name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: istiod}}\n",
    );
    let error = Server::from_cluster(&c).unwrap_err();
    assert!(
        error.contains("\"xds-tls\"") && error.contains("mTLS"),
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
    let server = Server::from_cluster(loaded.snapshot.cluster("xds").unwrap()).unwrap();
    assert_eq!(server.uri, "http://127.0.0.1:15010");
}
