//! Route configurations: virtual hosts, routes, matches, actions, retries.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.route.v3.RouteConfiguration.name",
        Tests(&[LABEL_KEPT]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.virtual_hosts",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.request_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.request_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.response_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.response_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteConfiguration.validate_clusters",
        Tests(&[DIFFERENTIAL, ROUTE_VALIDATE_CLUSTERS]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.name",
        Tests(&[LABEL_DOMAIN_TWICE, LABEL_REQUIRED, LABEL_KEPT]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.domains",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.routes",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.request_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.request_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.response_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.response_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.retry_policy",
        Tests(&[RESILIENCE_VHOST_RETRY]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.include_request_attempt_count",
        Tests(&[RESILIENCE_ATTEMPT_COUNT]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.include_attempt_count_in_response",
        Tests(&[RESILIENCE_ATTEMPT_COUNT]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.request_body_buffer_limit",
        Tests(&[RESILIENCE_VHOST_RETRY]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.per_request_buffer_limit_bytes",
        Tests(&[RESILIENCE_VHOST_RETRY]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.hedge_policy",
        Tests(&[RESILIENCE_VHOST_RETRY]),
    ),
    ("envoy.config.route.v3.Route.name", Tests(&[LABEL_KEPT])),
    ("envoy.config.route.v3.Route.match", Tests(&[HTTP_ROUTES])),
    ("envoy.config.route.v3.Route.route", Tests(&[HTTP_ROUTES])),
    (
        "envoy.config.route.v3.Route.redirect",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.Route.direct_response",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.route.v3.Route.request_headers_to_add",
        Tests(&[HTTP_HEADERS, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.Route.request_headers_to_remove",
        Tests(&[HTTP_HEADERS, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.Route.response_headers_to_add",
        Tests(&[HTTP_HEADERS, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.Route.response_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.Route.typed_per_filter_config",
        Tests(&[RESILIENCE_ROUTE_RATE_LIMIT]),
    ),
    (
        "envoy.config.route.v3.Route.request_body_buffer_limit",
        Tests(&[RESILIENCE_BUFFER_LIMIT]),
    ),
    (
        "envoy.config.route.v3.Route.per_request_buffer_limit_bytes",
        Tests(&[RESILIENCE_VHOST_RETRY]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.prefix",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.path",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.safe_regex",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.path_separated_prefix",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.case_sensitive",
        Tests(&[DIFFERENTIAL, ROUTE_CASE]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.headers",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteMatch.query_parameters",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    ("envoy.config.route.v3.RouteMatch.grpc", Tests(&[GRPC_H2])),
    (
        "envoy.config.route.v3.HeaderMatcher.name",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.exact_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.safe_regex_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.present_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.prefix_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.suffix_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.contains_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.string_match",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.invert_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.HeaderMatcher.treat_missing_header_as_empty",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.QueryParameterMatcher.name",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.QueryParameterMatcher.string_match",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.QueryParameterMatcher.present_match",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteAction.cluster",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.route.v3.RouteAction.cluster_header",
        Tests(&[HTTP_CLUSTERS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.weighted_clusters",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteAction.prefix_rewrite",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteAction.regex_rewrite",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RouteAction.host_rewrite_literal",
        Tests(&[HTTP_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.auto_host_rewrite",
        Tests(&[HTTP_CLUSTERS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.timeout",
        Tests(&[HTTP_TIMEOUT, RESILIENCE_TIMEOUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.idle_timeout",
        Tests(&[ROUTE_IDLE]),
    ),
    (
        "envoy.config.route.v3.RouteAction.retry_policy",
        Tests(&[HTTP_RETRY]),
    ),
    (
        "envoy.config.route.v3.RouteAction.hedge_policy",
        Tests(&[RESILIENCE_TIMEOUTS, HEDGE]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.clusters",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.total_weight",
        Tests(&[DIFFERENTIAL, ROUTE_TOTAL_WEIGHT]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.name",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.weight",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.request_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.request_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.response_headers_to_add",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight.response_headers_to_remove",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retry_on",
        Tests(&[
            HTTP_RETRY,
            RESILIENCE_RETRY_4XX,
            GRPC_RETRY,
            RETRY_5XX,
            RETRY_CONDITIONS,
        ]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.num_retries",
        Tests(&[RESILIENCE_RETRY_LIMIT, RETRY_LIMIT]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.per_try_timeout",
        Tests(&[RESILIENCE_TIMEOUTS]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retry_back_off",
        Tests(&[RETRY_BACK_OFF_CONFIGURED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retriable_status_codes",
        Tests(&[RETRY_CONDITIONS]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retry_host_predicate",
        Tests(&[RESILIENCE_OTHER_HOST, ROUTE_HOST_PREDICATE_TYPED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.host_selection_retry_max_attempts",
        Tests(&[RESILIENCE_OTHER_HOST]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retriable_headers",
        Tests(&[RESILIENCE_RETRY_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.retriable_request_headers",
        Tests(&[RESILIENCE_RETRY_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.rate_limited_retry_back_off",
        Tests(&[RETRY_RATE_LIMITED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.per_try_idle_timeout",
        Tests(&[RESILIENCE_TIMEOUTS, IDLE_BODY]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RetryBackOff.base_interval",
        Tests(&[RETRY_BACK_OFF_CONFIGURED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RetryBackOff.max_interval",
        Tests(&[RETRY_BACK_OFF_CONFIGURED]),
    ),
    (
        "envoy.config.route.v3.HedgePolicy.hedge_on_per_try_timeout",
        Tests(&[RESILIENCE_TIMEOUTS, HEDGE]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff.reset_headers",
        Tests(&[RETRY_RATE_LIMITED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff.max_interval",
        Tests(&[RETRY_RATE_LIMITED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.ResetHeader.name",
        Tests(&[RETRY_RATE_LIMITED]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.ResetHeader.format",
        Tests(&[RETRY_RATE_LIMITED]),
    ),
    // Only a label: Envoy finds the predicate by `typed_config`; the proof sets it as Envoy requires.
    (
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate.name",
        Tests(&[RESILIENCE_OTHER_HOST]),
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate.typed_config",
        Tests(&[RESILIENCE_OTHER_HOST, ROUTE_HOST_PREDICATE_TYPED]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.scheme_redirect",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.https_redirect",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.host_redirect",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.port_redirect",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.path_redirect",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.prefix_rewrite",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.regex_rewrite",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.response_code",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.RedirectAction.strip_query",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.route.v3.DirectResponseAction.status",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.route.v3.DirectResponseAction.body",
        Tests(&[HTTP_ROUTES]),
    ),
];
