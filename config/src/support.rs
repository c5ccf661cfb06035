//! What Outrigger implements of Envoy's API, field by field.
//!
//! Envoy refuses fields it does not know; we also refuse fields it knows and we do not implement, so a config
//! never silently behaves differently from Envoy. A field we can ignore without changing behaviour (an access
//! log, for instance) is accepted with a warning. Any message not listed here has no supported fields.
//!
//! Every Supported field also has an entry in `support/proofs.rs`: the tests that prove it acts, or what is not
//! proven yet (the loader warns when such a field is set). A unit test keeps the two tables in step.

mod proofs;
mod proxyless;
mod security;

#[cfg(test)]
mod label_checks;

/// One message: the fields the converter reads, and the ones it ignores (with the reason a user sees).
pub struct MessageSupport {
    pub message: &'static str,
    /// Space-separated field names.
    pub fields: &'static str,
    pub ignored: &'static [(&'static str, &'static str)],
}

const ACCESS_LOG: &str = "requests to the admin API are not logged; traffic is unaffected";
const TUNING: &str = "a tuning knob Outrigger sizes itself; traffic is unaffected";
const ENCODER: &str =
    "tunes the encoder: the compressed bytes differ, the body a client decodes is the same";
const CORS_POLICY_FIELDS: &str = "allow_origin_string_match allow_methods allow_headers expose_headers max_age \
     allow_credentials filter_enabled shadow_enabled allow_private_network_access forward_not_matching_preflights";
const NOT_IN_ENVOY: &str =
    "not implemented in Envoy 1.40 either, which accepts and ignores it; traffic is unaffected";
const METADATA: &str = "metadata here is not read by Outrigger; traffic is unaffected";

const fn msg(message: &'static str, fields: &'static str) -> MessageSupport {
    MessageSupport {
        message,
        fields,
        ignored: &[],
    }
}

const fn msg_ignoring(
    message: &'static str,
    fields: &'static str,
    ignored: &'static [(&'static str, &'static str)],
) -> MessageSupport {
    MessageSupport {
        message,
        fields,
        ignored,
    }
}

/// `typed_config` types we implement. Anything else in an `Any` is refused, naming the type.
pub const SUPPORTED_TYPES: &[&str] = &[
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.filters.network.rbac.v3.RBAC",
    "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit",
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
    "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
    "envoy.extensions.filters.udp.udp_proxy.v3.Route",
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
    "envoy.config.rbac.v3.Action",
    "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.SourcePortInput",
    "envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput",
    "envoy.extensions.matching.common_inputs.ssl.v3.UriSanInput",
    "envoy.extensions.matching.common_inputs.ssl.v3.DnsSanInput",
    "envoy.extensions.matching.input_matchers.ip.v3.Ip",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
    "envoy.extensions.filters.http.compressor.v3.Compressor",
    "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute",
    "envoy.extensions.compression.gzip.compressor.v3.Gzip",
    "envoy.extensions.compression.brotli.compressor.v3.Brotli",
    "envoy.extensions.filters.http.health_check.v3.HealthCheck",
    "envoy.extensions.filters.http.buffer.v3.Buffer",
    "envoy.extensions.filters.http.cache.v3.CacheConfig",
    "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.filters.http.cors.v3.CorsPolicy",
    "envoy.extensions.filters.http.csrf.v3.CsrfPolicy",
    "envoy.extensions.filters.http.decompressor.v3.Decompressor",
    "envoy.extensions.compression.gzip.decompressor.v3.Gzip",
    "envoy.extensions.compression.brotli.decompressor.v3.Brotli",
    "envoy.extensions.compression.zstd.decompressor.v3.Zstd",
    "envoy.extensions.compression.zstd.compressor.v3.Zstd",
    "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config",
    "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
    "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
    "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
    "envoy.config.trace.v3.OpenTelemetryConfig",
    "envoy.config.trace.v3.ZipkinConfig",
    "envoy.config.trace.v3.DatadogConfig",
    "envoy.config.trace.v3.SkyWalkingConfig",
    "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig",
    "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
    "envoy.extensions.load_balancing_policies.random.v3.Random",
    "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
    "envoy.extensions.load_balancing_policies.maglev.v3.Maglev",
];

/// The table, less the security section (`support/security.rs`); `messages()` walks both.
const MESSAGES: &[MessageSupport] = &[
    // Bootstrap and core.
    msg_ignoring(
        "envoy.config.bootstrap.v3.Bootstrap",
        "node static_resources dynamic_resources admin overload_manager cluster_manager",
        &[
            (
                "layered_runtime",
                "runtime layers are not read; every runtime key takes its default",
            ),
            ("stats_config", "stats tags are fixed to Envoy's defaults"),
            ("stats_flush_interval", "statistics are computed on scrape"),
            ("watchdogs", "Outrigger has no watchdog"),
        ],
    ),
    msg(
        "envoy.config.bootstrap.v3.ClusterManager",
        "load_stats_config",
    ),
    msg(
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources",
        "listeners clusters secrets",
    ),
    msg(
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        "lds_config cds_config ads_config",
    ),
    msg_ignoring(
        "envoy.config.bootstrap.v3.Admin",
        "address",
        &[
            ("access_log", ACCESS_LOG),
            ("access_log_path", ACCESS_LOG),
            ("profile_path", "Outrigger has no CPU profiler"),
        ],
    ),
    msg(
        "envoy.config.core.v3.Node",
        "id cluster metadata locality user_agent_name",
    ),
    msg("envoy.config.core.v3.Locality", "region zone sub_zone"),
    msg("envoy.config.core.v3.Address", "socket_address"),
    msg(
        "envoy.config.core.v3.SocketAddress",
        "protocol address port_value ipv4_compat",
    ),
    msg(
        "envoy.config.core.v3.ConfigSource",
        "ads api_config_source resource_api_version initial_fetch_timeout",
    ),
    msg(
        "envoy.config.core.v3.ApiConfigSource",
        "api_type transport_api_version grpc_services set_node_on_first_message_only",
    ),
    msg("envoy.config.core.v3.GrpcService", "envoy_grpc timeout"),
    msg(
        "envoy.config.core.v3.GrpcService.EnvoyGrpc",
        "cluster_name authority",
    ),
    msg("envoy.config.core.v3.TransportSocket", "name typed_config"),
    msg(
        "envoy.config.core.v3.HeaderValueOption",
        "header append append_action keep_empty_value",
    ),
    msg("envoy.config.core.v3.HeaderValue", "key value"),
    msg(
        "envoy.config.core.v3.DataSource",
        "filename inline_bytes inline_string environment_variable",
    ),
    // `runtime_key` is accepted: with no runtime layers (see Bootstrap) it always yields `default_value`.
    msg(
        "envoy.config.core.v3.RuntimeFractionalPercent",
        "default_value runtime_key",
    ),
    msg("envoy.type.v3.FractionalPercent", "numerator denominator"),
    msg("envoy.type.v3.Percent", "value"),
    msg(
        "envoy.type.v3.TokenBucket",
        "max_tokens tokens_per_fill fill_interval",
    ),
    msg("envoy.config.core.v3.Metadata", "filter_metadata"),
    msg(
        "envoy.config.core.v3.HttpProtocolOptions",
        "idle_timeout max_connection_duration max_headers_count max_requests_per_connection",
    ),
    msg(
        "envoy.config.core.v3.Http2ProtocolOptions",
        "max_concurrent_streams initial_stream_window_size initial_connection_window_size \
         connection_keepalive",
    ),
    msg("envoy.config.core.v3.KeepaliveSettings", "interval timeout"),
    msg(
        "envoy.config.core.v3.CidrRange",
        "address_prefix prefix_len",
    ),
    // Matchers.
    msg(
        "envoy.type.matcher.v3.StringMatcher",
        "exact prefix suffix safe_regex contains ignore_case",
    ),
    msg_ignoring(
        "envoy.type.matcher.v3.RegexMatcher",
        "regex",
        &[("google_re2", "RE2 is the only regex engine")],
    ),
    msg(
        "envoy.type.matcher.v3.RegexMatchAndSubstitute",
        "pattern substitution",
    ),
    // Listeners.
    msg_ignoring(
        "envoy.config.listener.v3.Listener",
        "name address traffic_direction bind_to_port use_original_dst listener_filters listener_filters_timeout \
         continue_on_listener_filters_timeout filter_chains default_filter_chain stat_prefix \
         per_connection_buffer_limit_bytes access_log ignore_global_conn_limit udp_listener_config",
        &[
            ("tcp_backlog_size", TUNING),
            ("enable_reuse_port", TUNING),
            ("metadata", METADATA),
        ],
    ),
    msg(
        "envoy.config.listener.v3.ListenerFilter",
        "name typed_config",
    ),
    msg_ignoring(
        "envoy.config.listener.v3.FilterChain",
        "filter_chain_match filters transport_socket name",
        &[("metadata", METADATA)],
    ),
    msg(
        "envoy.config.listener.v3.FilterChainMatch",
        "destination_port prefix_ranges direct_source_prefix_ranges source_type source_prefix_ranges source_ports \
         server_names transport_protocol application_protocols",
    ),
    msg("envoy.config.listener.v3.Filter", "name typed_config"),
    // UDP listeners and udp_proxy (`convert/udp_proxy.rs`): matching on inputs, session filters, hashing,
    // tunnelling, access logs and the original source address are refused by name.
    msg(
        "envoy.config.listener.v3.UdpListenerConfig",
        "downstream_socket_config",
    ),
    msg(
        "envoy.config.core.v3.UdpSocketConfig",
        "max_rx_datagram_size prefer_gro",
    ),
    msg(
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
        "stat_prefix cluster matcher idle_timeout use_per_packet_load_balancing upstream_socket_config",
    ),
    msg("envoy.extensions.filters.udp.udp_proxy.v3.Route", "cluster"),
    // HTTP connection manager and HTTP filters.
    msg_ignoring(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "codec_type stat_prefix rds route_config http_filters common_http_protocol_options http2_protocol_options \
         server_name stream_idle_timeout request_timeout request_headers_timeout drain_timeout max_request_headers_kb \
         generate_request_id use_remote_address xff_num_trusted_hops skip_xff_append upgrade_configs normalize_path \
         merge_slashes forward_client_cert_details set_current_client_cert_details access_log tracing \
         add_user_agent",
        &[],
    ),
    // Tracing (`convert/tracing.rs`).
    msg(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing",
        "client_sampling random_sampling overall_sampling max_path_tag_length custom_tags provider \
         spawn_upstream_span",
    ),
    msg("envoy.config.trace.v3.Tracing.Http", "name typed_config"),
    msg(
        "envoy.config.trace.v3.OpenTelemetryConfig",
        "grpc_service http_service service_name resource_detectors",
    ),
    msg(
        "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig",
        "",
    ),
    // envoy.config.core.v3.TypedExtensionConfig: with the cluster's load_balancing_policy below.
    msg("envoy.config.core.v3.HttpService", "http_uri"),
    // envoy.config.core.v3.HttpUri: with ext_authz's HttpService below.
    msg(
        "envoy.config.trace.v3.ZipkinConfig",
        "collector_cluster collector_endpoint trace_id_128bit shared_span_context collector_endpoint_version \
         trace_context_option",
    ),
    msg(
        "envoy.config.trace.v3.DatadogConfig",
        "collector_cluster service_name collector_hostname",
    ),
    msg(
        "envoy.config.trace.v3.SkyWalkingConfig",
        "grpc_service client_config",
    ),
    msg(
        "envoy.config.trace.v3.ClientConfig",
        "service_name instance_name backend_token max_cache_size",
    ),
    msg(
        "envoy.type.tracing.v3.CustomTag",
        "tag literal environment request_header",
    ),
    msg("envoy.type.tracing.v3.CustomTag.Literal", "value"),
    msg(
        "envoy.type.tracing.v3.CustomTag.Environment",
        "name default_value",
    ),
    msg(
        "envoy.type.tracing.v3.CustomTag.Header",
        "name default_value",
    ),
    msg(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails",
        "subject cert chain dns uri",
    ),
    msg(
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds",
        "config_source route_config_name",
    ),
    msg(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        "name typed_config",
    ),
    msg(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig",
        "upgrade_type enabled",
    ),
    msg(
        "envoy.extensions.filters.http.router.v3.Router",
        "suppress_envoy_headers start_child_span",
    ),
    msg(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix status token_bucket filter_enabled filter_enforced response_headers_to_add \
         local_rate_limit_per_downstream_connection enable_x_ratelimit_headers descriptors stage vh_rate_limits \
         always_consume_default_token_bucket max_dynamic_descriptors rate_limits",
    ),
    msg(
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "delay abort max_active_faults headers",
    ),
    // envoy.filters.http.ext_authz with an HTTP or a gRPC service.
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "http_service grpc_service transport_api_version failure_mode_allow failure_mode_allow_header_add \
         status_on_error with_request_body",
    ),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.BufferSettings",
        "max_request_bytes allow_partial_message pack_as_bytes",
    ),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.CheckSettings",
        "context_extensions",
    ),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.HttpService",
        "server_uri path_prefix authorization_request authorization_response",
    ),
    msg("envoy.config.core.v3.HttpUri", "uri cluster timeout"),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest",
        "allowed_headers",
    ),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse",
        "allowed_upstream_headers allowed_client_headers",
    ),
    msg("envoy.type.matcher.v3.ListStringMatcher", "patterns"),
    msg(
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
        "disabled check_settings",
    ),
    // envoy.filters.http.compressor, health_check, buffer (`convert/http/compressor.rs`, `health_check.rs`).
    msg(
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        "content_length content_type disable_on_etag_header remove_accept_encoding_header compressor_library \
         response_direction_config choose_first",
    ),
    msg(
        "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig",
        "common_config disable_on_etag_header remove_accept_encoding_header",
    ),
    msg(
        "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig",
        "min_content_length content_type",
    ),
    // envoy.config.core.v3.TypedExtensionConfig (compressor_library): with load_balancing_policy below.
    msg(
        "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute",
        "disabled overrides",
    ),
    msg(
        "envoy.extensions.filters.http.compressor.v3.CompressorOverrides",
        "response_direction_config",
    ),
    msg(
        "envoy.extensions.filters.http.compressor.v3.ResponseDirectionOverrides",
        "remove_accept_encoding_header",
    ),
    msg_ignoring(
        "envoy.extensions.compression.gzip.compressor.v3.Gzip",
        "compression_level",
        &[
            ("memory_level", ENCODER),
            ("window_bits", ENCODER),
            ("compression_strategy", ENCODER),
            ("chunk_size", ENCODER),
        ],
    ),
    msg_ignoring(
        "envoy.extensions.compression.brotli.compressor.v3.Brotli",
        "quality window_bits",
        &[
            ("encoder_mode", ENCODER),
            ("input_block_bits", ENCODER),
            ("chunk_size", ENCODER),
            ("disable_literal_context_modeling", ENCODER),
        ],
    ),
    msg(
        "envoy.extensions.filters.http.health_check.v3.HealthCheck",
        "pass_through_mode headers",
    ),
    msg(
        "envoy.extensions.filters.http.buffer.v3.Buffer",
        "max_request_bytes",
    ),
    // envoy.filters.http.cache (`convert/http/cache.rs`) over the in-memory store.
    msg_ignoring(
        "envoy.extensions.filters.http.cache.v3.CacheConfig",
        "typed_config disabled allowed_vary_headers ignore_request_cache_control_header",
        &[
            ("key_creator_params", NOT_IN_ENVOY),
            ("max_body_bytes", NOT_IN_ENVOY),
        ],
    ),
    msg(
        "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig",
        "",
    ),
    // envoy.filters.http.csrf (`convert/http/csrf.rs`): the filter's config and its per-route form alike.
    msg(
        "envoy.extensions.filters.http.csrf.v3.CsrfPolicy",
        "filter_enabled shadow_enabled additional_origins",
    ),
    // envoy.filters.http.cors (`convert/http/cors.rs`); the deprecated route form has the same fields.
    msg("envoy.extensions.filters.http.cors.v3.Cors", ""),
    msg(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        CORS_POLICY_FIELDS,
    ),
    msg("envoy.config.route.v3.CorsPolicy", CORS_POLICY_FIELDS),
    // envoy.filters.http.decompressor, zstd, grpc_http1_bridge (`convert/http/decompressor.rs`, `compressor.rs`).
    msg(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor",
        "decompressor_library request_direction_config response_direction_config",
    ),
    msg(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.CommonDirectionConfig",
        "enabled ignore_no_transform_header",
    ),
    msg(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.RequestDirectionConfig",
        "common_config advertise_accept_encoding",
    ),
    msg(
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.ResponseDirectionConfig",
        "common_config",
    ),
    msg(
        "envoy.extensions.compression.gzip.decompressor.v3.Gzip",
        "window_bits chunk_size max_inflate_ratio",
    ),
    msg_ignoring(
        "envoy.extensions.compression.brotli.decompressor.v3.Brotli",
        "chunk_size",
        &[(
            "disable_ring_buffer_reallocation",
            "a memory knob of the decoder; the decoded bytes are the same",
        )],
    ),
    msg(
        "envoy.extensions.compression.zstd.decompressor.v3.Zstd",
        "chunk_size",
    ),
    msg_ignoring(
        "envoy.extensions.compression.zstd.compressor.v3.Zstd",
        "compression_level enable_checksum strategy",
        &[("chunk_size", ENCODER)],
    ),
    msg(
        "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config",
        "upgrade_protobuf_to_grpc ignore_query_parameters",
    ),
    msg(
        "envoy.extensions.filters.common.fault.v3.FaultDelay",
        "fixed_delay header_delay percentage",
    ),
    msg(
        "envoy.extensions.filters.http.fault.v3.FaultAbort",
        "http_status header_abort percentage",
    ),
    msg(
        "envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor",
        "entries token_bucket",
    ),
    msg(
        "envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry",
        "key value",
    ),
    // Rate limit actions (routes, virtual hosts, the local rate limit filter).
    msg(
        "envoy.config.route.v3.RateLimit",
        "stage disable_key actions",
    ),
    msg(
        "envoy.config.route.v3.RateLimit.Action",
        "generic_key request_headers remote_address header_value_match destination_cluster",
    ),
    msg(
        "envoy.config.route.v3.RateLimit.Action.GenericKey",
        "descriptor_value descriptor_key",
    ),
    msg(
        "envoy.config.route.v3.RateLimit.Action.RequestHeaders",
        "header_name descriptor_key skip_if_absent",
    ),
    msg("envoy.config.route.v3.RateLimit.Action.RemoteAddress", ""),
    msg(
        "envoy.config.route.v3.RateLimit.Action.DestinationCluster",
        "",
    ),
    msg(
        "envoy.config.route.v3.RateLimit.Action.HeaderValueMatch",
        "descriptor_value descriptor_key expect_match headers",
    ),
    msg("envoy.type.v3.HttpStatus", "code"),
    // Routes.
    msg(
        "envoy.config.route.v3.RouteConfiguration",
        "name virtual_hosts request_headers_to_add request_headers_to_remove response_headers_to_add \
         response_headers_to_remove validate_clusters",
    ),
    msg(
        "envoy.config.route.v3.VirtualHost",
        "name domains routes request_headers_to_add request_headers_to_remove response_headers_to_add \
         response_headers_to_remove retry_policy include_request_attempt_count include_attempt_count_in_response \
         request_body_buffer_limit per_request_buffer_limit_bytes hedge_policy rate_limits typed_per_filter_config cors",
    ),
    msg_ignoring(
        "envoy.config.route.v3.Route",
        "name match route redirect direct_response request_headers_to_add request_headers_to_remove \
         response_headers_to_add response_headers_to_remove typed_per_filter_config request_body_buffer_limit \
         per_request_buffer_limit_bytes decorator",
        &[("metadata", METADATA)],
    ),
    msg("envoy.config.route.v3.Decorator", "operation propagate"),
    msg(
        "envoy.config.route.v3.RouteMatch",
        "prefix path safe_regex path_separated_prefix case_sensitive headers query_parameters grpc",
    ),
    msg("envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions", ""),
    msg(
        "envoy.config.route.v3.HeaderMatcher",
        "name exact_match safe_regex_match present_match prefix_match suffix_match contains_match string_match \
         invert_match treat_missing_header_as_empty",
    ),
    msg(
        "envoy.config.route.v3.QueryParameterMatcher",
        "name string_match present_match",
    ),
    msg_ignoring(
        "envoy.config.route.v3.RouteAction",
        "cluster cluster_header weighted_clusters prefix_rewrite regex_rewrite host_rewrite_literal auto_host_rewrite \
         timeout idle_timeout retry_policy hedge_policy rate_limits include_vh_rate_limits upgrade_configs hash_policy \
         request_mirror_policies cors",
        &[],
    ),
    // `trace_sampled` is refused by name: the mirror gets no span of its own (http/mirror.rs).
    msg(
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy",
        "cluster cluster_header runtime_fraction",
    ),
    // `cookie.ttl` (generating the cookie), `header.regex_rewrite` and `filter_state` are refused by name.
    msg(
        "envoy.config.route.v3.RouteAction.HashPolicy",
        "header cookie connection_properties query_parameter terminal",
    ),
    msg(
        "envoy.config.route.v3.RouteAction.HashPolicy.Header",
        "header_name",
    ),
    msg(
        "envoy.config.route.v3.RouteAction.HashPolicy.Cookie",
        "name path",
    ),
    msg(
        "envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties",
        "source_ip",
    ),
    msg(
        "envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter",
        "name",
    ),
    msg(
        "envoy.config.route.v3.RouteAction.UpgradeConfig",
        "upgrade_type enabled",
    ),
    msg_ignoring(
        "envoy.config.route.v3.WeightedCluster",
        "clusters total_weight",
        &[(
            "runtime_key_prefix",
            "runtime layers are not read; the configured weights apply",
        )],
    ),
    msg(
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        "name weight request_headers_to_add request_headers_to_remove response_headers_to_add response_headers_to_remove",
    ),
    msg(
        "envoy.config.route.v3.RetryPolicy",
        "retry_on num_retries per_try_timeout retry_back_off retriable_status_codes retry_host_predicate \
         host_selection_retry_max_attempts retriable_headers retriable_request_headers rate_limited_retry_back_off \
         per_try_idle_timeout",
    ),
    msg(
        "envoy.config.route.v3.RetryPolicy.RetryBackOff",
        "base_interval max_interval",
    ),
    msg(
        "envoy.config.route.v3.HedgePolicy",
        "hedge_on_per_try_timeout",
    ),
    msg(
        "envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff",
        "reset_headers max_interval",
    ),
    msg(
        "envoy.config.route.v3.RetryPolicy.ResetHeader",
        "name format",
    ),
    msg(
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate",
        "name typed_config",
    ),
    msg(
        "envoy.config.route.v3.RedirectAction",
        "scheme_redirect https_redirect host_redirect port_redirect path_redirect prefix_rewrite regex_rewrite \
         response_code strip_query",
    ),
    msg("envoy.config.route.v3.DirectResponseAction", "status body"),
    // TCP proxy.
    msg_ignoring(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix cluster weighted_clusters idle_timeout max_connect_attempts access_log",
        &[(
            "access_log_options",
            "periodic access log lines are not written; the line at the end of the connection is",
        )],
    ),
    msg(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster",
        "clusters",
    ),
    msg(
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight",
        "name weight",
    ),
    // Access logs (`convert/access_log.rs`).
    msg(
        "envoy.config.accesslog.v3.AccessLog",
        "name filter typed_config",
    ),
    msg(
        "envoy.config.accesslog.v3.AccessLogFilter",
        "status_code_filter duration_filter not_health_check_filter runtime_filter and_filter or_filter \
         response_flag_filter",
    ),
    msg("envoy.config.accesslog.v3.StatusCodeFilter", "comparison"),
    msg("envoy.config.accesslog.v3.DurationFilter", "comparison"),
    // `runtime_key` is accepted: with no runtime layers it always yields `default_value`.
    msg("envoy.config.accesslog.v3.ComparisonFilter", "op value"),
    msg(
        "envoy.config.core.v3.RuntimeUInt32",
        "default_value runtime_key",
    ),
    msg("envoy.config.accesslog.v3.NotHealthCheckFilter", ""),
    msg(
        "envoy.config.accesslog.v3.RuntimeFilter",
        "runtime_key percent_sampled use_independent_randomness",
    ),
    msg("envoy.config.accesslog.v3.AndFilter", "filters"),
    msg("envoy.config.accesslog.v3.OrFilter", "filters"),
    msg("envoy.config.accesslog.v3.ResponseFlagFilter", "flags"),
    msg(
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path log_format format",
    ),
    msg(
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format",
    ),
    msg(
        "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
        "log_format",
    ),
    msg(
        "envoy.config.core.v3.SubstitutionFormatString",
        "text_format_source json_format text_format",
    ),
    // Clusters and endpoints.
    msg_ignoring(
        "envoy.config.cluster.v3.Cluster",
        "name type connect_timeout lb_policy load_assignment eds_cluster_config circuit_breakers outlier_detection \
         typed_extension_protocol_options transport_socket transport_socket_matches dns_lookup_family \
         dns_refresh_rate respect_dns_ttl http2_protocol_options http_protocol_options \
         common_http_protocol_options least_request_lb_config common_lb_config cleanup_interval health_checks \
         ring_hash_lb_config maglev_lb_config load_balancing_policy",
        &[
            ("per_connection_buffer_limit_bytes", TUNING),
            ("alt_stat_name", "statistics use the cluster name"),
            ("metadata", METADATA),
        ],
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig",
        "eds_config service_name",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.TransportSocketMatch",
        "name match transport_socket",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        "healthy_panic_threshold update_merge_window locality_weighted_lb_config",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig",
        "",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        "choice_count",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.RingHashLbConfig",
        "minimum_ring_size maximum_ring_size hash_function",
    ),
    msg(
        "envoy.config.cluster.v3.Cluster.MaglevLbConfig",
        "table_size",
    ),
    msg("envoy.config.cluster.v3.LoadBalancingPolicy", "policies"),
    msg(
        "envoy.config.cluster.v3.LoadBalancingPolicy.Policy",
        "typed_extension_config",
    ),
    msg(
        "envoy.config.core.v3.TypedExtensionConfig",
        "name typed_config",
    ),
    msg(
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
        "",
    ),
    msg(
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "choice_count",
    ),
    msg(
        "envoy.extensions.load_balancing_policies.random.v3.Random",
        "",
    ),
    msg(
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash",
        "hash_function minimum_ring_size maximum_ring_size",
    ),
    msg(
        "envoy.extensions.load_balancing_policies.maglev.v3.Maglev",
        "table_size",
    ),
    // Active health checking (`upstream/health_check*.rs`).
    msg_ignoring(
        "envoy.config.core.v3.HealthCheck",
        "timeout interval initial_jitter interval_jitter interval_jitter_percent unhealthy_threshold \
         healthy_threshold reuse_connection no_traffic_interval no_traffic_healthy_interval unhealthy_interval \
         unhealthy_edge_interval healthy_edge_interval http_health_check tcp_health_check grpc_health_check",
        &[
            (
                "always_log_health_check_failures",
                "health check events are not logged; a host's change of health is (at info)",
            ),
            (
                "always_log_health_check_success",
                "health check events are not logged; a host's change of health is (at info)",
            ),
        ],
    ),
    msg(
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        "host path request_headers_to_add request_headers_to_remove expected_statuses retriable_statuses \
         codec_client_type method",
    ),
    msg("envoy.type.v3.Int64Range", "start end"),
    msg(
        "envoy.config.core.v3.HealthCheck.TcpHealthCheck",
        "send receive",
    ),
    msg("envoy.config.core.v3.HealthCheck.Payload", "text binary"),
    msg(
        "envoy.config.core.v3.HealthCheck.GrpcHealthCheck",
        "service_name authority",
    ),
    msg(
        "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig",
        "port_value hostname address",
    ),
    msg(
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name endpoints policy",
    ),
    msg(
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy",
        "overprovisioning_factor",
    ),
    msg(
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        "locality lb_endpoints load_balancing_weight priority",
    ),
    msg(
        "envoy.config.endpoint.v3.LbEndpoint",
        "endpoint health_status metadata load_balancing_weight",
    ),
    msg(
        "envoy.config.endpoint.v3.Endpoint",
        "address hostname health_check_config",
    ),
    msg("envoy.config.cluster.v3.CircuitBreakers", "thresholds"),
    msg(
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
        "priority max_connections max_pending_requests max_requests max_retries retry_budget track_remaining",
    ),
    msg(
        "envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget",
        "budget_percent min_retry_concurrency",
    ),
    msg(
        "envoy.config.cluster.v3.OutlierDetection",
        "consecutive_5xx interval base_ejection_time max_ejection_percent enforcing_consecutive_5xx \
         enforcing_success_rate success_rate_minimum_hosts success_rate_request_volume success_rate_stdev_factor \
         consecutive_gateway_failure enforcing_consecutive_gateway_failure split_external_local_origin_errors \
         consecutive_local_origin_failure enforcing_consecutive_local_origin_failure failure_percentage_threshold \
         enforcing_failure_percentage failure_percentage_minimum_hosts failure_percentage_request_volume \
         max_ejection_time enforcing_local_origin_success_rate enforcing_failure_percentage_local_origin \
         max_ejection_time_jitter always_eject_one_host successful_active_health_check_uneject_host",
    ),
    msg(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options explicit_http_config use_downstream_protocol_config auto_config",
    ),
    msg(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        "http_protocol_options http2_protocol_options",
    ),
    msg(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        "http_protocol_options http2_protocol_options",
    ),
    msg(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        "http_protocol_options http2_protocol_options",
    ),
    // Network local rate limit.
    msg(
        "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix token_bucket runtime_enabled share_key",
    ),
    // `runtime_key` is accepted: with no runtime layers it always yields `default_value`.
    msg(
        "envoy.config.core.v3.RuntimeFeatureFlag",
        "default_value runtime_key",
    ),
    // Connection limits: per filter config, and the overload manager's global one (its only monitor here).
    msg(
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
        "stat_prefix max_connections delay runtime_enabled",
    ),
    msg_ignoring(
        "envoy.config.overload.v3.OverloadManager",
        "resource_monitors",
        &[(
            "refresh_interval",
            "the one monitor supported (global_downstream_max_connections) is checked on every accept, not \
             sampled; traffic is unaffected",
        )],
    ),
    msg(
        "envoy.config.overload.v3.ResourceMonitor",
        "name typed_config",
    ),
    msg(
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
        "max_active_downstream_connections",
    ),
];

/// What to do with a set field.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldSupport {
    Supported,
    Ignored(&'static str),
    Unsupported,
    /// Refused for this reader, for the reason given (supported for another one).
    Refused(&'static str),
}

/// Who reads a resource, which decides what it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The proxy: bootstrap files, and resources its xDS client receives.
    Proxy,
    /// Proxyless gRPC clients of the control plane: listeners with `api_listener` (`support/proxyless.rs`).
    ProxylessClient,
}

/// Every listed message (the proxy's table; the proxyless section is [`proxyless_messages`]).
pub fn messages() -> impl Iterator<Item = &'static MessageSupport> {
    MESSAGES.iter().chain(security::MESSAGES.iter())
}

/// The messages whose entry differs for proxyless gRPC clients.
pub fn proxyless_messages() -> impl Iterator<Item = &'static MessageSupport> {
    proxyless::MESSAGES.iter()
}

/// What the proxy does with `message.field`.
#[cfg(test)]
pub fn field_support(message: &str, field: &str) -> FieldSupport {
    field_support_for(Reader::Proxy, message, field)
}

/// What `reader` does with `message.field`.
pub fn field_support_for(reader: Reader, message: &str, field: &str) -> FieldSupport {
    // Protobuf's own types (durations, wrappers, Struct) are plain values.
    if message.starts_with("google.protobuf.") {
        return FieldSupport::Supported;
    }
    let proxyless = proxyless_messages().find(|m| m.message == message);
    match (reader, proxyless) {
        (Reader::ProxylessClient, Some(entry)) => match lookup(entry, field) {
            FieldSupport::Unsupported => FieldSupport::Refused(proxyless::FOR_CLIENTS),
            found => found,
        },
        (Reader::Proxy, Some(entry)) if lookup(entry, field) == FieldSupport::Supported => {
            match messages()
                .find(|m| m.message == message)
                .map(|m| lookup(m, field))
            {
                Some(FieldSupport::Unsupported) | None => {
                    FieldSupport::Refused(proxyless::FOR_PROXY)
                }
                Some(found) => found,
            }
        }
        _ => messages()
            .find(|m| m.message == message)
            .map_or(FieldSupport::Unsupported, |entry| lookup(entry, field)),
    }
}

fn lookup(entry: &MessageSupport, field: &str) -> FieldSupport {
    if entry.fields.split_whitespace().any(|f| f == field) {
        return FieldSupport::Supported;
    }
    match entry.ignored.iter().find(|(f, _)| *f == field) {
        Some((_, why)) => FieldSupport::Ignored(why),
        None => FieldSupport::Unsupported,
    }
}

pub fn type_supported(full_name: &str) -> bool {
    SUPPORTED_TYPES.contains(&full_name)
}

/// For a Supported field no test proves yet, what is not done: it completes "accepted, but ... is not enforced
/// yet". Such a field is accepted (Envoy accepts it, and refusing would block real configurations) but never
/// silently: the loader warns.
pub fn not_yet(message: &str, field: &str) -> Option<&'static str> {
    proofs::not_yet(message, field)
}

#[cfg(test)]
mod tests;
