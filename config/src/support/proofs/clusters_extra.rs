//! Active health checking, consistent hashing (RING_HASH, MAGLEV, route `hash_policy`) and the typed
//! `load_balancing_policy`.
//!
//! `proofs.rs` says what an entry means. The differential tests run the same YAML in Envoy 1.40; the loader tests
//! prove the settings reach the model, and the component tests (`health_check.rs`, `hash_balancer.rs`,
//! `hash_policy.rs`) prove what the model's values do.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.cluster.v3.Cluster.health_checks",
        Tests(&[HC_DIFF, HC_TCP_GRPC]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.ring_hash_lb_config",
        Tests(&[HASH_DIFF, LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.maglev_lb_config",
        Tests(&[HASH_DIFF, LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.load_balancing_policy",
        Tests(&[HASH_DIFF, LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.OutlierDetection.successful_active_health_check_uneject_host",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.health_check_config",
        Tests(&[HC_TCP_GRPC, HC_LOADER]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig.port_value",
        Tests(&[HC_TCP_GRPC, HC_LOADER]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig.hostname",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig.address",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.timeout",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.interval",
        Tests(&[HC_DIFF, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.initial_jitter",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.interval_jitter",
        Tests(&[HC_LOADER, HC_JITTER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.interval_jitter_percent",
        Tests(&[HC_LOADER, HC_JITTER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.unhealthy_threshold",
        Tests(&[HC_DIFF, HC_TCP_GRPC, HC_THRESHOLDS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.healthy_threshold",
        Tests(&[HC_DIFF, HC_THRESHOLDS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.reuse_connection",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.no_traffic_interval",
        Tests(&[HC_DIFF, HC_LOADER, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.no_traffic_healthy_interval",
        Tests(&[HC_LOADER, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.unhealthy_interval",
        Tests(&[HC_LOADER, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.unhealthy_edge_interval",
        Tests(&[HC_LOADER, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.healthy_edge_interval",
        Tests(&[HC_LOADER, HC_INTERVALS]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.http_health_check",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.tcp_health_check",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.grpc_health_check",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.host",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.path",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.request_headers_to_add",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.request_headers_to_remove",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.expected_statuses",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.retriable_statuses",
        Tests(&[HC_DIFF]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.codec_client_type",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck.method",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.type.v3.Int64Range.start",
        Tests(&[HC_DIFF, HC_LOADER]),
    ),
    ("envoy.type.v3.Int64Range.end", Tests(&[HC_DIFF, HC_LOADER])),
    (
        "envoy.config.core.v3.HealthCheck.TcpHealthCheck.send",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.TcpHealthCheck.receive",
        Tests(&[HC_TCP_GRPC, HC_TCP_MATCH]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.Payload.text",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.Payload.binary",
        Tests(&[HC_LOADER]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.GrpcHealthCheck.service_name",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.core.v3.HealthCheck.GrpcHealthCheck.authority",
        Tests(&[HC_TCP_GRPC]),
    ),
    (
        "envoy.config.route.v3.RouteAction.hash_policy",
        Tests(&[HASH_DIFF]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.header",
        Tests(&[HASH_DIFF, HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.cookie",
        Tests(&[HASH_DIFF, HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.connection_properties",
        Tests(&[HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.query_parameter",
        Tests(&[HASH_DIFF, HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.terminal",
        Tests(&[HASH_DIFF, HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.Header.header_name",
        Tests(&[HASH_DIFF]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.Cookie.name",
        Tests(&[HASH_DIFF]),
    ),
    // Only a generated cookie (with `ttl`, refused) carries the path; reading one ignores it, as Envoy does.
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.Cookie.path",
        Tests(&[HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties.source_ip",
        Tests(&[HASH_INPUTS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter.name",
        Tests(&[HASH_DIFF]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig.minimum_ring_size",
        Tests(&[HASH_DIFF, HASH_RING]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig.maximum_ring_size",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig.hash_function",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.MaglevLbConfig.table_size",
        Tests(&[HASH_DIFF, HASH_MAGLEV]),
    ),
    (
        "envoy.config.cluster.v3.LoadBalancingPolicy.policies",
        Tests(&[HASH_DIFF, LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.LoadBalancingPolicy.Policy.typed_extension_config",
        Tests(&[HASH_DIFF, LB_TYPED_LOADER]),
    ),
    (
        "envoy.config.core.v3.TypedExtensionConfig.name",
        Tests(&[LB_TYPED_LOADER, TR_LOADER, FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.config.core.v3.TypedExtensionConfig.typed_config",
        Tests(&[
            HASH_DIFF,
            LB_TYPED_LOADER,
            TR_HTTP,
            TR_LOADER,
            FILTERS_COMPRESSOR,
        ]),
    ),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest.choice_count",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash.hash_function",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash.minimum_ring_size",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash.maximum_ring_size",
        Tests(&[LB_TYPED_LOADER]),
    ),
    (
        "envoy.extensions.load_balancing_policies.maglev.v3.Maglev.table_size",
        Tests(&[LB_TYPED_LOADER]),
    ),
];
