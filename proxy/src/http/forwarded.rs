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
use http::header::HeaderName;
use http::header::HeaderValue;
use outrigger_config::model::http::HttpConnectionManager;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

/// Removed from every request that is not internal (all of them, see above).
static INTERNAL_ONLY: [HeaderName; 15] = [
    HeaderName::from_static("x-envoy-internal"),
    HeaderName::from_static("x-envoy-retriable-status-codes"),
    HeaderName::from_static("x-envoy-retriable-header-names"),
    HeaderName::from_static("x-envoy-retry-on"),
    HeaderName::from_static("x-envoy-retry-grpc-on"),
    HeaderName::from_static("x-envoy-max-retries"),
    HeaderName::from_static("x-envoy-upstream-alt-stat-name"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response"),
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-force-trace"),
    HeaderName::from_static("x-envoy-ip-tags"),
    HeaderName::from_static("x-envoy-original-url"),
    HeaderName::from_static("x-envoy-hedge-on-per-try-timeout"),
];

/// Removed as well from edge requests (`use_remote_address`).
static EDGE_ONLY: [HeaderName; 5] = [
    HeaderName::from_static("x-envoy-decorator-operation"),
    HeaderName::from_static("x-envoy-downstream-service-cluster"),
    HeaderName::from_static("x-envoy-downstream-service-node"),
    HeaderName::from_static("x-envoy-original-path"),
    HeaderName::from_static("x-envoy-original-host"),
];

// Names parsed once (a `&str` name is parsed again at every use; these are touched on every request).
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
            headers.insert(X_FORWARDED_PROTO, scheme.clone());
        }
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, scheme);
    }
    // Every one of them starts with `x-envoy-`: one pass over the request's few headers usually shows there is
    // nothing to remove, cheaper than twenty look-ups.
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("x-envoy-"))
    {
        let removed = INTERNAL_ONLY
            .iter()
            .chain(if edge { &EDGE_ONLY[..] } else { &[] });
        for name in removed {
            headers.remove(name);
        }
    }
    if edge && let Ok(value) = HeaderValue::from_str(&client.unwrap_or(peer).to_string()) {
        headers.insert(HeaderName::from_static("x-envoy-external-address"), value);
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
        .get_all(X_FORWARDED_FOR)
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
        headers.insert(X_FORWARDED_FOR, value);
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
