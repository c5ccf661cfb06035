//! Listeners, listener filters, filter chains and network filters.

use super::{Out, decode_any, http, listener_address, timeout_or, tls, type_name};
use crate::diagnostic::Path;
use crate::model::http::TokenBucket;
use crate::model::listener::{
    Cidr, ConnectionLimit, FilterChain, FilterChainMatch, Listener, ListenerFilter, NetworkFilter,
    NetworkLocalRateLimit, SourceType, TcpProxy, TcpTarget, TrafficDirection,
};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3 as connection_limit;
use envoy_types::pb::envoy::extensions::filters::network::local_ratelimit::v3 as network_ratelimit;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use std::net::IpAddr;
use std::time::Duration;

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const RBAC: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";
const LOCAL_RATE_LIMIT: &str = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit";
const CONNECTION_LIMIT: &str =
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";

pub fn listener(l: &pb::Listener, at: &Path, out: &mut Out) -> Option<Listener> {
    let (address, udp) = listener_address(&l.address, &at.field("address"), out)?;
    // A UDP listener has no filter chains and no TCP listener filters: only its `udp_proxy`.
    let udp = match udp {
        true => Some(super::udp_proxy::listener(l, at, out)?),
        false => None,
    };
    // Envoy names an unnamed listener with a random UUID; a name derived from the address is as unique and
    // stays the same across restarts.
    let name = if l.name.is_empty() {
        format!("listener_{address}")
    } else {
        l.name.clone()
    };
    let traffic_direction = match core::TrafficDirection::try_from(l.traffic_direction) {
        Ok(core::TrafficDirection::Inbound) => TrafficDirection::Inbound,
        Ok(core::TrafficDirection::Outbound) => TrafficDirection::Outbound,
        _ => TrafficDirection::Unspecified,
    };
    let listener_filters = l
        .listener_filters
        .iter()
        .filter(|_| udp.is_none())
        .enumerate()
        .filter_map(|(i, f)| listener_filter(f, &at.field("listener_filters").index(i), out))
        .collect();
    let filter_chains: Vec<FilterChain> = l
        .filter_chains
        .iter()
        .enumerate()
        .filter_map(|(i, c)| filter_chain(c, &at.field("filter_chains").index(i), out))
        .collect();
    let default_filter_chain = l
        .default_filter_chain
        .as_ref()
        .and_then(|c| filter_chain(c, &at.field("default_filter_chain"), out));
    if l.filter_chains.is_empty() && l.default_filter_chain.is_none() && udp.is_none() {
        out.error(
            &at.field("filter_chains"),
            "no filter chains specified; a listener needs at least one",
        );
    }
    check_unique_matches(&filter_chains, &at.field("filter_chains"), out);
    Some(Listener {
        name,
        address,
        stat_prefix: l.stat_prefix.clone(),
        traffic_direction,
        bind_to_port: super::bool_or(&l.bind_to_port, true),
        use_original_dst: super::bool_or(&l.use_original_dst, false),
        listener_filters,
        listener_filters_timeout: timeout_or(
            &l.listener_filters_timeout,
            Some(Duration::from_secs(15)),
        ),
        continue_on_listener_filters_timeout: l.continue_on_listener_filters_timeout,
        per_connection_buffer_limit_bytes: l
            .per_connection_buffer_limit_bytes
            .map(|v| v.value)
            .unwrap_or(1024 * 1024),
        filter_chains,
        default_filter_chain,
        access_log: super::access_log::access_logs(&l.access_log, &at.field("access_log"), out),
        ignore_global_conn_limit: l.ignore_global_conn_limit,
        udp,
    })
}

/// Envoy refuses two chains that match the same connections, since one of them could never be chosen.
fn check_unique_matches(chains: &[FilterChain], at: &Path, out: &mut Out) {
    for (i, chain) in chains.iter().enumerate() {
        if let Some(j) = chains[..i]
            .iter()
            .position(|other| other.matcher == chain.matcher)
        {
            out.error(
                &at.index(i),
                format!(
                    "filter chain {:?} has the same filter_chain_match as filter chain {:?} (index {j}); make them \
                     differ, or merge them",
                    chain.name, chains[j].name
                ),
            );
        }
    }
}

fn listener_filter(f: &pb::ListenerFilter, at: &Path, out: &mut Out) -> Option<ListenerFilter> {
    use pb::listener_filter::ConfigType;
    // The type of `typed_config` decides; without one, the well-known name does (as in Envoy).
    let kind = match &f.config_type {
        Some(ConfigType::TypedConfig(any)) => type_name(any).to_string(),
        _ => f.name.clone(),
    };
    match kind.as_str() {
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
        | "envoy.filters.listener.original_dst" => Some(ListenerFilter::OriginalDst),
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
        | "envoy.filters.listener.tls_inspector" => Some(ListenerFilter::TlsInspector),
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
        | "envoy.filters.listener.http_inspector" => Some(ListenerFilter::HttpInspector),
        other => {
            out.error(
                at,
                format!(
                    "listener filter {other} is not supported; supported: envoy.filters.listener.original_dst, \
                     envoy.filters.listener.tls_inspector, envoy.filters.listener.http_inspector"
                ),
            );
            None
        }
    }
}

fn filter_chain(c: &pb::FilterChain, at: &Path, out: &mut Out) -> Option<FilterChain> {
    let matcher = c
        .filter_chain_match
        .as_ref()
        .map(|m| filter_chain_match(m, &at.field("filter_chain_match"), out))
        .unwrap_or_default();
    let at_filters = at.field("filters");
    let mut filters = Vec::new();
    for (i, f) in c.filters.iter().enumerate() {
        let at = at_filters.index(i);
        let filter = network_filter(f, &at, out)?;
        // Connection managers and TCP proxies are terminal: each must be the last of its chain; RBAC and the
        // local rate limit must not.
        let terminal = !matches!(
            filter,
            NetworkFilter::Rbac(_)
                | NetworkFilter::LocalRateLimit(_)
                | NetworkFilter::ConnectionLimit(_)
        );
        if !terminal && i + 1 == c.filters.len() {
            out.error(
                &at,
                format!(
                    "{} is not a terminal filter: a chain must end with http_connection_manager or tcp_proxy",
                    f.name
                ),
            );
        }
        if terminal && i + 1 < c.filters.len() {
            out.error(
                &at,
                format!(
                    "terminal filter {} must be the last filter in a network filter chain",
                    f.name
                ),
            );
        }
        filters.push(filter);
    }
    let tls = c
        .transport_socket
        .as_ref()
        .and_then(|t| tls::downstream(t, &at.field("transport_socket"), out))
        .flatten();
    Some(FilterChain {
        name: c.name.clone(),
        matcher,
        filters,
        tls,
    })
}

fn filter_chain_match(m: &pb::FilterChainMatch, at: &Path, out: &mut Out) -> FilterChainMatch {
    use pb::filter_chain_match::ConnectionSourceType as S;
    let port = m
        .destination_port
        .as_ref()
        .and_then(|p| u16::try_from(p.value).ok());
    let source_ports = m
        .source_ports
        .iter()
        .filter_map(|p| u16::try_from(*p).ok())
        .collect();
    FilterChainMatch {
        destination_port: port,
        prefix_ranges: cidrs(&m.prefix_ranges, &at.field("prefix_ranges"), out),
        server_names: m
            .server_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        transport_protocol: Some(m.transport_protocol.clone()).filter(|t| !t.is_empty()),
        application_protocols: m.application_protocols.clone(),
        direct_source_prefix_ranges: cidrs(
            &m.direct_source_prefix_ranges,
            &at.field("direct_source_prefix_ranges"),
            out,
        ),
        source_type: match S::try_from(m.source_type) {
            Ok(S::SameIpOrLoopback) => SourceType::SameIpOrLoopback,
            Ok(S::External) => SourceType::External,
            _ => SourceType::Any,
        },
        source_prefix_ranges: cidrs(
            &m.source_prefix_ranges,
            &at.field("source_prefix_ranges"),
            out,
        ),
        source_ports,
    }
}

fn cidrs(ranges: &[core::CidrRange], at: &Path, out: &mut Out) -> Vec<Cidr> {
    ranges
        .iter()
        .enumerate()
        .filter_map(|(i, r)| cidr(r, &at.index(i), out))
        .collect()
}

pub(crate) fn cidr(r: &core::CidrRange, at: &Path, out: &mut Out) -> Option<Cidr> {
    let Ok(address) = r.address_prefix.parse::<IpAddr>() else {
        out.error(
            &at.field("address_prefix"),
            format!("malformed IP address {:?}", r.address_prefix),
        );
        return None;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = r.prefix_len.as_ref().map(|p| p.value).unwrap_or(0);
    if prefix_len > max {
        out.error(
            &at.field("prefix_len"),
            format!("must be at most {max} for {address}"),
        );
        return None;
    }
    Some(Cidr {
        address,
        prefix_len: prefix_len as u8,
    })
}

fn network_filter(f: &pb::Filter, at: &Path, out: &mut Out) -> Option<NetworkFilter> {
    use pb::filter::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        out.error(
            at,
            format!("network filter {:?} needs a typed_config", f.name),
        );
        return None;
    };
    let at_config = at.field("typed_config");
    match type_name(any) {
        HCM => {
            let hcm = decode_any(any, &at_config, out)?;
            http::connection_manager(&hcm, &at_config, out)
                .map(|h| NetworkFilter::HttpConnectionManager(std::sync::Arc::new(h)))
        }
        TCP_PROXY => tcp_proxy(&decode_any(any, &at_config, out)?, &at_config, out)
            .map(NetworkFilter::TcpProxy),
        RBAC => super::rbac::network(&decode_any(any, &at_config, out)?, &at_config, out)
            .map(NetworkFilter::Rbac),
        LOCAL_RATE_LIMIT => {
            network_local_rate_limit(&decode_any(any, &at_config, out)?, &at_config, out)
                .map(|l| NetworkFilter::LocalRateLimit(std::sync::Arc::new(l)))
        }
        CONNECTION_LIMIT => connection_limit(&decode_any(any, &at_config, out)?, &at_config, out)
            .map(|l| NetworkFilter::ConnectionLimit(std::sync::Arc::new(l))),
        other => {
            out.error(
                &at_config,
                format!(
                    "network filter {other} is not supported; supported: envoy.filters.network.http_connection_manager, \
                     envoy.filters.network.tcp_proxy, envoy.filters.network.rbac, envoy.filters.network.local_ratelimit, \
                     envoy.filters.network.connection_limit"
                ),
            );
            None
        }
    }
}

fn network_local_rate_limit(
    l: &network_ratelimit::LocalRateLimit,
    at: &Path,
    out: &mut Out,
) -> Option<NetworkLocalRateLimit> {
    let Some(bucket) = &l.token_bucket else {
        out.error(&at.field("token_bucket"), "required");
        return None;
    };
    let fill_interval = bucket
        .fill_interval
        .as_ref()
        .map(super::duration)
        .unwrap_or_default();
    if fill_interval < Duration::from_millis(50) {
        out.error(
            &at.field("token_bucket").field("fill_interval"),
            "must be at least 50ms (as in Envoy)",
        );
    }
    Some(NetworkLocalRateLimit {
        stat_prefix: l.stat_prefix.clone(),
        token_bucket: TokenBucket {
            max_tokens: bucket.max_tokens,
            tokens_per_fill: super::u32_or(&bucket.tokens_per_fill, 1),
            fill_interval,
        },
        enabled: l
            .runtime_enabled
            .as_ref()
            .and_then(|f| f.default_value.as_ref())
            .is_none_or(|v| v.value),
        share_key: l.share_key.clone(),
    })
}

fn connection_limit(
    l: &connection_limit::ConnectionLimit,
    at: &Path,
    out: &mut Out,
) -> Option<ConnectionLimit> {
    // `stat_prefix` and `max_connections >= 1` are Envoy's proto rules (pgv.rs checks them); this only keeps
    // the conversion total.
    let max_connections = match l.max_connections {
        Some(m) if m.value >= 1 => m.value,
        _ => {
            out.error(
                &at.field("max_connections"),
                "required, at least 1 (as in Envoy)",
            );
            return None;
        }
    };
    Some(ConnectionLimit {
        stat_prefix: l.stat_prefix.clone(),
        max_connections,
        delay: l
            .delay
            .as_ref()
            .map(super::duration)
            .filter(|d| !d.is_zero()),
        enabled: l
            .runtime_enabled
            .as_ref()
            .and_then(|f| f.default_value.as_ref())
            .is_none_or(|v| v.value),
    })
}

fn tcp_proxy(t: &tcp::TcpProxy, at: &Path, out: &mut Out) -> Option<TcpProxy> {
    use tcp::tcp_proxy::ClusterSpecifier;
    let target = match &t.cluster_specifier {
        Some(ClusterSpecifier::Cluster(name)) => TcpTarget::Cluster(name.clone()),
        Some(ClusterSpecifier::WeightedClusters(w)) => TcpTarget::WeightedClusters(
            w.clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight))
                .collect(),
        ),
        _ => {
            out.error(at, "tcp_proxy needs `cluster` or `weighted_clusters`");
            return None;
        }
    };
    Some(TcpProxy {
        stat_prefix: t.stat_prefix.clone(),
        target,
        idle_timeout: timeout_or(&t.idle_timeout, Some(Duration::from_secs(3600))),
        max_connect_attempts: super::u32_or(&t.max_connect_attempts, 1),
        access_log: super::access_log::access_logs(&t.access_log, &at.field("access_log"), out),
    })
}
