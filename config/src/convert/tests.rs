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

/// A bootstrap with one listener (`ignore_global_conn_limit: true` when `ignore`) and `extra` at the top level.
fn overload_bootstrap(extra: &str, ignore: bool) -> String {
    format!(
        r#"
{extra}
static_resources:
  listeners:
  - name: tcp
    ignore_global_conn_limit: {ignore}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.connection_limit
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit, stat_prefix: cl, max_connections: 3, delay: 0.25s}}
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}}
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}
"#
    )
}

const MONITOR: &str = r#"overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 7}"#;

/// The global connection limit from the resource monitor or from the deprecated runtime key (as Envoy 1.40 reads
/// both, nested or flat in a static layer; both at once refused), the connection limit filter's fields, and
/// `ignore_global_conn_limit`.
#[test]
fn connection_limits_are_read_like_envoy() {
    let snapshot = load(&overload_bootstrap(MONITOR, true));
    assert_eq!(snapshot.overload.global_downstream_max_connections, Some(7));
    assert!(snapshot.listeners[0].ignore_global_conn_limit);
    let NetworkFilter::ConnectionLimit(limit) = &snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("no connection limit filter");
    };
    assert_eq!(
        (limit.max_connections, limit.delay, limit.enabled),
        (3, Some(std::time::Duration::from_millis(250)), true)
    );
    for runtime in [
        "layered_runtime: {layers: [{name: a, static_layer: {overload: {global_downstream_max_connections: 9}}}]}",
        "layered_runtime: {layers: [{name: a, static_layer: {overload.global_downstream_max_connections: 9}}]}",
    ] {
        let snapshot = load(&overload_bootstrap(runtime, false));
        assert_eq!(
            snapshot.overload.global_downstream_max_connections,
            Some(9),
            "{runtime}"
        );
        assert!(!snapshot.listeners[0].ignore_global_conn_limit);
    }
    assert_eq!(
        load(&overload_bootstrap("", false))
            .overload
            .global_downstream_max_connections,
        None
    );
    let both = format!(
        "{MONITOR}\nlayered_runtime: {{layers: [{{name: a, static_layer: {{overload.global_downstream_max_connections: 9}}}}]}}"
    );
    let problems = match load_bytes(overload_bootstrap(&both, false).as_bytes(), Format::Yaml) {
        Ok(_) => panic!("both limits were accepted"),
        Err(problems) => format!("{problems:?}"),
    };
    assert!(
        problems.contains("keep only the resource monitor"),
        "{problems}"
    );
    let other = MONITOR.replace(
        "max_active_downstream_connections: 7",
        "max_active_downstream_connections: 0",
    );
    assert!(load_bytes(overload_bootstrap(&other, false).as_bytes(), Format::Yaml).is_err());
}

/// `locality_weighted_lb_config` reaches the model with the locality weights (unset: none), and is refused with a
/// consistent-hash policy.
#[test]
fn locality_weighted_lb_config_reaches_the_model() {
    let cluster = |extra: &str| {
        format!(
            r#"
static_resources:
  clusters:
  - name: c
    {extra}
    common_lb_config: {{locality_weighted_lb_config: {{}}}}
    load_assignment:
      cluster_name: c
      endpoints:
      - {{locality: {{zone: a}}, load_balancing_weight: 3, lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10001}}}}}}}}]}}
      - {{locality: {{zone: b}}, lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 10002}}}}}}}}]}}
"#
        )
    };
    let snapshot = load(&cluster(""));
    let c = &snapshot.clusters[0];
    assert!(c.locality_weighted);
    assert_eq!(c.localities[0].load_balancing_weight, Some(3));
    assert_eq!(c.localities[1].load_balancing_weight, None);
    let errors = match crate::load_bytes(
        cluster("lb_policy: RING_HASH").as_bytes(),
        crate::Format::Yaml,
    ) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.errors().map(|e| e.to_string()).collect(),
    };
    assert!(
        errors
            .iter()
            .any(|e| e.contains("common_lb_config.locality_weighted_lb_config")),
        "{errors:?}"
    );
}

/// A bootstrap with an `lrs` cluster and `cluster_manager` set to `manager` (a flow mapping).
fn load_stats_bootstrap(manager: &str) -> String {
    format!(
        r#"
static_resources:
  clusters:
  - name: lrs
    load_assignment:
      cluster_name: lrs
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 18000}}}}}}}}]}}]
cluster_manager: {manager}
"#
    )
}

fn refusal(yaml: &str) -> String {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(problems) => format!("{problems:?}"),
    }
}

#[test]
fn load_stats_config_is_read_and_what_it_cannot_run_refused() {
    let source = |api_type: &str, cluster: &str| {
        format!(
            "{{load_stats_config: {{api_type: {api_type}, transport_api_version: V3, \
             grpc_services: [{{envoy_grpc: {{cluster_name: {cluster}}}}}]}}}}"
        )
    };
    // GRPC and DELTA_GRPC open the same stream in Envoy 1.40.
    for api_type in ["GRPC", "DELTA_GRPC"] {
        let snapshot = load(&load_stats_bootstrap(&source(api_type, "lrs")));
        assert_eq!(
            snapshot.load_stats,
            Some(crate::model::LoadStatsConfig {
                cluster: "lrs".into()
            })
        );
    }
    assert_eq!(load(&load_stats_bootstrap("{}")).load_stats, None);
    // Envoy 1.40 starts, warns and skips its secondary clusters' initialization on these; we refuse them.
    let rest = refusal(&load_stats_bootstrap(&source("REST", "lrs")));
    assert!(
        rest.contains("cluster_manager.load_stats_config.api_type"),
        "{rest}"
    );
    let unknown = refusal(&load_stats_bootstrap(&source("GRPC", "nope")));
    assert!(
        unknown.contains("load_stats_config.grpc_services[0].envoy_grpc.cluster_name")
            && unknown.contains("unknown gRPC client cluster")
            && unknown.contains("nope"),
        "{unknown}"
    );
    // The other cluster_manager fields are refused by name.
    let local = refusal(&load_stats_bootstrap("{local_cluster_name: lrs}"));
    assert!(
        local.contains("cluster_manager.local_cluster_name"),
        "{local}"
    );
}
