//! Listeners, filter chains and the network filters tcp_proxy and local_ratelimit.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    ("envoy.config.listener.v3.Listener.name", Tests(&[ADMIN])),
    (
        "envoy.config.listener.v3.Listener.address",
        Tests(&[LOADER_SIDECAR, TCP_COPY]),
    ),
    // Envoy reads it only for tracing, which Outrigger does not do: a label.
    (
        "envoy.config.listener.v3.Listener.traffic_direction",
        Tests(&[LABEL_KEPT]),
    ),
    (
        "envoy.config.listener.v3.Listener.bind_to_port",
        Tests(&[ORIGINAL_DST]),
    ),
    (
        "envoy.config.listener.v3.Listener.use_original_dst",
        Tests(&[ORIGINAL_DST]),
    ),
    (
        "envoy.config.listener.v3.Listener.listener_filters",
        Tests(&[TCP_SNI, TCP_HTTP]),
    ),
    (
        "envoy.config.listener.v3.Listener.listener_filters_timeout",
        Tests(&[TCP_SILENT]),
    ),
    (
        "envoy.config.listener.v3.Listener.continue_on_listener_filters_timeout",
        Tests(&[TCP_SILENT]),
    ),
    (
        "envoy.config.listener.v3.Listener.filter_chains",
        Tests(&[TCP_SNI, CHAIN_PORT]),
    ),
    (
        "envoy.config.listener.v3.Listener.default_filter_chain",
        Tests(&[TCP_SNI, CHAIN_PORT]),
    ),
    (
        "envoy.config.listener.v3.Listener.stat_prefix",
        Tests(&[ADMIN]),
    ),
    (
        "envoy.config.listener.v3.Listener.per_connection_buffer_limit_bytes",
        Tests(&[RETRY_BUFFER, REPLAY_LIMIT]),
    ),
    (
        "envoy.config.listener.v3.ListenerFilter.name",
        Tests(&[LABEL_FILTER_BY_NAME, LABEL_REQUIRED]),
    ),
    (
        "envoy.config.listener.v3.ListenerFilter.typed_config",
        Tests(&[TCP_SNI, TCP_HTTP]),
    ),
    (
        "envoy.config.listener.v3.FilterChain.filter_chain_match",
        Tests(&[CHAIN_PORT, TCP_SNI]),
    ),
    (
        "envoy.config.listener.v3.FilterChain.filters",
        Tests(&[TCP_COPY, TCP_HTTP]),
    ),
    (
        "envoy.config.listener.v3.FilterChain.transport_socket",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.config.listener.v3.FilterChain.name",
        Tests(&[CLI_TLS_FILE, CHAIN_PORT]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.destination_port",
        Tests(&[CHAIN_PORT, TCP_PORT]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.prefix_ranges",
        Tests(&[CHAIN_PREFIX_SNI, MESH]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.direct_source_prefix_ranges",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.source_type",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.source_prefix_ranges",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.source_ports",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.server_names",
        Tests(&[CHAIN_PREFIX_SNI, TCP_SNI]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.transport_protocol",
        Tests(&[TCP_SNI, MTLS_IN]),
    ),
    (
        "envoy.config.listener.v3.FilterChainMatch.application_protocols",
        Tests(&[CHAIN_PORT, TCP_HTTP]),
    ),
    (
        "envoy.config.listener.v3.Filter.name",
        Tests(&[LABEL_MISPLACED, LABEL_REQUIRED]),
    ),
    (
        "envoy.config.listener.v3.Filter.typed_config",
        Tests(&[TCP_COPY, HTTP_ROUTES]),
    ),
    // TCP proxy.
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.stat_prefix",
        Tests(&[MESH]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.cluster",
        Tests(&[TCP_COPY]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.weighted_clusters",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.idle_timeout",
        Tests(&[TCP_IDLE]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.max_connect_attempts",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.clusters",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight.name",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight.weight",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    // Network local rate limit.
    (
        "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.stat_prefix",
        Tests(&[NETWORK_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.token_bucket",
        Tests(&[NETWORK_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.runtime_enabled",
        Tests(&[NETWORK_RATE_LIMIT]),
    ),
    (
        "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.share_key",
        Tests(&[UP_NETWORK_ROUTING]),
    ),
    (
        "envoy.config.core.v3.RuntimeFeatureFlag.default_value",
        Tests(&[NETWORK_RATE_LIMIT]),
    ),
    // With no runtime layers the key always yields `default_value`, in Envoy as here: the test sets both.
    (
        "envoy.config.core.v3.RuntimeFeatureFlag.runtime_key",
        Tests(&[NETWORK_RATE_LIMIT]),
    ),
    (
        "envoy.config.listener.v3.Listener.ignore_global_conn_limit",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit.stat_prefix",
        Tests(&[LIM_CONNECTION_LIMIT]),
    ),
    (
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit.max_connections",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit.delay",
        Tests(&[LIM_CONNECTION_LIMIT, LIM_LOADER]),
    ),
    (
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit.runtime_enabled",
        Tests(&[LIM_CONNECTION_LIMIT]),
    ),
];
