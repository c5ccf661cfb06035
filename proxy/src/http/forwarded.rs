//! Who the client is, as Envoy's connection manager decides it: `x-forwarded-for`, `x-forwarded-proto`,
//! `x-envoy-external-address`, and the `x-envoy-*` headers an outside caller may not set.
//!
//! With `use_remote_address`, the client is the connection's peer, or, when `xff_num_trusted_hops` trusts
//! that many proxies in front, the address those proxies wrote in `x-forwarded-for` (the Nth from the right);
//! the peer is appended to `x-forwarded-for` (Envoy's own address instead of a loopback peer). Without it,
//! `x-forwarded-for` is passed on untouched and the client's address is not observable.
//!
//! Envoy 1.40 treats no address as internal unless `internal_address_config` lists it (not supported here),
//! so every request is external: the internal-only headers are removed, and with `use_remote_address` (an
//! "edge" request) the edge-only ones too and `x-envoy-external-address` names the client.

use http::HeaderMap;
use http::header::HeaderValue;
use outrigger_config::model::http::HttpConnectionManager;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

/// Removed from every request that is not internal (all of them, see above).
const INTERNAL_ONLY: &[&str] = &[
    "x-envoy-internal",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Removed as well from edge requests (`use_remote_address`).
const EDGE_ONLY: &[&str] = &[
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-original-path",
    "x-envoy-original-host",
];

/// Returns the client's address as Envoy's connection manager trusts it (RBAC's `remote_ip`): with
/// `use_remote_address`, the peer or the trusted `x-forwarded-for` entry; without, the `x-forwarded-for` entry
/// `xff_num_trusted_hops` from the right, else the peer.
pub fn apply(
    headers: &mut HeaderMap,
    hcm: &HttpConnectionManager,
    peer: IpAddr,
    tls: bool,
) -> IpAddr {
    let scheme = HeaderValue::from_static(if tls { "https" } else { "http" });
    let edge = hcm.use_remote_address;
    let mut client = None;
    if !edge {
        client = from_forwarded_for(headers, hcm.xff_num_trusted_hops);
    }
    if edge {
        if hcm.xff_num_trusted_hops > 0 {
            client = from_forwarded_for(headers, hcm.xff_num_trusted_hops - 1);
        }
        if !hcm.skip_xff_append {
            let own = if peer.is_loopback() {
                local_address()
            } else {
                peer
            };
            append_forwarded_for(headers, own);
        }
        // A peer that is not a trusted proxy does not get to say which scheme the client used.
        if hcm.xff_num_trusted_hops == 0 {
            headers.insert("x-forwarded-proto", scheme.clone());
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", scheme);
    }
    let removed = INTERNAL_ONLY
        .iter()
        .chain(if edge { EDGE_ONLY } else { &[] });
    for name in removed {
        headers.remove(*name);
    }
    if edge && let Ok(value) = HeaderValue::from_str(&client.unwrap_or(peer).to_string()) {
        headers.insert("x-envoy-external-address", value);
    }
    client.unwrap_or(peer)
}

/// The address `skip` entries from the right of `x-forwarded-for`, if it is one.
fn from_forwarded_for(headers: &HeaderMap, skip: u32) -> Option<IpAddr> {
    let joined = joined_forwarded_for(headers)?;
    let mut entries = joined.rsplit(',');
    for _ in 0..skip {
        entries.next()?;
    }
    entries.next()?.trim().parse().ok()
}

fn joined_forwarded_for(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Appends as Envoy does: `existing,address`, no space.
pub(super) fn append_forwarded_for(headers: &mut HeaderMap, address: IpAddr) {
    let value = match joined_forwarded_for(headers) {
        Some(existing) => format!("{existing},{address}"),
        None => address.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

/// Envoy's "local address": the first IPv4 address of an interface that is not loopback, else 127.0.0.1.
/// Read once, as Envoy reads it at startup.
pub(super) fn local_address() -> IpAddr {
    static ADDRESS: OnceLock<IpAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        nix::ifaddrs::getifaddrs()
            .ok()
            .and_then(|mut all| {
                all.find_map(|interface| {
                    let ip = interface.address?.as_sockaddr_in()?.ip();
                    (!ip.is_loopback()).then_some(IpAddr::V4(ip))
                })
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    })
}

#[cfg(test)]
mod tests;
