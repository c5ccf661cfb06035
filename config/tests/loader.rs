//! What the loader reports and fills in: paths, several problems at once, warnings, Envoy's defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outrigger_config::model::cluster::{Discovery, LbPolicy, UpstreamProtocol};
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::route::RouteAction;
use outrigger_config::{Format, Severity, load_bytes, load_default};
use std::time::Duration;

fn errors_of(yaml: &str) -> Vec<String> {
    let problems =
        load_bytes(yaml.as_bytes(), Format::Yaml).expect_err("expected the config to be refused");
    problems
        .errors()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

const HTTP_LISTENER: &str = r#"
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 18080}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: /}
                route: {cluster: backend}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: backend
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18081}}}}]}]
"#;

#[test]
fn defaults_are_envoys() {
    let loaded = load_bytes(HTTP_LISTENER.as_bytes(), Format::Yaml).unwrap();
    let cluster = &loaded.snapshot.clusters[0];
    assert_eq!(cluster.discovery, Discovery::Static);
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(cluster.connect_timeout, Duration::from_secs(5));
    assert_eq!(cluster.protocol, UpstreamProtocol::Http1);
    assert_eq!(cluster.circuit_breakers.default.max_requests, 1024);
    assert_eq!(cluster.circuit_breakers.default.max_retries, 3);
    let listener = &loaded.snapshot.listeners[0];
    assert_eq!(
        listener.listener_filters_timeout,
        Some(Duration::from_secs(15))
    );
    let NetworkFilter::HttpConnectionManager(hcm) = &listener.filter_chains[0].filters[0] else {
        panic!()
    };
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(hcm.max_request_headers_kb, 60);
    assert!(hcm.generate_request_id);
    let RouteSource::Static(routes) = &hcm.routes else {
        panic!()
    };
    let RouteAction::Route(forward) = &routes.virtual_hosts[0].routes[0].action else {
        panic!()
    };
    assert_eq!(forward.timeout, Some(Duration::from_secs(15)));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let yaml = HTTP_LISTENER
        .replace(
            "route: {cluster: backend}",
            "route: {cluster: missing, timeout: -1s}",
        )
        .replace(
            "- name: backend\n",
            "- name: backend\n    connect_timeout: 0s\n",
        );
    let errors = errors_of(&yaml);
    assert!(
        errors.iter().any(|e| e.starts_with(
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.timeout:"
        )),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("static_resources.clusters[0].connect_timeout:")),
        "{errors:#?}"
    );
}

#[test]
fn dangling_and_duplicate_names_are_refused() {
    let errors =
        errors_of(&HTTP_LISTENER.replace("route: {cluster: backend}", "route: {cluster: nowhere}"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("unknown cluster \"nowhere\"")),
        "{errors:#?}"
    );
    let doubled = HTTP_LISTENER.replace("  clusters:\n", "  clusters:\n  - {name: backend}\n");
    let errors = errors_of(&doubled);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("duplicate cluster \"backend\"")),
        "{errors:#?}"
    );
}

#[test]
fn unsupported_fields_name_themselves_and_ignorable_ones_warn() {
    let with_load_reports = HTTP_LISTENER.replace(
        "- name: backend\n",
        "- name: backend\n    lrs_server: {self: {}}\n",
    );
    let errors = errors_of(&with_load_reports);
    assert!(
        errors.iter().any(
            |e| e.starts_with("static_resources.clusters[0].lrs_server:")
                && e.contains("does not implement")
        ),
        "{errors:#?}"
    );

    // A field not acted on yet is accepted with a warning naming it.
    let with_ipv4_compat = HTTP_LISTENER.replace(
        "{address: 127.0.0.1, port_value: 18080}",
        "{address: 127.0.0.1, port_value: 18080, ipv4_compat: true}",
    );
    let loaded = load_bytes(with_ipv4_compat.as_bytes(), Format::Yaml).unwrap();
    let warning = loaded.warnings.iter().next().unwrap();
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(
        warning.path.as_str(),
        "static_resources.listeners[0].address.socket_address.ipv4_compat"
    );
}

#[test]
fn field_rules_from_envoys_protos_apply() {
    let errors = errors_of(&HTTP_LISTENER.replace(
        "stat_prefix: web",
        "stat_prefix: web\n          max_request_headers_kb: 9000",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("max_request_headers_kb") && e.contains("at most 8192")),
        "{errors:#?}"
    );
}

#[test]
fn the_embedded_default_is_a_transparent_sidecar() {
    let loaded = load_default().unwrap();
    let snapshot = &loaded.snapshot;
    let outbound = snapshot.listener("virtualOutbound").unwrap();
    assert_eq!(outbound.address.port(), 15001);
    assert_eq!(
        snapshot.listener("virtualInbound").unwrap().address.port(),
        15006
    );
    assert_eq!(
        snapshot.admin.as_ref().unwrap().address.to_string(),
        "127.0.0.1:15000"
    );
    assert_eq!(
        snapshot.cluster("PassthroughCluster").unwrap().discovery,
        Discovery::OriginalDst
    );
    // Server-speaks-first ports go straight to TCP.
    let mysql = outbound
        .filter_chains
        .iter()
        .find(|c| c.matcher.destination_port == Some(3306))
        .unwrap();
    assert!(matches!(mysql.filters[0], NetworkFilter::TcpProxy(_)));
}
