//! `envoy.filters.http.cache` (`CacheConfig`) over `SimpleHttpCacheConfig`, the one store Outrigger has (Envoy's
//! in-memory cache). `key_creator_params` and `max_body_bytes` are accepted with the support table's warning:
//! Envoy 1.40 marks both not implemented and acts on neither (checked with real Envoy: a body past
//! `max_body_bytes` is still stored, `exclude_host` still keys by host).

use super::super::{Out, decode_any, string_matcher, type_name};
use crate::diagnostic::Path;
use crate::model::cache::Cache;
use envoy_types::pb::envoy::extensions::filters::http::cache::v3 as pb;
use envoy_types::pb::envoy::extensions::http::cache::simple_http_cache::v3 as simple;

pub const CONFIG: &str = "envoy.extensions.filters.http.cache.v3.CacheConfig";
pub const SIMPLE: &str = "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig";

pub fn cache(c: &pb::CacheConfig, at: &Path, out: &mut Out) -> Option<Cache> {
    let disabled = c.disabled.as_ref().is_some_and(|d| d.value);
    let typed_at = at.field("typed_config");
    match &c.typed_config {
        Some(any) if type_name(any) == SIMPLE => {
            decode_any::<simple::SimpleHttpCacheConfig>(any, &typed_at, out)?;
        }
        Some(any) => {
            out.error(
                &typed_at,
                format!(
                    "HTTP cache store {} is not supported; use {SIMPLE}",
                    type_name(any)
                ),
            );
            return None;
        }
        // Envoy's own rule.
        None if !disabled => {
            out.error(at, "at least one of typed_config or disabled must be set");
            return None;
        }
        None => {}
    }
    let allowed_vary_headers = c
        .allowed_vary_headers
        .iter()
        .enumerate()
        .filter_map(|(i, m)| string_matcher(m, &at.field("allowed_vary_headers").index(i), out))
        .collect();
    Some(Cache {
        disabled,
        allowed_vary_headers,
        ignore_request_cache_control_header: c.ignore_request_cache_control_header,
    })
}
