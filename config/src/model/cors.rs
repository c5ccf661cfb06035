//! `envoy.filters.http.cors` and the CORS policies it reads from routes and virtual hosts.

use super::core::{Fraction, StringMatcher};
use serde::Serialize;

/// `envoy.filters.http.cors` in a chain (its typed config has no fields).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cors {
    /// The filter's `name` in the chain: `typed_per_filter_config` is keyed by it.
    pub filter_name: String,
}

/// One `CorsPolicy`: from `typed_per_filter_config` (`envoy.extensions.filters.http.cors.v3.CorsPolicy`) or the
/// deprecated `cors` field of a virtual host or route action (`envoy.config.route.v3.CorsPolicy`), which Envoy
/// reads only when no per-filter policy applies. The filter takes each field from the route's policy when it
/// sets it, else from the virtual host's; `filter_enabled` and `shadow_enabled` come from the most specific
/// policy alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CorsPolicy {
    /// Empty: unset (the next policy's origins apply).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<StringMatcher>,
    /// Empty strings are unset, as in Envoy.
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: Option<bool>,
    pub allow_private_network_access: Option<bool>,
    /// Envoy's default (no policy sets it): true.
    pub forward_not_matching_preflights: Option<bool>,
    /// Unset: enabled. The `runtime_key` is not read (no runtime layers): the default value applies.
    pub filter_enabled: Option<Fraction>,
    /// Unset: not shadowing.
    pub shadow_enabled: Option<Fraction>,
}
