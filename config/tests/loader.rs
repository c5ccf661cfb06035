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

#[test]
fn cors_policies_reach_the_model_and_what_cannot_run_is_refused() {
    use outrigger_config::model::http::HttpFilter;
    use outrigger_config::model::route::PerFilterConfig;
    let cors_filter = r#"
          - name: my-cors
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}
          - name: envoy.filters.http.router"#;
    let policy = r#"{"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, allow_origin_string_match: [{prefix: "https://"}], allow_methods: GET, filter_enabled: {default_value: {numerator: 25}, runtime_key: k}}"#;
    let yaml = HTTP_LISTENER
        .replace("\n          - name: envoy.filters.http.router", cors_filter)
        .replace(
            "domains: [\"*\"]\n",
            &format!(
                "domains: [\"*\"]\n              typed_per_filter_config: {{my-cors: {policy}}}\n              cors: {{max_age: \"60\"}}\n"
            ),
        )
        .replace(
            "route: {cluster: backend}",
            "route: {cluster: backend, cors: {allow_credentials: true, shadow_enabled: {default_value: {numerator: 100}}}}",
        );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).unwrap();
    let NetworkFilter::HttpConnectionManager(hcm) =
        &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("an HTTP connection manager");
    };
    assert!(matches!(&hcm.http_filters[0], HttpFilter::Cors(c) if c.filter_name == "my-cors"));
    let RouteSource::Static(table) = &hcm.routes else {
        panic!("inline routes");
    };
    let host = &table.virtual_hosts[0];
    let Some(PerFilterConfig::Cors(p)) = host.per_filter("my-cors") else {
        panic!("the virtual host's policy, by the filter's name");
    };
    assert_eq!(p.allow_methods, "GET");
    assert_eq!(p.allow_origin.len(), 1);
    assert_eq!(p.filter_enabled.map(|f| f.0), Some(0.25));
    assert_eq!(host.cors.as_ref().map(|c| c.max_age.as_str()), Some("60"));
    let RouteAction::Route(forward) = &host.routes[0].action else {
        panic!("a route action");
    };
    let legacy = forward.cors.as_ref().unwrap();
    assert_eq!(legacy.allow_credentials, Some(true));
    assert_eq!(legacy.shadow_enabled.map(|f| f.0), Some(1.0));

    // A CORS filter between two authorization filters, a header value with a newline, and another filter's
    // config on a virtual host are refused by name.
    let rbac = r#"{"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC}"#;
    let refused = yaml
        .replace(
            "          - name: my-cors",
            &format!("          - name: rbac1\n            typed_config: {rbac}\n          - name: my-cors"),
        )
        .replace(
            "          - name: envoy.filters.http.router",
            &format!("          - name: rbac2\n            typed_config: {rbac}\n          - name: envoy.filters.http.router"),
        )
        .replace("allow_methods: GET", "allow_methods: \"GET\\nx\"");
    let errors = errors_of(&refused);
    let hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    for expected in [
        format!("{hcm}.http_filters[2]: envoy.filters.http.cors between two authorization filters"),
        format!(
            "{hcm}.route_config.virtual_hosts[0].typed_per_filter_config[\"my-cors\"].allow_methods: must be a valid header value"
        ),
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&expected)),
            "{expected}\n{errors:#?}"
        );
    }
    let other = yaml.replace(
        policy,
        r#"{"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute}"#,
    );
    let errors = errors_of(&other);
    assert!(
        errors.iter().any(|e| e.contains("per-virtual-host config of envoy.extensions.filters.http.rbac.v3.RBACPerRoute is not supported")),
        "{errors:#?}"
    );
}

#[test]
fn csrf_policies_reach_the_model_by_the_filters_name() {
    use outrigger_config::model::http::HttpFilter;
    use outrigger_config::model::route::PerFilterConfig;
    let policy = |enabled: u32| {
        format!(
            r#"{{"@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: {{default_value: {{numerator: {enabled}}}, runtime_key: k}}, shadow_enabled: {{default_value: {{numerator: 100}}}}, additional_origins: [{{suffix: .example.com}}]}}"#
        )
    };
    let yaml = HTTP_LISTENER
        .replace(
            "\n          - name: envoy.filters.http.router",
            &format!(
                "\n          - name: my-csrf\n            typed_config: {}\n          - name: envoy.filters.http.router",
                policy(25)
            ),
        )
        .replace(
            "domains: [\"*\"]\n",
            &format!(
                "domains: [\"*\"]\n              typed_per_filter_config: {{my-csrf: {}}}\n",
                policy(0)
            ),
        )
        .replace(
            "route: {cluster: backend}",
            &format!(
                "route: {{cluster: backend}}\n                typed_per_filter_config: {{my-csrf: {}}}",
                policy(100)
            ),
        );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).unwrap();
    let NetworkFilter::HttpConnectionManager(hcm) =
        &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("an HTTP connection manager");
    };
    let HttpFilter::Csrf(filter) = &hcm.http_filters[0] else {
        panic!("the CSRF filter first");
    };
    assert_eq!(filter.filter_name, "my-csrf");
    assert_eq!(filter.policy.filter_enabled.0, 0.25);
    assert_eq!(filter.policy.shadow_enabled.map(|f| f.0), Some(1.0));
    assert_eq!(filter.policy.additional_origins.len(), 1);
    let RouteSource::Static(table) = &hcm.routes else {
        panic!("inline routes");
    };
    let host = &table.virtual_hosts[0];
    let Some(PerFilterConfig::Csrf(p)) = host.per_filter("my-csrf") else {
        panic!("the virtual host's policy, by the filter's name");
    };
    assert_eq!(p.filter_enabled.0, 0.0);
    let Some(PerFilterConfig::Csrf(p)) = host.routes[0].per_filter("my-csrf") else {
        panic!("the route's policy, by the filter's name");
    };
    assert_eq!(p.filter_enabled.0, 1.0);
    // Envoy requires `filter_enabled`.
    let errors = errors_of(&yaml.replace(
        "filter_enabled: {default_value: {numerator: 25}, runtime_key: k}, ",
        "",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("http_filters[0].typed_config.filter_enabled")),
        "{errors:#?}"
    );
}
