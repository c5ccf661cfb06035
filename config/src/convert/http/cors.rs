//! `envoy.filters.http.cors` and its `CorsPolicy`, from `typed_per_filter_config` or from the deprecated `cors`
//! field of a virtual host or route action (the same fields, so the old form is read through the new one).

use super::super::{Out, fraction, string_matcher};
use crate::diagnostic::Path;
use crate::model::cors::CorsPolicy;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3 as pb;

pub const POLICY: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";

pub fn policy(p: &pb::CorsPolicy, at: &Path, out: &mut Out) -> Option<CorsPolicy> {
    let allow_origin = p
        .allow_origin_string_match
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            string_matcher(m, &at.field("allow_origin_string_match").index(i), out)
        })
        .collect();
    for (field, value) in [
        ("allow_methods", &p.allow_methods),
        ("allow_headers", &p.allow_headers),
        ("expose_headers", &p.expose_headers),
        ("max_age", &p.max_age),
    ] {
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            out.error(
                &at.field(field),
                "must be a valid header value (no control characters such as newlines)",
            );
        }
    }
    // `runtime_key` is not read: with no runtime layers Envoy takes `default_value` too.
    let runtime =
        |r: &Option<RuntimeFractionalPercent>| r.as_ref().map(|r| fraction(&r.default_value));
    Some(CorsPolicy {
        allow_origin,
        allow_methods: p.allow_methods.clone(),
        allow_headers: p.allow_headers.clone(),
        expose_headers: p.expose_headers.clone(),
        max_age: p.max_age.clone(),
        allow_credentials: p.allow_credentials.map(|b| b.value),
        allow_private_network_access: p.allow_private_network_access.map(|b| b.value),
        forward_not_matching_preflights: p.forward_not_matching_preflights.map(|b| b.value),
        filter_enabled: runtime(&p.filter_enabled),
        shadow_enabled: runtime(&p.shadow_enabled),
    })
}

/// The deprecated `cors` of a virtual host or route action (Envoy 1.40 still accepts it, with a warning).
pub fn legacy(p: &route::CorsPolicy, at: &Path, out: &mut Out) -> Option<CorsPolicy> {
    use route::cors_policy::EnabledSpecifier;
    let same = pb::CorsPolicy {
        allow_origin_string_match: p.allow_origin_string_match.clone(),
        allow_methods: p.allow_methods.clone(),
        allow_headers: p.allow_headers.clone(),
        expose_headers: p.expose_headers.clone(),
        max_age: p.max_age.clone(),
        allow_credentials: p.allow_credentials,
        filter_enabled: p
            .enabled_specifier
            .as_ref()
            .map(|EnabledSpecifier::FilterEnabled(f)| f.clone()),
        shadow_enabled: p.shadow_enabled.clone(),
        allow_private_network_access: p.allow_private_network_access,
        forward_not_matching_preflights: p.forward_not_matching_preflights,
    };
    policy(&same, at, out)
}
