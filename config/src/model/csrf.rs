//! `envoy.filters.http.csrf`: its policy in the chain and in `typed_per_filter_config` of routes and virtual hosts.

use super::core::{Fraction, StringMatcher};
use serde::Serialize;

/// `envoy.filters.http.csrf` in a chain: its own policy applies where no route or virtual host has one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Csrf {
    /// The filter's `name` in the chain: `typed_per_filter_config` is keyed by it.
    pub filter_name: String,
    pub policy: CsrfPolicy,
}

/// One `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`. The filter uses the most specific policy whole (the
/// route's, else the virtual host's, else its own); fields are not merged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CsrfPolicy {
    /// `filter_enabled.default_value` (the `runtime_key` is not read: with no runtime layers Envoy takes the
    /// default too). Required by Envoy.
    pub filter_enabled: Fraction,
    /// `shadow_enabled.default_value`; unset: never shadowing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_enabled: Option<Fraction>,
    /// Matched against the source origin's `host[:port]` (no scheme), as Envoy matches them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_origins: Vec<StringMatcher>,
}
