//! Leaves whose whole effect is the number they become in the model: loaded from YAML, read back.

use crate::model::core::Fraction;
use crate::model::http::HttpFilter;
use crate::model::listener::NetworkFilter;
use crate::{Format, Snapshot, load_bytes};

fn load(yaml: &str) -> Snapshot {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(loaded) => loaded.snapshot,
        Err(problems) => panic!("refused: {problems:#?}"),
    }
}

/// A listener whose HTTP local rate limit is enabled at `enabled` and enforced at `enforced` (FractionalPercent
/// flow mappings), and a cluster whose panic threshold is `panic` percent.
fn config(enabled: &str, enforced: &str, panic: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: c}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: limit
              token_bucket: {{max_tokens: 1, fill_interval: 60s}}
              filter_enabled: {{runtime_key: enabled_key, default_value: {enabled}}}
              filter_enforced: {{runtime_key: enforced_key, default_value: {enforced}}}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: c
    common_lb_config: {{healthy_panic_threshold: {panic}}}
    load_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10001}}}}}}}}]}}]}}
"#
    )
}

/// The listener's rate limit fractions, (enabled, enforced).
fn fractions(snapshot: &Snapshot) -> (Fraction, Fraction) {
    let NetworkFilter::HttpConnectionManager(hcm) =
        &snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("the first filter is the connection manager");
    };
    let HttpFilter::LocalRateLimit(limit) = &hcm.http_filters[0] else {
        panic!("the first HTTP filter is the rate limit");
    };
    (limit.filter_enabled, limit.filter_enforced)
}

#[test]
fn fractional_percent_denominators_scale_the_numerator() {
    let snapshot = load(&config(
        "{numerator: 250, denominator: TEN_THOUSAND}",
        "{numerator: 5000, denominator: MILLION}",
        "{value: 50}",
    ));
    assert_eq!(fractions(&snapshot), (Fraction(0.025), Fraction(0.005)));
    // Without a denominator, HUNDRED; a numerator above it is all of them.
    let snapshot = load(&config(
        "{numerator: 250}",
        "{numerator: 30, denominator: HUNDRED}",
        "{value: 50}",
    ));
    assert_eq!(fractions(&snapshot), (Fraction(1.0), Fraction(0.3)));
}

#[test]
fn percent_values_reach_the_model_truncated_like_envoy() {
    // Envoy turns the panic threshold into a whole percentage by truncation.
    let threshold = |value: &str| {
        load(&config("{numerator: 100}", "{numerator: 100}", value)).clusters[0]
            .healthy_panic_threshold
    };
    assert_eq!(threshold("{value: 25.7}"), 25.0);
    assert_eq!(threshold("{value: 0}"), 0.0);
    assert_eq!(threshold("{value: 100}"), 100.0);
}

/// A bootstrap whose `ads_config` carries `transport` (a `transport_api_version` line, or nothing) and whose
/// LDS and CDS sources carry `resource` the same way.
fn ads_bootstrap(transport: &str, resource: &str) -> String {
    format!(
        "node: {{id: n, cluster: c}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    {transport}
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  lds_config: {{ads: {{}} {resource}}}
  cds_config: {{ads: {{}} {resource}}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 15010}}}}}}}}]}}]
"
    )
}

/// Envoy 1.40 reads an absent or `AUTO` `transport_api_version` and `resource_api_version` as V3 (checked with
/// `envoy --mode validate`, corpus files 45-47); only a V2 transport is refused, naming the field.
#[test]
fn absent_and_auto_api_versions_are_v3_and_v2_transport_is_refused() {
    for transport in [
        "",
        "transport_api_version: AUTO",
        "transport_api_version: V3",
    ] {
        for resource in [
            "",
            ", resource_api_version: AUTO",
            ", resource_api_version: V3",
        ] {
            let snapshot = load(&ads_bootstrap(transport, resource));
            let Some(dynamic) = &snapshot.dynamic_resources else {
                panic!("no dynamic_resources: {transport:?} {resource:?}");
            };
            assert!(dynamic.ads.is_some(), "{transport:?} {resource:?}");
            assert!(
                dynamic.lds.is_some() && dynamic.cds.is_some(),
                "{transport:?} {resource:?}"
            );
        }
    }
    let refused = load_bytes(
        ads_bootstrap("transport_api_version: V2", "").as_bytes(),
        Format::Yaml,
    );
    let problems = match refused {
        Ok(_) => panic!("a V2 transport was accepted"),
        Err(problems) => format!("{problems:?}"),
    };
    assert!(
        problems.contains("dynamic_resources.ads_config.transport_api_version")
            && problems.contains("v2 xDS transport has been removed"),
        "{problems}"
    );
}
