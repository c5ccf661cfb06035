//! Proxyless gRPC clients on `outrigger control-plane`: Python grpcio (gRPC core) and Node grpc-js-xds resolve
//! `xds:///echo-target` through the folder's Listener `echo-target`, whose `api_listener` holds a connection
//! manager (routes by RDS) sending everything to the EDS cluster `echo-cluster`; their health Checks reach the
//! grpcio server its endpoints name, and follow an edit of the endpoints file to a second server on the same
//! channel. A listener for gRPC clients that fails our checks is refused with its path; a resource our checks
//! allow but grpc-js refuses (endpoints without a locality) shows in our log as a NACK with the node id, and the
//! client keeps the last good version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "proxyless_grpc/clients.rs"]
mod clients;

use clients::{ControlPlane, Library, XdsClient, health_server, write_bootstrap};
use std::path::PathBuf;
use support::proxy::fill;
use support::python_with_grpcio;

/// The listener gRPC clients resolve, its routes and the EDS cluster they name.
const ECHO: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: echo-target
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: echo
      rds: {route_config_name: echo-routes, config_source: {ads: {}, resource_api_version: V3}}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: echo-routes
  virtual_hosts:
  - name: echo
    domains: ["*"]
    routes: [{match: {prefix: ""}, route: {cluster: echo-cluster}}]
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: echo-cluster
  type: EDS
  eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
"#;

/// The endpoints of `echo-cluster`: one server, in a weighted locality (gRPC clients need both).
const ENDPOINTS: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: echo-cluster
  endpoints:
  - {locality}
    lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {port}}}}}]
"#;

const IN_A_LOCALITY: &str = "locality: {region: r1, zone: z1}\n    load_balancing_weight: 1";

/// A listener for gRPC clients with a filter they do not run: our checks refuse it.
const BAD: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: bad-target
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: bad
      rds: {route_config_name: echo-routes, config_source: {ads: {}}}
      http_filters:
      - name: limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          stat_prefix: limit
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;

fn endpoints(port: u16, locality: &str) -> String {
    fill(
        ENDPOINTS,
        &[
            ("port", port.to_string()),
            ("locality", locality.to_string()),
        ],
    )
}

/// A fresh folder for one test: `root/resources` is the control plane's.
fn folder(test: &str) -> (PathBuf, PathBuf) {
    let root =
        std::env::temp_dir().join(format!("outrigger-proxyless-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("resources");
    std::fs::create_dir_all(&dir).unwrap();
    (root, dir)
}

/// A client of `library` resolves `xds:///echo-target` through the control plane to server `a`, then follows
/// the endpoints file to server `b` on the same channel.
fn follows_the_control_plane(library: Library, node: &str) {
    let Some(python) = python_with_grpcio() else {
        return;
    };
    let (root, dir) = folder(node);
    let a = health_server(&python, "a");
    let b = health_server(&python, "b");
    std::fs::write(dir.join("echo.yaml"), ECHO).unwrap();
    std::fs::write(dir.join("endpoints.yaml"), endpoints(a.port, IN_A_LOCALITY)).unwrap();
    std::fs::write(dir.join("bad.yaml"), BAD).unwrap();
    let control_plane = ControlPlane::start(&dir);
    let log = || control_plane.log_text();
    // The listener gRPC clients cannot run is refused, with its file, its place and its field.
    control_plane.wait_for_log(&[
        "bad.yaml: error: resources[0] Listener \"bad-target\".api_listener.api_listener.http_filters[0]",
        "only the router filter",
    ]);
    let bootstrap = root.join("bootstrap.json");
    write_bootstrap(&bootstrap, control_plane.port, node);
    let Some(mut client) = XdsClient::start(library, &bootstrap, "xds:///echo-target") else {
        return;
    };

    client.check_until("a", "SERVING", log);
    // Listener, routes, cluster and endpoints were all sent to this node.
    for kind in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
    ] {
        control_plane.wait_for_log(&[&format!("sending 1 {kind} "), &format!("node=\"{node}\"")]);
    }
    assert!(
        client.check("b").starts_with("NOT_FOUND"),
        "server a answers, and it does not serve b"
    );

    // The endpoints move to server b: the same channel follows.
    std::fs::write(dir.join("endpoints.yaml"), endpoints(b.port, IN_A_LOCALITY)).unwrap();
    client.check_until("b", "SERVING", log);
    assert!(
        client.check("a").starts_with("NOT_FOUND"),
        "only server b is left"
    );
    assert!(!log().contains("NACK"), "{}", log());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn grpcio_follows_an_api_listener_from_the_control_plane() {
    follows_the_control_plane(Library::Grpcio, "grpcio-client");
}

#[test]
fn grpc_js_follows_an_api_listener_from_the_control_plane() {
    follows_the_control_plane(Library::GrpcJs, "grpc-js-client");
}

/// Endpoints without a locality are fine for Envoy and for our checks, but grpc-js refuses them: its NACK is in
/// our log with its node id and its reason, and the client keeps serving with the last good endpoints.
#[test]
fn a_grpc_js_nack_shows_in_the_control_plane_log_with_the_node_id() {
    let Some(python) = python_with_grpcio() else {
        return;
    };
    let node = "grpc-js-nacks";
    let (root, dir) = folder(node);
    let a = health_server(&python, "a");
    std::fs::write(dir.join("echo.yaml"), ECHO).unwrap();
    std::fs::write(dir.join("endpoints.yaml"), endpoints(a.port, IN_A_LOCALITY)).unwrap();
    let control_plane = ControlPlane::start(&dir);
    let log = || control_plane.log_text();
    let bootstrap = root.join("bootstrap.json");
    write_bootstrap(&bootstrap, control_plane.port, node);
    let Some(mut client) = XdsClient::start(Library::GrpcJs, &bootstrap, "xds:///echo-target")
    else {
        return;
    };
    client.check_until("a", "SERVING", log);

    std::fs::write(dir.join("endpoints.yaml"), endpoints(a.port, "priority: 0")).unwrap();
    let nack = control_plane.wait_for_log(&["NACK of ClusterLoadAssignment"]);
    assert!(nack.contains(&format!("node=\"{node}\"")), "{nack}");
    assert!(nack.contains("endpoints[0].locality unset"), "{nack}");
    assert_eq!(client.check("a"), "SERVING", "the last good endpoints stay");
    let _ = std::fs::remove_dir_all(&root);
}
