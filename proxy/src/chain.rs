//! Filter chain selection, as Envoy orders it: destination port, destination IP, server name, transport
//! protocol, application protocols, direct source IP, source type, source IP, source port. At each step the most
//! specific matching chains stay; chains that leave the criterion empty stay only when none matches
//! specifically.

use outrigger_config::model::listener::{
    Cidr, FilterChain, FilterChainMatch, Listener, SourceType,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What is known about a connection when its filter chain is chosen.
#[derive(Clone, Debug, Default)]
pub struct ConnectionFacts {
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// `tls` or `raw_buffer`.
    pub transport_protocol: String,
    pub server_name: Option<String>,
    pub application_protocols: Vec<String>,
}

/// The chain for this connection: the best match, else the listener's default chain.
pub fn select<'a>(listener: &'a Listener, facts: &ConnectionFacts) -> Option<&'a FilterChain> {
    narrow(listener, &CRITERIA, facts)
        .first()
        .copied()
        .or(listener.default_filter_chain.as_ref())
}

/// True when the chain choice for a connection to `destination` can depend on what detection finds (SNI,
/// transport or ALPN). When it cannot, detection is skipped: a server-speaks-first protocol on such a port
/// never waits for bytes that will not come.
pub fn needs_detection(listener: &Listener, destination: Option<SocketAddr>) -> bool {
    let facts = ConnectionFacts {
        destination,
        ..ConnectionFacts::default()
    };
    // Destination port and address are known before detection; narrow by them only.
    narrow(listener, &CRITERIA[..2], &facts).iter().any(|c| {
        !c.matcher.server_names.is_empty()
            || c.matcher.transport_protocol.is_some()
            || !c.matcher.application_protocols.is_empty()
    })
}

/// The chains that survive `criteria` in order, each keeping only its best-scoring candidates.
fn narrow<'a>(
    listener: &'a Listener,
    criteria: &[Criterion],
    facts: &ConnectionFacts,
) -> Vec<&'a FilterChain> {
    let mut candidates: Vec<&FilterChain> = listener.filter_chains.iter().collect();
    for criterion in criteria {
        let scores: Vec<Option<u32>> = candidates
            .iter()
            .map(|c| criterion(&c.matcher, facts))
            .collect();
        let Some(best) = scores.iter().flatten().max().copied() else {
            return Vec::new();
        };
        candidates = candidates
            .into_iter()
            .zip(scores)
            .filter(|(_, s)| *s == Some(best))
            .map(|(c, _)| c)
            .collect();
    }
    candidates
}

type Criterion = fn(&FilterChainMatch, &ConnectionFacts) -> Option<u32>;

const CRITERIA: [Criterion; 9] = [
    |m, f| match m.destination_port {
        None => Some(0),
        Some(port) => (f.destination.map(|d| d.port()) == Some(port)).then_some(1),
    },
    |m, f| prefix_score(&m.prefix_ranges, f.destination),
    |m, f| server_name_score(&m.server_names, f.server_name.as_deref()),
    |m, f| match &m.transport_protocol {
        None => Some(0),
        Some(t) => (*t == f.transport_protocol).then_some(1),
    },
    |m, f| {
        if m.application_protocols.is_empty() {
            Some(0)
        } else {
            m.application_protocols
                .iter()
                .any(|p| f.application_protocols.contains(p))
                .then_some(1)
        }
    },
    |m, f| prefix_score(&m.direct_source_prefix_ranges, f.source),
    |m, f| match m.source_type {
        SourceType::Any => Some(0),
        SourceType::SameIpOrLoopback => is_local(f).then_some(1),
        SourceType::External => (!is_local(f)).then_some(1),
    },
    |m, f| prefix_score(&m.source_prefix_ranges, f.source),
    |m, f| {
        if m.source_ports.is_empty() {
            Some(0)
        } else {
            f.source
                .is_some_and(|s| m.source_ports.contains(&s.port()))
                .then_some(1)
        }
    },
];

/// Envoy's `SAME_IP_OR_LOOPBACK`: the source is the destination's own address, or exactly 127.0.0.1 or ::1. Envoy's
/// loopback test takes no other address of 127.0.0.0/8: a client on 127.0.0.3 is `EXTERNAL`.
fn is_local(f: &ConnectionFacts) -> bool {
    let Some(source) = f.source else {
        return false;
    };
    let loopback = match source.ip() {
        IpAddr::V4(ip) => ip == Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => ip == Ipv6Addr::LOCALHOST,
    };
    loopback || f.destination.is_some_and(|d| d.ip() == source.ip())
}

/// The longest matching prefix wins; an empty list matches anything with the lowest score.
fn prefix_score(ranges: &[Cidr], address: Option<SocketAddr>) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    let ip = address?.ip();
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| u32::from(r.prefix_len) + 1)
        .max()
}

/// Exact names beat wildcards; among wildcards (`*.example.com`) the longest suffix wins.
fn server_name_score(names: &[String], sni: Option<&str>) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    let sni = sni?.to_ascii_lowercase();
    names
        .iter()
        .filter_map(|name| {
            if *name == sni {
                Some(u32::MAX)
            } else if let Some(suffix) = name.strip_prefix('*') {
                sni.ends_with(suffix).then_some(suffix.len() as u32)
            } else {
                None
            }
        })
        .max()
}

#[cfg(test)]
mod tests;
