//! The route table conversion: what Envoy accepts and refuses about clusters, weights and retry predicates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::{Format, load_bytes};

/// A listener whose inline route table has `settings` and sends `/` to `route`.
fn config(settings: &str, route: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{{settings} virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {route}}}]}}]}}
  clusters:
  - name: a
  - name: b
"#
    )
}

fn messages(yaml: &str) -> (Vec<String>, Vec<String>) {
    match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(loaded) => (
            Vec::new(),
            loaded.warnings.warnings().map(|w| w.to_string()).collect(),
        ),
        Err(problems) => (
            problems.errors().map(|e| e.to_string()).collect(),
            Vec::new(),
        ),
    }
}

/// As `envoy --mode validate` 1.40: an inline route to an unknown cluster is refused by default and with
/// `validate_clusters: true`, accepted with `validate_clusters: false` (the request then gets 503 NC).
#[test]
fn validate_clusters_false_allows_unknown_clusters() {
    let route = "{cluster: nowhere}";
    for settings in ["", "validate_clusters: true,"] {
        let (errors, _) = messages(&config(settings, route));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("unknown cluster \"nowhere\"")),
            "{settings}: {errors:?}"
        );
    }
    let (errors, _) = messages(&config("validate_clusters: false,", route));
    assert!(errors.is_empty(), "{errors:?}");
}

/// As `envoy --mode validate` 1.40: a retry host predicate is found by its `typed_config`, never by `name`.
#[test]
fn a_retry_host_predicate_needs_its_typed_config() {
    let predicate = "{name: envoy.retry_host_predicates.previous_hosts";
    let typed = "typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}";
    let route = |p: &str| {
        format!("{{cluster: a, retry_policy: {{retry_on: 5xx, retry_host_predicate: [{p}}}]}}}}")
    };
    let (errors, _) = messages(&config("", &route(predicate)));
    assert!(
        errors.iter().any(|e| e.contains("needs a typed_config")),
        "{errors:?}"
    );
    let (errors, _) = messages(&config("", &route(&format!("{predicate}, {typed}"))));
    assert!(errors.is_empty(), "{errors:?}");
}

/// Envoy 1.40 accepts a deprecated `total_weight` that is not the sum of the weights (and draws by the sum);
/// Outrigger accepts it too and says so.
#[test]
fn a_total_weight_that_is_not_the_sum_is_accepted_with_a_warning() {
    let route = "{weighted_clusters: {total_weight: 50, clusters: [{name: a, weight: 30}, {name: b, weight: 30}]}}";
    let (errors, warnings) = messages(&config("", route));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("total_weight") && w.contains("add up to 60")),
        "{warnings:?}"
    );
}

/// `request_mirror_policies`: fractions reach the model (100 % unset), and Envoy's refusals are ours: both or
/// neither of `cluster` and `cluster_header`, an unknown shadow cluster.
#[test]
fn mirror_policies_read_and_refused_like_envoy() {
    use crate::model::route::{MirrorTarget, RouteAction};
    let yaml = config(
        "",
        "{cluster: a, request_mirror_policies: [{cluster: b}, {cluster_header: X-Mirror, runtime_fraction: {default_value: {numerator: 25, denominator: TEN_THOUSAND}, runtime_key: k}}]}",
    );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).unwrap();
    let routes = match &loaded.snapshot.listeners[0].filter_chains[0].filters[0] {
        crate::model::listener::NetworkFilter::HttpConnectionManager(hcm) => match &hcm.routes {
            crate::model::http::RouteSource::Static(config) => config.clone(),
            _ => panic!("inline routes"),
        },
        _ => panic!("an HCM"),
    };
    let RouteAction::Route(forward) = &routes.virtual_hosts[0].routes[0].action else {
        panic!("a route action");
    };
    let mirrors = &forward.mirrors;
    assert_eq!(mirrors[0].target, MirrorTarget::Cluster("b".into()));
    assert_eq!(
        (
            mirrors[0].fraction.numerator,
            mirrors[0].fraction.denominator
        ),
        (100, 100)
    );
    assert_eq!(
        mirrors[1].target,
        MirrorTarget::ClusterHeader("x-mirror".into())
    );
    assert_eq!(
        (
            mirrors[1].fraction.numerator,
            mirrors[1].fraction.denominator
        ),
        (25, 10_000)
    );

    for (policy, expected) in [
        (
            "{cluster: b, cluster_header: x}",
            "only one of `cluster` or `cluster_header`",
        ),
        (
            "{runtime_fraction: {default_value: {numerator: 1}}}",
            "exactly one of `cluster` or `cluster_header`",
        ),
        (
            "{cluster: nowhere}",
            "request_mirror_policies[0].cluster: route names unknown cluster \"nowhere\"",
        ),
    ] {
        let (errors, _) = messages(&config(
            "",
            &format!("{{cluster: a, request_mirror_policies: [{policy}]}}"),
        ));
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{policy}: {errors:?}"
        );
    }
}
