//! The descriptors a request produces from rate limit actions, as Envoy 1.40's local rate limit filter builds
//! them: pure functions of the actions and what the request shows.
//!
//! Where the actions come from: the filter's own `rate_limits` when it has some; otherwise the route's
//! `rate_limits` of the filter's `stage`, plus the virtual host's as `vh_rate_limits` says (OVERRIDE: only when
//! the route has none at all, of any stage). A request without a route action (no route, redirect, direct
//! response) produces none from routes.

use http::HeaderMap;
use outrigger_config::model::rate_limit::{
    DescriptorEntry, RateLimit, RateLimitAction, VhRateLimits,
};
use outrigger_config::model::route::{ClusterTarget, Forward, VirtualHost};
use std::net::IpAddr;

/// One request descriptor: its entries in the order of the actions.
pub type Descriptor = Vec<DescriptorEntry>;

/// What the actions read from a request.
pub struct RequestView<'a> {
    pub headers: &'a HeaderMap,
    /// The downstream address as the connection manager decides it (see [`remote_address`]).
    pub remote: IpAddr,
    /// The route's cluster; `None` when it cannot be known before the router runs.
    pub cluster: Option<String>,
}

/// The route's `rate_limits`, then the virtual host's when they count (a route's `include_vh_rate_limits`
/// wins over the filter's `vh_rate_limits`).
pub fn route_policies<'a>(
    forward: &'a Forward,
    host: &'a VirtualHost,
    option: VhRateLimits,
) -> impl Iterator<Item = &'a RateLimit> {
    let option = if forward.include_vh_rate_limits {
        VhRateLimits::Include
    } else {
        option
    };
    let host_counts = match option {
        VhRateLimits::Include => true,
        VhRateLimits::Ignore => false,
        VhRateLimits::Override => forward.rate_limits.is_empty(),
    };
    let host_limits: &[RateLimit] = if host_counts { &host.rate_limits } else { &[] };
    forward.rate_limits.iter().chain(host_limits)
}

/// One descriptor per applicable entry whose actions all apply. `stage`: keep only entries of that stage
/// (route policies); entries with a `disable_key` are skipped, as Envoy's local filter does.
pub fn populate<'a>(
    limits: impl Iterator<Item = &'a RateLimit>,
    stage: Option<u32>,
    request: &RequestView,
) -> Vec<Descriptor> {
    limits
        .filter(|l| stage.is_none_or(|s| l.stage == s) && l.disable_key.is_empty())
        .filter_map(|l| descriptor(&l.actions, request))
        .collect()
}

/// `None` when an action does not apply (the descriptor is dropped), or when no entry is left.
fn descriptor(actions: &[RateLimitAction], request: &RequestView) -> Option<Descriptor> {
    let mut entries = Vec::new();
    for action in actions {
        match entry(action, request) {
            Produced::Entry(e) => entries.push(e),
            Produced::Skip => {}
            Produced::Drop => return None,
        }
    }
    (!entries.is_empty()).then_some(entries)
}

enum Produced {
    Entry(DescriptorEntry),
    /// `skip_if_absent`: no entry, but the descriptor stands.
    Skip,
    /// The whole descriptor is dropped.
    Drop,
}

fn entry(action: &RateLimitAction, request: &RequestView) -> Produced {
    let make = |key: &str, value: String| {
        Produced::Entry(DescriptorEntry {
            key: key.to_string(),
            value,
        })
    };
    match action {
        RateLimitAction::GenericKey {
            descriptor_key,
            descriptor_value,
        } => make(descriptor_key, descriptor_value.clone()),
        RateLimitAction::RequestHeaders {
            header_name,
            descriptor_key,
            skip_if_absent,
        } => match request.headers.get(header_name.as_str()) {
            Some(value) => make(
                descriptor_key,
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ),
            None if *skip_if_absent => Produced::Skip,
            None => Produced::Drop,
        },
        RateLimitAction::RemoteAddress => make("remote_address", request.remote.to_string()),
        RateLimitAction::DestinationCluster => match &request.cluster {
            Some(cluster) => make("destination_cluster", cluster.clone()),
            None => Produced::Drop,
        },
        RateLimitAction::HeaderValueMatch {
            descriptor_key,
            descriptor_value,
            expect_match,
            headers,
        } => {
            let all = headers
                .iter()
                .all(|m| crate::http::route::headers_match(m, request.headers));
            if all == *expect_match {
                make(descriptor_key, descriptor_value.clone())
            } else {
                Produced::Drop
            }
        }
    }
}

/// The route's cluster as Envoy names it before the router runs: the configured one, or the `cluster_header`
/// value (empty when absent). Weighted clusters are picked later here, so they have none (the loader refuses a
/// `destination_cluster` action that could reach them).
pub fn destination_cluster(forward: &Forward, headers: &HeaderMap) -> Option<String> {
    match &forward.target {
        ClusterTarget::Cluster(name) => Some(name.to_string()),
        ClusterTarget::ClusterHeader(header) => Some(
            headers
                .get(header.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
        ),
        ClusterTarget::WeightedClusters(_) => None,
    }
}

/// The downstream address Envoy's connection manager settles on. With `use_remote_address` it is the one
/// already written to `x-envoy-external-address` (the peer, or the trusted hop of `x-forwarded-for`); without,
/// the `x-forwarded-for` entry `xff_num_trusted_hops` from the right, if it is an address; else the peer.
pub fn remote_address(
    headers: &HeaderMap,
    use_remote_address: bool,
    xff_num_trusted_hops: u32,
    peer: IpAddr,
) -> IpAddr {
    let parse = |value: &str| value.trim().parse::<IpAddr>().ok();
    if use_remote_address {
        return headers
            .get("x-envoy-external-address")
            .and_then(|v| v.to_str().ok())
            .and_then(parse)
            .unwrap_or(peer);
    }
    let joined: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = joined.join(",");
    usize::try_from(xff_num_trusted_hops)
        .ok()
        .and_then(|skip| joined.rsplit(',').nth(skip))
        .and_then(parse)
        .unwrap_or(peer)
}

#[cfg(test)]
#[path = "descriptors_tests.rs"]
mod tests;
