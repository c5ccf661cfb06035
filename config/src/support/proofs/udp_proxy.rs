//! UDP listeners and the udp_proxy listener filter.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.listener.v3.Listener.udp_listener_config",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.config.listener.v3.UdpListenerConfig.downstream_socket_config",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.config.core.v3.UdpSocketConfig.max_rx_datagram_size",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.config.core.v3.UdpSocketConfig.prefer_gro",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.stat_prefix",
        Tests(&[UDP_DIFF]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.cluster",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.matcher",
        Tests(&[UDP_DIFF, UDP_CONVERT, UDP_REFUSED]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.idle_timeout",
        Tests(&[UDP_IDLE, UDP_CONVERT, UDP_REFUSED]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.use_per_packet_load_balancing",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.upstream_socket_config",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.Route.cluster",
        Tests(&[UDP_DIFF, UDP_CONVERT]),
    ),
];
