//! Clusters, endpoints, circuit breakers, outlier detection and upstream HTTP options.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, NotYet, Tests};
use super::cited::*;

// Outrigger's auto_config speaks HTTP/1.1 (no ALPN choice of h2, which Envoy makes), so it is not acted on as Envoy
// does.
const AUTO_HTTP: &str = "auto_config (the upstream protocol chosen by ALPN; HTTP/1.1 is spoken)";

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.cluster.v3.Cluster.name",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.type",
        Tests(&[HTTP_CLUSTERS, ORIGINAL_DST]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.cleanup_interval",
        Tests(&[BP_CLEANUP_INTERVAL]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.connect_timeout",
        Tests(&[UP_CONNECT_TIMEOUT]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.lb_policy",
        Tests(&[HTTP_CLUSTERS, LB_RANDOM, LB_LEAST_REQUEST, ORIGINAL_DST]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.load_assignment",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.eds_cluster_config",
        Tests(&[XDS_SOTW, XDS_DELTA, XDS_EDS_FOLLOWS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.circuit_breakers",
        Tests(&[RETRY_BREAKER]),
    ),
    // The detector is tested on its own (the leaves below); no test yet ejects a host behind a cluster.
    (
        "envoy.config.cluster.v3.Cluster.outlier_detection",
        Tests(&[RESILIENCE_OUTLIER, RESILIENCE_NO_HEALTHY]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.typed_extension_protocol_options",
        Tests(&[GRPC_H2]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.transport_socket",
        Tests(&[MTLS_OUT]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.transport_socket_matches",
        Tests(&[MTLS_MATCHES]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.dns_lookup_family",
        NotYet("dns_lookup_family (both address families are used)"),
    ),
    (
        "envoy.config.cluster.v3.Cluster.dns_refresh_rate",
        Tests(&[DNS_REFRESH]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.respect_dns_ttl",
        NotYet("respect_dns_ttl"),
    ),
    (
        "envoy.config.cluster.v3.Cluster.http2_protocol_options",
        Tests(&[CLUSTER_PROTOCOLS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.http_protocol_options",
        Tests(&[CLUSTER_PROTOCOLS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.common_http_protocol_options",
        Tests(&[CLUSTER_PROTOCOLS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.least_request_lb_config",
        Tests(&[UP_CHOICE_COUNT]),
    ),
    // The panic threshold is tested on its own; no test yet sets it on a cluster.
    (
        "envoy.config.cluster.v3.Cluster.common_lb_config",
        Tests(&[RESILIENCE_NO_HEALTHY]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig.eds_config",
        Tests(&[XDS_SOTW, XDS_DELTA, XDS_EDS_FOLLOWS, XDS_WARMING]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig.service_name",
        Tests(&[XDS_SOTW, XDS_DELTA, XDS_EDS_FOLLOWS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.TransportSocketMatch.name",
        Tests(&[LABEL_KEPT]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.TransportSocketMatch.match",
        Tests(&[MTLS_MATCHES]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.TransportSocketMatch.transport_socket",
        Tests(&[MTLS_MATCHES]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.healthy_panic_threshold",
        Tests(&[RESILIENCE_NO_HEALTHY, PRIORITY_PANIC]),
    ),
    // Only 0s is accepted (the corpus has a 1s refused), and with it Envoy applies ejections at once, as we do.
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.update_merge_window",
        Tests(&[RESILIENCE_NO_HEALTHY, CORPUS]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig.choice_count",
        Tests(&[LB_LEAST_REQUEST, UP_CHOICE_COUNT]),
    ),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.cluster_name",
        Tests(&[LABEL_REQUIRED]),
    ),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.endpoints",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints.locality",
        Tests(&[UP_CONNECT_TIMEOUT, LOCALITY_DIFF]),
    ),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints.lb_endpoints",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints.load_balancing_weight",
        Tests(&[UP_CONNECT_TIMEOUT, LOCALITY_DIFF, LOCALITY_WEIGHTS]),
    ),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints.priority",
        Tests(&[RESILIENCE_PRIORITIES, PRIORITY_SPILL]),
    ),
    (
        "envoy.config.endpoint.v3.LbEndpoint.endpoint",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.endpoint.v3.LbEndpoint.health_status",
        Tests(&[RESILIENCE_PRIORITIES]),
    ),
    (
        "envoy.config.endpoint.v3.LbEndpoint.metadata",
        Tests(&[MTLS_MATCHES]),
    ),
    (
        "envoy.config.endpoint.v3.LbEndpoint.load_balancing_weight",
        Tests(&[LB_ROUND_ROBIN, LB_RANDOM]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.address",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.hostname",
        NotYet("using an endpoint's hostname (auto_host_rewrite sends DNS names only)"),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.thresholds",
        Tests(&[RETRY_BREAKER]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.priority",
        Tests(&[UP_BREAKER_PRIORITY]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_connections",
        Tests(&[RESILIENCE_PENDING, TCP_MAX_CONNECTIONS, BREAKER_CONNECTIONS]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_pending_requests",
        Tests(&[RESILIENCE_PENDING, BREAKER_CONNECTIONS]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_requests",
        Tests(&[RESILIENCE_MAX_REQUESTS, BREAKER_REQUESTS]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_retries",
        Tests(&[RESILIENCE_NO_RETRIES, RETRY_BREAKER, BREAKER_RETRIES]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.retry_budget",
        Tests(&[RESILIENCE_BUDGET, BREAKER_BUDGET]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.track_remaining",
        Tests(&[RESILIENCE_MAX_REQUESTS, BREAKER_GAUGES]),
    ),
    // 100 % with one request in flight allows its retry; Envoy's default 20 % would not.
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget.budget_percent",
        Tests(&[UP_BREAKER_PRIORITY]),
    ),
    (
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget.min_retry_concurrency",
        Tests(&[RESILIENCE_BUDGET, BREAKER_BUDGET]),
    ),
    // Outlier detection: the detector's tests, each setting the field; the ones they leave at Envoy's default
    // are not proven.
    (
        "envoy.config.cluster.v3.OutlierDetection.consecutive_5xx",
        Tests(&[RESILIENCE_OUTLIER, OUTLIER_GATEWAY, OUTLIER_ZERO]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.interval",
        Tests(&[RESILIENCE_FAILURE_PERCENTAGE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.base_ejection_time",
        Tests(&[OUTLIER_GROWS, OUTLIER_MAX_BELOW_BASE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.max_ejection_percent",
        Tests(&[RESILIENCE_OUTLIER, OUTLIER_CAP]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_consecutive_5xx",
        Tests(&[OUTLIER_NO_ENFORCING, OUTLIER_ROLL]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_success_rate",
        Tests(&[UP_OUTLIER_ANALYSES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.success_rate_minimum_hosts",
        Tests(&[OUTLIER_FAILURE_PERCENTAGE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.success_rate_request_volume",
        Tests(&[UP_OUTLIER_ANALYSES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.success_rate_stdev_factor",
        Tests(&[OUTLIER_STDEV]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.consecutive_gateway_failure",
        Tests(&[UP_OUTLIER_GATEWAY]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_consecutive_gateway_failure",
        Tests(&[OUTLIER_ZERO]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.split_external_local_origin_errors",
        Tests(&[OUTLIER_SPLIT]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.consecutive_local_origin_failure",
        Tests(&[OUTLIER_SPLIT_RATES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_consecutive_local_origin_failure",
        Tests(&[UP_OUTLIER_GATEWAY]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.failure_percentage_threshold",
        Tests(&[UP_OUTLIER_ANALYSES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_failure_percentage",
        Tests(&[RESILIENCE_FAILURE_PERCENTAGE, OUTLIER_FAILURE_PERCENTAGE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.failure_percentage_minimum_hosts",
        Tests(&[RESILIENCE_FAILURE_PERCENTAGE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.failure_percentage_request_volume",
        Tests(&[RESILIENCE_FAILURE_PERCENTAGE]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.max_ejection_time",
        Tests(&[OUTLIER_GROWS, OUTLIER_MAX_BELOW_BASE]),
    ),
    // The detector's own tests prove what these do; `every_configured_setting_reaches_the_detector` that the
    // cluster's values reach it.
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_local_origin_success_rate",
        Tests(&[OUTLIER_SETTINGS_WIRED, OUTLIER_SPLIT_RATES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.enforcing_failure_percentage_local_origin",
        Tests(&[OUTLIER_SETTINGS_WIRED, OUTLIER_SPLIT_RATES]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.max_ejection_time_jitter",
        Tests(&[OUTLIER_SETTINGS_WIRED, OUTLIER_JITTER]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.always_eject_one_host",
        Tests(&[OUTLIER_SETTINGS_WIRED, OUTLIER_CAP]),
    ),
    // Upstream HTTP protocol options.
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.common_http_protocol_options",
        Tests(&[CLUSTER_PROTOCOLS]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.explicit_http_config",
        Tests(&[GRPC_H2]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.use_downstream_protocol_config",
        Tests(&[MESH]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.auto_config",
        NotYet(AUTO_HTTP),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig.http_protocol_options",
        Tests(&[CLUSTER_PROTOCOLS]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig.http2_protocol_options",
        Tests(&[GRPC_H2]),
    ),
    // The mesh carries HTTP/1.1 and gRPC (h2) through clusters that set both.
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig.http_protocol_options",
        Tests(&[MESH]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig.http2_protocol_options",
        Tests(&[MESH]),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig.http_protocol_options",
        NotYet(AUTO_HTTP),
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig.http2_protocol_options",
        NotYet(AUTO_HTTP),
    ),
];
