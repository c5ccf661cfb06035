//! Unit-test fixture: one connection manager config, loaded from YAML as users write it, so a test reads the
//! defaults the loader applies rather than building the model by hand.

use outrigger_config::model::http::HttpConnectionManager;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::{Format, load_bytes};
use std::sync::Arc;

/// The connection manager of a one-listener config with `fields` (YAML flow-map entries, may be empty) added
/// to its HCM, routing everything to a direct 200.
pub fn hcm(fields: &str) -> Arc<HttpConnectionManager> {
    hcm_routing(fields, "direct_response: {status: 200}")
}

/// The same with the one route's action given (`route: {cluster: backend, ...}` can name the fixture's
/// cluster).
pub fn hcm_routing(fields: &str, action: &str) -> Arc<HttpConnectionManager> {
    let extra = if fields.is_empty() {
        String::new()
    } else {
        format!(", {fields}")
    };
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager,
          stat_prefix: t,
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, {action}}}]}}]}},
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]{extra}}}
  clusters:
  - {{name: backend, load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]}}}}
"#
    );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml)
        .unwrap_or_else(|problems| panic!("{problems:?}\n{yaml}"));
    let listener = &loaded.snapshot.listeners[0];
    match &listener.filter_chains[0].filters[0] {
        NetworkFilter::HttpConnectionManager(hcm) => hcm.clone(),
        _ => panic!("not a connection manager"),
    }
}
