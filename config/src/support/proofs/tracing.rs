//! Tracing: the connection manager's `tracing` block and its providers.
//!
//! `proofs.rs` says what an entry means. The integration tests read spans back from real collectors (our OTLP
//! and HTTP receivers) and put real Envoy 1.40 in front (W3C and B3) or beside (sampling); the unit tests decide
//! and propagate as Envoy does; the loader test reads each field into the model.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.tracing",
        Tests(&[TR_TAGS, TR_W3C]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.client_sampling",
        Tests(&[TR_DECISION, TR_SAMPLING, TR_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.random_sampling",
        Tests(&[TR_SAMPLING, TR_DECISION, TR_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.overall_sampling",
        Tests(&[TR_DECISION, TR_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.max_path_tag_length",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.custom_tags",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.provider",
        Tests(&[TR_TAGS, TR_B3]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing.spawn_upstream_span",
        Tests(&[TR_TAGS, TR_ATTEMPT_SPANS]),
    ),
    (
        "envoy.config.route.v3.Route.decorator",
        Tests(&[TR_DECORATOR]),
    ),
    (
        "envoy.config.route.v3.Decorator.operation",
        Tests(&[TR_DECORATOR, TR_DECORATOR_LOADER]),
    ),
    (
        "envoy.config.route.v3.Decorator.propagate",
        Tests(&[TR_DECORATOR]),
    ),
    (
        "envoy.config.trace.v3.Tracing.Http.name",
        Tests(&[TR_LOADER]),
    ),
    (
        "envoy.config.trace.v3.Tracing.Http.typed_config",
        Tests(&[TR_TAGS, TR_B3]),
    ),
    (
        "envoy.config.trace.v3.OpenTelemetryConfig.grpc_service",
        Tests(&[TR_TAGS, TR_W3C]),
    ),
    (
        "envoy.config.trace.v3.OpenTelemetryConfig.http_service",
        Tests(&[TR_HTTP]),
    ),
    (
        "envoy.config.trace.v3.OpenTelemetryConfig.service_name",
        Tests(&[TR_TAGS, TR_HTTP]),
    ),
    (
        "envoy.config.trace.v3.OpenTelemetryConfig.resource_detectors",
        Tests(&[TR_HTTP]),
    ),
    // TypedExtensionConfig's fields: in clusters_extra.rs (load_balancing_policy uses it too).
    (
        "envoy.config.core.v3.HttpService.http_uri",
        Tests(&[TR_HTTP]),
    ),
    // HttpUri's fields: with ext_authz's, in http.rs.
    (
        "envoy.config.trace.v3.ZipkinConfig.collector_cluster",
        Tests(&[TR_B3]),
    ),
    (
        "envoy.config.trace.v3.ZipkinConfig.collector_endpoint",
        Tests(&[TR_B3]),
    ),
    (
        "envoy.config.trace.v3.ZipkinConfig.collector_endpoint_version",
        Tests(&[TR_B3, TR_LOADER]),
    ),
    (
        "envoy.config.trace.v3.ZipkinConfig.trace_id_128bit",
        Tests(&[TR_ZIPKIN, TR_LOADER]),
    ),
    (
        "envoy.config.trace.v3.ZipkinConfig.shared_span_context",
        Tests(&[TR_B3, TR_ZIPKIN]),
    ),
    (
        "envoy.config.trace.v3.ZipkinConfig.trace_context_option",
        Tests(&[TR_ZIPKIN, TR_LOADER]),
    ),
    (
        "envoy.config.trace.v3.DatadogConfig.collector_cluster",
        Tests(&[DD_DIFF]),
    ),
    (
        "envoy.config.trace.v3.DatadogConfig.service_name",
        Tests(&[DD_DIFF, DD_LOADER]),
    ),
    (
        "envoy.config.trace.v3.DatadogConfig.collector_hostname",
        Tests(&[DD_DIFF, DD_LOADER]),
    ),
    ("envoy.type.tracing.v3.CustomTag.tag", Tests(&[TR_TAGS])),
    ("envoy.type.tracing.v3.CustomTag.literal", Tests(&[TR_TAGS])),
    (
        "envoy.type.tracing.v3.CustomTag.environment",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.request_header",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.Literal.value",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.Environment.name",
        Tests(&[TR_TAGS, TR_LOADER]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.Environment.default_value",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.Header.name",
        Tests(&[TR_TAGS]),
    ),
    (
        "envoy.type.tracing.v3.CustomTag.Header.default_value",
        Tests(&[TR_TAGS, TR_LOADER]),
    ),
    // The router's `start_child_span` and the SkyWalking tracer.
    (
        "envoy.extensions.filters.http.router.v3.Router.start_child_span",
        Tests(&[TR_CHILD_SPAN, TR_SKY, TR_SKY_LOADER]),
    ),
    (
        "envoy.config.trace.v3.SkyWalkingConfig.grpc_service",
        Tests(&[TR_SKY, TR_SKY_LOADER, TR_SW8]),
    ),
    (
        "envoy.config.trace.v3.SkyWalkingConfig.client_config",
        Tests(&[TR_SKY, TR_SKY_LOADER]),
    ),
    (
        "envoy.config.trace.v3.ClientConfig.service_name",
        Tests(&[TR_SKY_LOADER, TR_SKY]),
    ),
    (
        "envoy.config.trace.v3.ClientConfig.instance_name",
        Tests(&[TR_SKY, TR_SKY_LOADER]),
    ),
    (
        "envoy.config.trace.v3.ClientConfig.backend_token",
        Tests(&[TR_SKY, TR_SKY_LOADER]),
    ),
    (
        "envoy.config.trace.v3.ClientConfig.max_cache_size",
        Tests(&[TR_SKY_CACHE, TR_SKY_LOADER]),
    ),
];
