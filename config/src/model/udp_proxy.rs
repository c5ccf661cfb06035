//! UDP listeners and the `udp_proxy` listener filter (`envoy.filters.udp_listener.udp_proxy`).

use super::core::duration;
use serde::Serialize;
use std::time::Duration;

/// What a listener with `socket_address.protocol: UDP` runs: its datagram size limit and its one `udp_proxy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UdpListener {
    /// The largest datagram read from clients; a larger one is dropped and counted in
    /// `listener.<scope>.udp.downstream_rx_datagram_dropped`. From `udp_listener_config.downstream_socket_config`:
    /// `max_rx_datagram_size` (Envoy's default 1500) unless `prefer_gro` (Envoy's default false for listeners)
    /// makes Envoy read 64 KiB at a time.
    pub max_rx_datagram_size: usize,
    pub proxy: UdpProxy,
}

/// `envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UdpProxy {
    /// `udp.<stat_prefix>.*`.
    pub stat_prefix: String,
    /// Where every session goes: the deprecated `cluster`, or the matcher's `on_no_match` route. `None` (a
    /// matcher with no action) counts each datagram in `downstream_sess_no_route` and drops it, as Envoy does.
    pub cluster: Option<String>,
    /// A session (a client address) with no datagram either way this long is removed. Envoy's default: 60s.
    #[serde(serialize_with = "duration")]
    pub idle_timeout: Duration,
    /// `use_per_packet_load_balancing`: each datagram picks a host, and a client has a session per host it was
    /// sent to. Envoy's default: false (a session keeps its host).
    pub per_packet_load_balancing: bool,
    /// The largest datagram read from an upstream host; a larger one is dropped and counted in
    /// `cluster.<name>.udp.sess_rx_datagrams_dropped`. From `upstream_socket_config`: `max_rx_datagram_size`
    /// (default 1500), unless `prefer_gro` (Envoy's default true upstream) makes Envoy read 64 KiB at a time.
    pub upstream_max_rx_datagram_size: usize,
}

/// What Envoy reads at once with GRO on: larger than any UDP datagram, so nothing is dropped.
pub const GRO_READ_SIZE: usize = 64 * 1024;
