//! `envoy.filters.http.csrf`: the same `CsrfPolicy` message as the filter's config and as a route's or virtual
//! host's `typed_per_filter_config`.

use super::super::{Out, fraction, string_matcher};
use crate::diagnostic::Path;
use crate::model::csrf::CsrfPolicy;
use envoy_types::pb::envoy::extensions::filters::http::csrf::v3 as pb;

pub const POLICY: &str = "envoy.extensions.filters.http.csrf.v3.CsrfPolicy";

pub fn policy(p: &pb::CsrfPolicy, at: &Path, out: &mut Out) -> Option<CsrfPolicy> {
    let additional_origins = p
        .additional_origins
        .iter()
        .enumerate()
        .filter_map(|(i, m)| string_matcher(m, &at.field("additional_origins").index(i), out))
        .collect();
    // `runtime_key`s are not read: with no runtime layers Envoy takes `default_value` too. `filter_enabled`
    // is required (the descriptors' rules refuse a policy without it before this runs).
    Some(CsrfPolicy {
        filter_enabled: fraction(&p.filter_enabled.as_ref().and_then(|f| f.default_value)),
        shadow_enabled: p
            .shadow_enabled
            .as_ref()
            .map(|s| fraction(&s.default_value)),
        additional_origins,
    })
}
