//! `envoy.filters.http.cache` with Envoy's in-memory `SimpleHttpCache` as its store.

use super::core::StringMatcher;
use serde::Serialize;

/// One `envoy.extensions.filters.http.cache.v3.CacheConfig`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cache {
    /// `disabled`: the filter passes every request on untouched (Envoy's default: false).
    pub disabled: bool,
    /// A response whose `vary` names a header none of these match is not stored; the request headers they match
    /// key the stored variants. Empty (Envoy's default): no response with a `vary` is stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_vary_headers: Vec<StringMatcher>,
    /// When true, the request's `cache-control` and `pragma` are not read (Envoy's default: false).
    pub ignore_request_cache_control_header: bool,
}
