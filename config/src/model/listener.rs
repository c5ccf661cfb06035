//! Listeners, listener filters and filter chains.

use super::core::optional_duration;
use super::http::HttpConnectionManager;
use super::tls::DownstreamTls;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// Names the listener's statistics (`listener.<stat_prefix>.*`); empty: they are named by address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stat_prefix: String,
    pub traffic_direction: TrafficDirection,
    /// Envoy's default: true. A listener with `false` only receives connections handed over by an
    /// `original_dst` listener.
    pub bind_to_port: bool,
    /// Hand connections to the listener bound to their original destination, when there is one.
    pub use_original_dst: bool,
    pub listener_filters: Vec<ListenerFilter>,
    /// Envoy's default: 15s. `disabled` means no limit.
    #[serde(serialize_with = "optional_duration")]
    pub listener_filters_timeout: Option<Duration>,
    /// Envoy's default: false (the connection is closed when the listener filters time out).
    pub continue_on_listener_filters_timeout: bool,
    /// How much of a request body the router keeps to retry it. Envoy's default: 1 MiB.
    pub per_connection_buffer_limit_bytes: u32,
    pub filter_chains: Vec<FilterChain>,
    pub default_filter_chain: Option<FilterChain>,
    /// `access_log`: a line for every connection when it closes (`NR` when no filter chain takes it), as Envoy
    /// writes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<super::access_log::AccessLog>,
    /// `ignore_global_conn_limit`: the overload manager's `global_downstream_max_connections` neither counts
    /// nor refuses this listener's connections. Envoy's default: false.
    pub ignore_global_conn_limit: bool,
    /// `socket_address.protocol: UDP`: a datagram listener running `udp_proxy`, with no filter chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<super::udp_proxy::UdpListener>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficDirection {
    #[default]
    Unspecified,
    Inbound,
    Outbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerFilter {
    /// Recovers the destination a connection had before an iptables REDIRECT.
    OriginalDst,
    /// Reads SNI and ALPN from a TLS ClientHello without terminating TLS.
    TlsInspector,
    /// Tells HTTP/1.x and h2c apart by the first bytes.
    HttpInspector,
}

#[derive(Clone, Debug, Serialize)]
pub struct FilterChain {
    pub name: String,
    #[serde(rename = "filter_chain_match")]
    pub matcher: FilterChainMatch,
    pub filters: Vec<NetworkFilter>,
    pub tls: Option<DownstreamTls>,
}

/// Which connections a filter chain takes. Empty criteria match everything; Envoy picks the most specific chain,
/// criterion by criterion, in the order of the fields below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefix_ranges: Vec<Cidr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    pub transport_protocol: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub application_protocols: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub direct_source_prefix_ranges: Vec<Cidr>,
    pub source_type: SourceType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_prefix_ranges: Vec<Cidr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ports: Vec<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    #[default]
    Any,
    SameIpOrLoopback,
    External,
}

/// An address range (`CidrRange`), stored with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFilter {
    /// Shared: every connection the chain serves holds it.
    HttpConnectionManager(std::sync::Arc<HttpConnectionManager>),
    TcpProxy(TcpProxy),
    /// Runs before the terminal filter.
    Rbac(super::rbac::Rbac),
    /// `envoy.filters.network.local_ratelimit`: each new connection takes a token, or is closed. Shared: the
    /// bucket belongs to the filter config (or to its `share_key`).
    LocalRateLimit(std::sync::Arc<NetworkLocalRateLimit>),
    /// `envoy.filters.network.connection_limit`: at most `max_connections` open through the filter config.
    /// Shared: the count belongs to the filter config.
    ConnectionLimit(std::sync::Arc<ConnectionLimit>),
}

/// `envoy.filters.network.connection_limit`.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionLimit {
    pub stat_prefix: String,
    /// Required, at least 1.
    pub max_connections: u64,
    /// How long a refused connection is held (its bytes ignored) before it is closed. Envoy's default: none
    /// (closed at once).
    #[serde(serialize_with = "optional_duration")]
    pub delay: Option<Duration>,
    /// `runtime_enabled.default_value`. Envoy's default: true.
    pub enabled: bool,
}

/// `envoy.filters.network.local_ratelimit`.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkLocalRateLimit {
    pub stat_prefix: String,
    pub token_bucket: super::http::TokenBucket,
    /// `runtime_enabled.default_value`. Envoy's default: true.
    pub enabled: bool,
    /// Filters with the same non-empty key and the same bucket share one bucket.
    pub share_key: String,
}

/// `envoy.filters.network.tcp_proxy`.
#[derive(Clone, Debug, Serialize)]
pub struct TcpProxy {
    pub stat_prefix: String,
    pub target: TcpTarget,
    /// Envoy's default: 1h. `disabled` means never.
    #[serde(serialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// Envoy's default: 1.
    pub max_connect_attempts: u32,
    /// `access_log`: a line per connection, written when it closes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<super::access_log::AccessLog>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpTarget {
    Cluster(String),
    WeightedClusters(Vec<(String, u32)>),
}

impl TcpTarget {
    pub fn cluster_names(&self) -> Vec<&str> {
        match self {
            TcpTarget::Cluster(name) => vec![name.as_str()],
            TcpTarget::WeightedClusters(list) => list.iter().map(|(n, _)| n.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_by_prefix() {
        let net = Cidr {
            address: "198.18.0.0".parse().unwrap(),
            prefix_len: 15,
        };
        assert!(net.contains("198.19.255.1".parse().unwrap()));
        assert!(!net.contains("198.20.0.1".parse().unwrap()));
        let all = Cidr {
            address: "0.0.0.0".parse().unwrap(),
            prefix_len: 0,
        };
        assert!(all.contains("10.1.2.3".parse().unwrap()));
        let v6 = Cidr {
            address: "fd00::".parse().unwrap(),
            prefix_len: 8,
        };
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("198.18.0.1".parse().unwrap()));
    }
}

/// A listener the control plane serves to proxyless gRPC clients (`api_listener`): no socket, only the
/// connection manager whose routes they follow. The proxy never runs one.
#[derive(Clone, Debug, Serialize)]
pub struct ApiListener {
    pub name: String,
    pub connection_manager: HttpConnectionManager,
}
