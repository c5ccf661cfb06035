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
