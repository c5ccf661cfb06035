//! Bootstrap, core types and matchers.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, NotYet, Tests};
use super::cited::*;

const XDS: &str = "xDS gRPC service settings (the ADS stream uses its own)";

pub(super) const PROOFS: &[(&str, Proof)] = &[
    ("envoy.config.bootstrap.v3.Bootstrap.node", Tests(&[ADMIN])),
    (
        "envoy.config.bootstrap.v3.Bootstrap.static_resources",
        Tests(&[LOADER_DEFAULTS]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.dynamic_resources",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    ("envoy.config.bootstrap.v3.Bootstrap.admin", Tests(&[ADMIN])),
    (
        "envoy.config.bootstrap.v3.Bootstrap.overload_manager",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.config.overload.v3.OverloadManager.resource_monitors",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.config.overload.v3.ResourceMonitor.name",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.config.overload.v3.ResourceMonitor.typed_config",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig.max_active_downstream_connections",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources.listeners",
        Tests(&[LOADER_DEFAULTS]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources.clusters",
        Tests(&[LOADER_DEFAULTS]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources.secrets",
        Tests(&[SDS_STATIC]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources.lds_config",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources.cds_config",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources.ads_config",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.cluster_manager",
        Tests(&[LRS_DIFF, LRS_LOADER]),
    ),
    (
        "envoy.config.bootstrap.v3.ClusterManager.load_stats_config",
        Tests(&[LRS_DIFF, LRS_LOADER]),
    ),
    (
        "envoy.config.bootstrap.v3.Admin.address",
        Tests(&[ADMIN, LOADER_SIDECAR]),
    ),
    ("envoy.config.core.v3.Node.id", Tests(&[ADMIN])),
    ("envoy.config.core.v3.Node.cluster", Tests(&[ADMIN])),
    ("envoy.config.core.v3.Node.metadata", Tests(&[ADMIN])),
    (
        "envoy.config.core.v3.Node.locality",
        // Envoy's only other use is zone-aware routing, which needs cluster_manager.local_cluster_name (refused).
        Tests(&[ADMIN]),
    ),
    ("envoy.config.core.v3.Node.user_agent_name", Tests(&[ADMIN])),
    (
        "envoy.config.core.v3.Locality.region",
        Tests(&[ADMIN, UP_CONNECT_TIMEOUT]),
    ),
    (
        "envoy.config.core.v3.Locality.zone",
        Tests(&[ADMIN, UP_CONNECT_TIMEOUT]),
    ),
    (
        "envoy.config.core.v3.Locality.sub_zone",
        Tests(&[ADMIN, UP_CONNECT_TIMEOUT]),
    ),
    (
        "envoy.config.core.v3.Address.socket_address",
        Tests(&[LOADER_SIDECAR, HTTP_ROUTES]),
    ),
    // TCP, the default, is served as in Envoy (set explicitly in the h2 test); UDP is refused (the corpus).
    (
        "envoy.config.core.v3.SocketAddress.protocol",
        Tests(&[ENVOY_H2_SETTINGS, CORPUS]),
    ),
    (
        "envoy.config.core.v3.SocketAddress.address",
        Tests(&[LOADER_SIDECAR, HTTP_ROUTES]),
    ),
    (
        "envoy.config.core.v3.SocketAddress.port_value",
        Tests(&[LOADER_SIDECAR, HTTP_ROUTES]),
    ),
    (
        "envoy.config.core.v3.SocketAddress.ipv4_compat",
        NotYet("ipv4_compat (a `::` listener takes IPv4 whether or not it is set)"),
    ),
    (
        "envoy.config.core.v3.ConfigSource.ads",
        Tests(&[XDS_SOTW, XDS_DELTA, LIVE_RDS]),
    ),
    (
        "envoy.config.core.v3.ConfigSource.api_config_source",
        // Only as an SDS source (`sds_config`); refused everywhere else, naming the field.
        Tests(&[SDS_GRPC, SDS_GRPC_LOADER]),
    ),
    (
        "envoy.config.core.v3.ConfigSource.resource_api_version",
        // V3, the only version there is (the loader refuses any other).
        Tests(&[XDS_SOTW]),
    ),
    (
        "envoy.config.core.v3.ConfigSource.initial_fetch_timeout",
        Tests(&[XDS_FETCH_TIMEOUT, XDS_OPTIONS, XDS_WARMING, SDS_WARMING]),
    ),
    (
        "envoy.config.core.v3.ApiConfigSource.api_type",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.config.core.v3.ApiConfigSource.transport_api_version",
        Tests(&[XDS_SOTW]),
    ),
    (
        "envoy.config.core.v3.ApiConfigSource.grpc_services",
        // Also to a cluster with an UpstreamTlsContext (mTLS to the control plane).
        Tests(&[XDS_SOTW, XDS_DELTA, XDS_MTLS, CP_MTLS]),
    ),
    (
        "envoy.config.core.v3.ApiConfigSource.set_node_on_first_message_only",
        Tests(&[XDS_NODE_FIRST, XDS_EDS_FOLLOWS]),
    ),
    (
        "envoy.config.core.v3.GrpcService.envoy_grpc",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    // Acted on by ext_authz; the xDS streams and the OTLP exporter warn at their own paths.
    (
        "envoy.config.core.v3.GrpcService.timeout",
        Tests(&[ENVOY_EXT_AUTHZ_GRPC]),
    ),
    (
        "envoy.config.core.v3.GrpcService.EnvoyGrpc.cluster_name",
        Tests(&[XDS_SOTW, XDS_DELTA]),
    ),
    (
        "envoy.config.core.v3.GrpcService.EnvoyGrpc.authority",
        NotYet(XDS),
    ),
    (
        "envoy.config.core.v3.TransportSocket.name",
        Tests(&[LABEL_REQUIRED]),
    ),
    (
        "envoy.config.core.v3.TransportSocket.typed_config",
        Tests(&[MTLS_IN, MTLS_OUT]),
    ),
    (
        "envoy.config.core.v3.HeaderValueOption.header",
        Tests(&[HTTP_HEADERS, DIFFERENTIAL]),
    ),
    (
        "envoy.config.core.v3.HeaderValueOption.append",
        Tests(&[HTTP_HEADER_OPTIONS]),
    ),
    (
        "envoy.config.core.v3.HeaderValueOption.append_action",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.config.core.v3.HeaderValueOption.keep_empty_value",
        Tests(&[HTTP_HEADER_OPTIONS]),
    ),
    (
        "envoy.config.core.v3.HeaderValue.key",
        Tests(&[HTTP_HEADERS]),
    ),
    (
        "envoy.config.core.v3.HeaderValue.value",
        Tests(&[HTTP_HEADERS]),
    ),
    (
        "envoy.config.core.v3.DataSource.filename",
        Tests(&[CLI_TLS_FILE, MTLS_ROTATION]),
    ),
    (
        "envoy.config.core.v3.DataSource.inline_bytes",
        Tests(&[ENVOY_TLS]),
    ),
    (
        "envoy.config.core.v3.DataSource.inline_string",
        Tests(&[HTTP_ROUTES]),
    ),
    (
        "envoy.config.core.v3.DataSource.environment_variable",
        Tests(&[ENVOY_TLS]),
    ),
    (
        "envoy.config.core.v3.RuntimeFractionalPercent.default_value",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    // With no runtime layers the key always yields `default_value`, in Envoy as here: the test sets both.
    (
        "envoy.config.core.v3.RuntimeFractionalPercent.runtime_key",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.type.v3.FractionalPercent.numerator",
        Tests(&[RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.type.v3.FractionalPercent.denominator",
        Tests(&[FRACTION_DENOMINATOR, RESILIENCE_RATE_LIMIT]),
    ),
    // The loader test reads values back from the model (Envoy truncates); the panic test shows what the value does.
    (
        "envoy.type.v3.Percent.value",
        Tests(&[PERCENT_VALUE, PRIORITY_PANIC]),
    ),
    (
        "envoy.type.v3.TokenBucket.max_tokens",
        Tests(&[BUCKET_FULL, BUCKET_MAX, RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.type.v3.TokenBucket.tokens_per_fill",
        Tests(&[BUCKET_REFILL, BUCKET_MAX]),
    ),
    (
        "envoy.type.v3.TokenBucket.fill_interval",
        Tests(&[BUCKET_REFILL, RESILIENCE_RATE_LIMIT]),
    ),
    (
        "envoy.config.core.v3.Metadata.filter_metadata",
        Tests(&[MTLS_MATCHES]),
    ),
    (
        "envoy.config.core.v3.HttpProtocolOptions.idle_timeout",
        Tests(&[HCM_LIMITS, CONNECTION_IDLE]),
    ),
    (
        "envoy.config.core.v3.HttpProtocolOptions.max_connection_duration",
        Tests(&[HCM_LIMITS, CONNECTION_DURATION]),
    ),
    (
        "envoy.config.core.v3.HttpProtocolOptions.max_headers_count",
        Tests(&[HCM_LIMITS]),
    ),
    // Downstream only: a cluster setting it is refused by name (`convert/cluster.rs`).
    (
        "envoy.config.core.v3.HttpProtocolOptions.max_requests_per_connection",
        Tests(&[LIM_HOSTILE]),
    ),
    // On the wire, both sides. Upstream, Envoy also opens no more streams per connection than this (another
    // connection takes the rest); Outrigger's one h2 connection per endpoint only honours the upstream's own
    // SETTINGS, and the loader warns when a cluster sets it (`warn_stream_cap` in convert/cluster.rs).
    (
        "envoy.config.core.v3.Http2ProtocolOptions.max_concurrent_streams",
        Tests(&[ENVOY_H2_SETTINGS]),
    ),
    (
        "envoy.config.core.v3.Http2ProtocolOptions.initial_stream_window_size",
        Tests(&[ENVOY_H2_SETTINGS]),
    ),
    (
        "envoy.config.core.v3.Http2ProtocolOptions.initial_connection_window_size",
        Tests(&[ENVOY_H2_SETTINGS]),
    ),
    (
        // Acted on for the clusters that reach a control plane; refused on others and on listeners.
        "envoy.config.core.v3.Http2ProtocolOptions.connection_keepalive",
        Tests(&[XDS_KEEPALIVE, SDS_GRPC_LOADER]),
    ),
    (
        "envoy.config.core.v3.KeepaliveSettings.interval",
        Tests(&[XDS_KEEPALIVE]),
    ),
    (
        "envoy.config.core.v3.KeepaliveSettings.timeout",
        Tests(&[XDS_KEEPALIVE]),
    ),
    (
        "envoy.config.core.v3.CidrRange.address_prefix",
        Tests(&[CHAIN_PREFIX_SNI]),
    ),
    (
        "envoy.config.core.v3.CidrRange.prefix_len",
        Tests(&[CHAIN_PREFIX_SNI]),
    ),
    // Matchers.
    (
        "envoy.type.matcher.v3.StringMatcher.exact",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.type.matcher.v3.StringMatcher.prefix",
        Tests(&[DIFFERENTIAL]),
    ),
    (
        "envoy.type.matcher.v3.StringMatcher.suffix",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.type.matcher.v3.StringMatcher.safe_regex",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.type.matcher.v3.StringMatcher.contains",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.type.matcher.v3.StringMatcher.ignore_case",
        Tests(&[MATCH_IGNORE_CASE]),
    ),
    (
        "envoy.type.matcher.v3.RegexMatcher.regex",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL, PATTERNS]),
    ),
    (
        "envoy.type.matcher.v3.RegexMatchAndSubstitute.pattern",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
    (
        "envoy.type.matcher.v3.RegexMatchAndSubstitute.substitution",
        Tests(&[HTTP_ROUTES, DIFFERENTIAL]),
    ),
];
