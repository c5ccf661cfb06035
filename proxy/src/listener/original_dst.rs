//! The destination a connection had before an iptables REDIRECT (`SO_ORIGINAL_DST`, IPv4 and IPv6).

use nix::sys::socket::{getsockopt, sockopt};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpStream;

/// `None` when the connection was not redirected (no conntrack entry) or the socket cannot say.
pub fn get(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    if local.is_ipv4() {
        let address = getsockopt(stream, sockopt::OriginalDst).ok()?;
        let ip = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
        Some(SocketAddr::new(ip.into(), u16::from_be(address.sin_port)))
    } else {
        let address = getsockopt(stream, sockopt::Ip6tOriginalDst).ok()?;
        let ip = Ipv6Addr::from(address.sin6_addr.s6_addr);
        Some(SocketAddr::new(ip.into(), u16::from_be(address.sin6_port)))
    }
}
