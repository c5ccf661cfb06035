//! The proofs of fields that only name things. Envoy uses them as labels too: to find a filter given without a
//! `typed_config`, in problems, in statistics and in dumps. So the loader's use of them is the whole behaviour
//! to prove, and these tests are what `proofs.rs` cites for them.

use crate::model::http::RouteSource;
use crate::model::listener::{ListenerFilter, NetworkFilter, TrafficDirection};
use crate::model::route::RouteConfig;
use crate::{Format, Loaded, load_bytes};

/// One listener and one cluster, every label set; `{...}` marks what a test replaces.
const LABELLED: &str = r#"
static_resources:
  listeners:
  - name: inbound
    traffic_direction: INBOUND
    address: {socket_address: {address: 127.0.0.1, port_value: 15006}}
    listener_filters: [{name: envoy.filters.listener.tls_inspector}]
    filter_chains:
    - filters:
      - name: the-hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          route_config:
            name: inbound-routes
            virtual_hosts:
            - name: the-host
              domains: ["*"]
              routes: [{name: to-app, match: {prefix: /}, route: {cluster: app}}]
          http_filters:
          - name: the-router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]
    transport_socket_matches:
    - name: plaintext-for-all
      match: {}
      transport_socket:
        name: envoy.transport_sockets.raw_buffer
        typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}
"#;

fn loads(yaml: &str) -> Loaded {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("refused: {problems:#?}"),
    }
}

/// Each problem as `path: message`.
fn problems(yaml: &str) -> Vec<String> {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(problems) => problems
            .errors()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
    }
}

fn routes(loaded: &Loaded) -> &RouteConfig {
    let listener = &loaded.snapshot.listeners[0];
    let Some(NetworkFilter::HttpConnectionManager(hcm)) = listener.filter_chains[0].filters.first()
    else {
        panic!("no connection manager: {listener:#?}");
    };
    let RouteSource::Static(routes) = &hcm.routes else {
        panic!("no static routes");
    };
    routes
}

#[test]
fn a_listener_filter_without_typed_config_is_found_by_its_name() {
    let loaded = loads(LABELLED);
    assert_eq!(
        loaded.snapshot.listeners[0].listener_filters,
        vec![ListenerFilter::TlsInspector]
    );
    let unknown = LABELLED.replace(
        "listener_filters: [{name: envoy.filters.listener.tls_inspector}]",
        "listener_filters: [{name: envoy.filters.listener.proxy_protocol}]",
    );
    let errors = problems(&unknown);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("envoy.filters.listener.proxy_protocol")),
        "{errors:#?}"
    );
}

/// The labels `validate --dump` and `/config_dump` print, as written.
#[test]
fn labels_are_kept_in_the_effective_configuration() {
    let loaded = loads(LABELLED);
    let listener = &loaded.snapshot.listeners[0];
    assert_eq!(listener.traffic_direction, TrafficDirection::Inbound);
    let routes = routes(&loaded);
    assert_eq!(routes.name, "inbound-routes");
    assert_eq!(routes.virtual_hosts[0].name, "the-host");
    assert_eq!(routes.virtual_hosts[0].routes[0].name, "to-app");
    let cluster = &loaded.snapshot.clusters[0];
    assert_eq!(
        cluster.transport_socket_matches[0].name,
        "plaintext-for-all"
    );
}

#[test]
fn a_misplaced_filter_is_named_in_the_problem() {
    let router_first = LABELLED.replace(
        "          http_filters:\n",
        "          http_filters:\n          - name: first-router\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n",
    );
    let errors = problems(&router_first);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("http_filters[0]") && e.contains("first-router")),
        "{errors:#?}"
    );
    let tcp_first = LABELLED.replace(
        "      - name: the-hcm\n",
        "      - name: the-tcp-proxy\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: app}\n      - name: the-hcm\n",
    );
    let errors = problems(&tcp_first);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("filters[0]") && e.contains("the-tcp-proxy")),
        "{errors:#?}"
    );
}

#[test]
fn a_domain_served_twice_names_the_virtual_host_that_has_it() {
    let twice = LABELLED.replace(
        "              routes: [{name: to-app",
        "              routes: [{match: {prefix: /}, direct_response: {status: 200}}]\n            - name: second\n              domains: [\"*\"]\n              routes: [{name: to-app",
    );
    let errors = problems(&twice);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("virtual_hosts[1].domains[0]") && e.contains("\"the-host\"")),
        "{errors:#?}"
    );
}

/// Names Envoy requires (`min_len: 1`): left empty, each is refused at its own path.
#[test]
fn names_envoy_requires_are_required() {
    let cases = [
        (
            "listener_filters: [{name: envoy.filters.listener.tls_inspector}]",
            "listener_filters: [{name: \"\", typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]",
            "listener_filters[0].name",
        ),
        ("- name: the-hcm", "- name: \"\"", "filters[0].name"),
        ("- name: the-router", "- name: \"\"", "http_filters[0].name"),
        ("- name: the-host", "- name: \"\"", "virtual_hosts[0].name"),
        (
            "name: envoy.transport_sockets.raw_buffer",
            "name: \"\"",
            "transport_socket_matches[0].transport_socket.name",
        ),
        (
            "cluster_name: app",
            "cluster_name: \"\"",
            "load_assignment.cluster_name",
        ),
    ];
    for (from, to, path) in cases {
        let errors = problems(&LABELLED.replace(from, to));
        assert!(
            errors.iter().any(|e| e.contains(&format!("{path}:"))),
            "{path}: {errors:#?}"
        );
    }
}
