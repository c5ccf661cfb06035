//! `envoy.filters.http.cache` over `SimpleHttpCacheConfig`.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.http.cache.v3.CacheConfig.typed_config",
        Tests(&[CACHE_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.cache.v3.CacheConfig.disabled",
        Tests(&[CACHE_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.cache.v3.CacheConfig.allowed_vary_headers",
        Tests(&[CACHE_DIFF, CACHE_VARY]),
    ),
    (
        "envoy.extensions.filters.http.cache.v3.CacheConfig.ignore_request_cache_control_header",
        Tests(&[CACHE_DIFF]),
    ),
];
