//! The HTTP connection manager and its HTTP filters.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.codec_type",
        Tests(&[HCM_OPTIONS, CODEC_GUARD]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.stat_prefix",
        Tests(&[HTTP_STATS, ADMIN, RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.rds",
        Tests(&[LIVE_RDS, XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.route_config",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.http_filters",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.common_http_protocol_options",
        Tests(&[HCM_LIMITS, CONNECTION_IDLE]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.http2_protocol_options",
        Tests(&[HCM_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.server_name",
        Tests(&[HCM_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.stream_idle_timeout",
        Tests(&[HCM_LIMITS, STREAM_IDLE]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.request_timeout",
        Tests(&[HCM_LIMITS, REQUEST_TIMEOUT]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.request_headers_timeout",
        Tests(&[HTTP_SLOW_HEADERS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.drain_timeout",
        Tests(&[HCM_LIMITS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.max_request_headers_kb",
        Tests(&[HCM_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.generate_request_id",
        Tests(&[HCM_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.use_remote_address",
        Tests(&[HTTP_HEADERS, HCM_LIMITS, TRUSTED_HOPS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.xff_num_trusted_hops",
        Tests(&[HCM_LIMITS, TRUSTED_HOPS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.skip_xff_append",
        Tests(&[SKIP_XFF]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.upgrade_configs",
        Tests(&[HTTP_WEBSOCKET]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.normalize_path",
        Tests(&[HCM_LIMITS, PATH_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.merge_slashes",
        Tests(&[HCM_LIMITS, PATH_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.forward_client_cert_details",
        Tests(&[MTLS_IN, XFCC_SET, XFCC_APPEND]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.set_current_client_cert_details",
        Tests(&[MTLS_IN, HCM_XFCC]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails.subject",
        Tests(&[XFCC_SET]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails.cert",
        Tests(&[HCM_XFCC, XFCC_CERT_CHAIN]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails.chain",
        Tests(&[HCM_XFCC, XFCC_CERT_CHAIN]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails.dns",
        Tests(&[XFCC_SET]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails.uri",
        Tests(&[MTLS_IN, XFCC_APPEND]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds.config_source",
        Tests(&[LIVE_RDS, XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds.route_config_name",
        Tests(&[LIVE_RDS, XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.name",
        Tests(&[LABEL_MISPLACED, LABEL_REQUIRED]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig.upgrade_type",
        Tests(&[HTTP_WEBSOCKET]),
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig.enabled",
        Tests(&[HCM_OPTIONS]),
    ),
    (
        "envoy.extensions.filters.http.router.v3.Router.suppress_envoy_headers",
        Tests(&[ROUTER_HEADERS]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.stat_prefix",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.status",
        Tests(&[RESILIENCE_ROUTE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.token_bucket",
        Tests(&[RESILIENCE_RATE_LIMIT, RESILIENCE_ROUTE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.filter_enabled",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.filter_enforced",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.response_headers_to_add",
        Tests(&[RL_PER_CONNECTION]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.local_rate_limit_per_downstream_connection",
        Tests(&[RL_PER_CONNECTION]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.enable_x_ratelimit_headers",
        Tests(&[RESILIENCE_RATE_LIMIT_HEADERS]),
    ),
    (
        "envoy.type.v3.HttpStatus.code",
        Tests(&[RESILIENCE_ROUTE_RATE_LIMIT]),
    ),
    // Local rate limit descriptors and the rate limit actions that produce them.
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.descriptors",
        Tests(&[RL_GENERIC_KEY, RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.stage",
        Tests(&[RL_STAGES]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.vh_rate_limits",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.always_consume_default_token_bucket",
        Tests(&[RL_CONSUME_DEFAULT]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.max_dynamic_descriptors",
        Tests(&[RL_WILDCARD]),
    ),
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit.rate_limits",
        Tests(&[RL_STAGES, RL_WILDCARD]),
    ),
    (
        "envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor.entries",
        Tests(&[RL_GENERIC_KEY, RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor.token_bucket",
        Tests(&[RL_GENERIC_KEY]),
    ),
    (
        "envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry.key",
        Tests(&[RL_GENERIC_KEY, RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry.value",
        Tests(&[RL_REQUEST_HEADERS, RL_WILDCARD]),
    ),
    ("envoy.config.route.v3.RateLimit.stage", Tests(&[RL_STAGES])),
    (
        "envoy.config.route.v3.RateLimit.disable_key",
        Tests(&[RL_STAGES]),
    ),
    (
        "envoy.config.route.v3.RateLimit.actions",
        Tests(&[RL_GENERIC_KEY, RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.generic_key",
        Tests(&[RL_GENERIC_KEY]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.request_headers",
        Tests(&[RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.remote_address",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.header_value_match",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.destination_cluster",
        Tests(&[RL_STAGES]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.GenericKey.descriptor_value",
        Tests(&[RL_GENERIC_KEY]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.GenericKey.descriptor_key",
        Tests(&[RL_GENERIC_KEY]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.RequestHeaders.header_name",
        Tests(&[RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.RequestHeaders.descriptor_key",
        Tests(&[RL_REQUEST_HEADERS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.RequestHeaders.skip_if_absent",
        Tests(&[RL_STAGES]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.descriptor_value",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.descriptor_key",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.expect_match",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch.headers",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.VirtualHost.rate_limits",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.include_vh_rate_limits",
        Tests(&[RL_ACTIONS]),
    ),
    (
        "envoy.config.route.v3.RouteAction.rate_limits",
        Tests(&[RL_GENERIC_KEY, RL_ACTIONS]),
    ),
    // envoy.filters.http.compressor, health_check and buffer.
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.content_length",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.content_type",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.disable_on_etag_header",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.remove_accept_encoding_header",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.compressor_library",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.response_direction_config",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.choose_first",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig.common_config",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig.disable_on_etag_header",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig.remove_accept_encoding_header",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig.min_content_length",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig.content_type",
        Tests(&[FILTERS_COMPRESSOR_RESPONSE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute.disabled",
        Tests(&[FILTERS_COMPRESSOR_ROUTE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute.overrides",
        Tests(&[FILTERS_COMPRESSOR_ROUTE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.CompressorOverrides.response_direction_config",
        Tests(&[FILTERS_COMPRESSOR_ROUTE]),
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.ResponseDirectionOverrides.remove_accept_encoding_header",
        Tests(&[FILTERS_COMPRESSOR_ROUTE]),
    ),
    (
        "envoy.config.core.v3.TypedExtensionConfig.name",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.config.core.v3.TypedExtensionConfig.typed_config",
        Tests(&[FILTERS_COMPRESSOR]),
    ),
    (
        "envoy.extensions.compression.gzip.compressor.v3.Gzip.compression_level",
        Tests(&[FILTERS_ENCODER]),
    ),
    (
        "envoy.extensions.compression.brotli.compressor.v3.Brotli.quality",
        Tests(&[FILTERS_ENCODER]),
    ),
    (
        "envoy.extensions.compression.brotli.compressor.v3.Brotli.window_bits",
        Tests(&[FILTERS_ENCODER]),
    ),
    (
        "envoy.extensions.filters.http.health_check.v3.HealthCheck.pass_through_mode",
        Tests(&[FILTERS_HEALTH_CHECK]),
    ),
    (
        "envoy.extensions.filters.http.health_check.v3.HealthCheck.headers",
        Tests(&[FILTERS_HEALTH_CHECK]),
    ),
    (
        "envoy.extensions.filters.http.buffer.v3.Buffer.max_request_bytes",
        Tests(&[FILTERS_BUFFER]),
    ),
    // envoy.filters.http.fault.
    (
        "envoy.extensions.filters.http.fault.v3.HTTPFault.delay",
        Tests(&[FAULT_DIFF, FAULT_DELAY]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.HTTPFault.abort",
        Tests(&[FAULT_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.HTTPFault.max_active_faults",
        Tests(&[FAULT_DIFF, FAULT_MAX_ACTIVE]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.HTTPFault.headers",
        Tests(&[FAULT_DIFF]),
    ),
    (
        "envoy.extensions.filters.common.fault.v3.FaultDelay.fixed_delay",
        Tests(&[FAULT_DIFF, FAULT_DELAY]),
    ),
    (
        "envoy.extensions.filters.common.fault.v3.FaultDelay.header_delay",
        Tests(&[FAULT_DIFF, FAULT_HEADERS]),
    ),
    (
        "envoy.extensions.filters.common.fault.v3.FaultDelay.percentage",
        Tests(&[FAULT_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.FaultAbort.http_status",
        Tests(&[FAULT_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.FaultAbort.header_abort",
        Tests(&[FAULT_DIFF, FAULT_HEADERS]),
    ),
    (
        "envoy.extensions.filters.http.fault.v3.FaultAbort.percentage",
        Tests(&[FAULT_DIFF, FAULT_HEADERS]),
    ),
];
