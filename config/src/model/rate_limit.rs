//! Rate limit actions and local rate limit descriptors: how a request becomes descriptors (lists of key/value
//! entries), and which descriptors have a token bucket of their own.
//!
//! The actions come from a route's or virtual host's `rate_limits` (`envoy.config.route.v3.RateLimit`), or from
//! the local rate limit filter's own `rate_limits`, which then replace the route's. The filter's `descriptors`
//! give buckets to the descriptors they list.

use super::http::TokenBucket;
use super::route::HeaderMatcher;
use serde::Serialize;

/// One `rate_limits` entry: its actions together make one descriptor, or none when an action does not apply.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateLimit {
    /// Envoy's default: 0. Only the filters of the same `stage` read it.
    pub stage: u32,
    /// Envoy's default: empty. A local rate limit filter skips an entry that has one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub disable_key: String,
    pub actions: Vec<RateLimitAction>,
}

/// `envoy.config.route.v3.RateLimit.Action`: each adds one entry to the descriptor.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitAction {
    /// `(descriptor_key, descriptor_value)`; Envoy's default key: `generic_key`.
    GenericKey {
        descriptor_key: String,
        descriptor_value: String,
    },
    /// `(descriptor_key, <the header's first value>)`. Without the header, the whole descriptor is dropped,
    /// unless `skip_if_absent` (Envoy's default: false), which drops only this entry.
    RequestHeaders {
        /// Lower case.
        header_name: String,
        descriptor_key: String,
        skip_if_absent: bool,
    },
    /// `("remote_address", <the downstream address as the connection manager decides it>)`.
    RemoteAddress,
    /// `(descriptor_key, descriptor_value)` when every matcher matches (`expect_match`, Envoy's default: true)
    /// or when one does not (`expect_match: false`); otherwise the descriptor is dropped. Envoy's default key:
    /// `header_match`.
    HeaderValueMatch {
        descriptor_key: String,
        descriptor_value: String,
        expect_match: bool,
        headers: Vec<HeaderMatcher>,
    },
    /// `("destination_cluster", <the route's cluster>)`.
    DestinationCluster,
}

/// `vh_rate_limits`: whether the virtual host's `rate_limits` count next to the route's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VhRateLimits {
    /// Envoy's default: the virtual host's only when the route has no `rate_limits` (of any stage).
    #[default]
    Override,
    /// Always both.
    Include,
    /// Never the virtual host's.
    Ignore,
}

/// A descriptor the filter limits, with its own bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalDescriptor {
    /// In order; a request descriptor must have the same keys in the same order.
    pub entries: Vec<DescriptorEntry>,
    pub token_bucket: TokenBucket,
}

impl LocalDescriptor {
    /// An entry with an empty value matches any value: each distinct value gets a bucket of its own.
    pub fn is_wildcard(&self) -> bool {
        self.entries.iter().any(|e| e.value.is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct DescriptorEntry {
    pub key: String,
    pub value: String,
}

impl std::fmt::Display for DescriptorEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}
