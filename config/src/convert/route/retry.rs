//! A route's (or virtual host's) `retry_policy`: conditions, limits, back-offs, host predicates and the
//! matchers that decide what may be retried.

use super::header_matcher;
use crate::convert::{Out, timeout_or, type_name, u32_or};
use crate::diagnostic::Path;
use crate::model::route::{HeaderMatcher, RateLimitedBackOff, ResetHeader, RetryOn, RetryPolicy};
use envoy_types::pb::envoy::config::route::v3 as pb;
use std::time::Duration;

const PREVIOUS_HOSTS: &str = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

pub(super) fn retry_policy(r: &pb::RetryPolicy, at: &Path, out: &mut Out) -> Option<RetryPolicy> {
    let mut retry_on = Vec::new();
    for name in r
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match RetryOn::parse(name) {
            Some(condition) => retry_on.push(condition),
            None => {
                let known: Vec<&str> = RetryOn::ALL.iter().map(|(n, _)| *n).collect();
                out.error(
                    &at.field("retry_on"),
                    format!(
                        "unknown retry condition {name:?}; known: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let back_off = r.retry_back_off.as_ref();
    let back_off_base = back_off
        .and_then(|b| b.base_interval.as_ref())
        .map(crate::convert::duration)
        .unwrap_or(Duration::from_millis(25));
    let back_off_max = back_off
        .and_then(|b| b.max_interval.as_ref())
        .map(crate::convert::duration)
        .unwrap_or(back_off_base * 10);
    if back_off_max < back_off_base {
        out.error(
            &at.field("retry_back_off").field("max_interval"),
            "must not be less than base_interval",
        );
    }
    let mut avoid_previous_hosts = false;
    for (i, predicate) in r.retry_host_predicate.iter().enumerate() {
        use pb::retry_policy::retry_host_predicate::ConfigType;
        // Envoy finds the extension by the type in `typed_config`; `name` alone finds nothing.
        let Some(ConfigType::TypedConfig(any)) = &predicate.config_type else {
            out.error(
                &at.field("retry_host_predicate").index(i),
                format!(
                    "{} needs a typed_config (as in Envoy: the extension is found by its type)",
                    predicate.name
                ),
            );
            continue;
        };
        let kind = type_name(any);
        if kind == PREVIOUS_HOSTS {
            avoid_previous_hosts = true;
        } else {
            out.error(
                &at.field("retry_host_predicate").index(i),
                format!("retry host predicate {kind} is not supported; supported: envoy.retry_host_predicates.previous_hosts"),
            );
        }
    }
    let mut retriable_status_codes = Vec::new();
    for (i, code) in r.retriable_status_codes.iter().enumerate() {
        match u16::try_from(*code) {
            Ok(code) if (100..=599).contains(&code) => retriable_status_codes.push(code),
            _ => out.error(
                &at.field("retriable_status_codes").index(i),
                format!("{code} is not an HTTP status code"),
            ),
        }
    }
    let matchers = |list: &[pb::HeaderMatcher], field: &str, out: &mut Out| -> Vec<HeaderMatcher> {
        list.iter()
            .enumerate()
            .filter_map(|(i, h)| header_matcher(h, &at.field(field).index(i), out))
            .collect()
    };
    let retriable_headers = matchers(&r.retriable_headers, "retriable_headers", out);
    let retriable_request_headers = matchers(
        &r.retriable_request_headers,
        "retriable_request_headers",
        out,
    );
    let rate_limited_back_off = r.rate_limited_retry_back_off.as_ref().map(|b| {
        use pb::retry_policy::ResetHeaderFormat;
        RateLimitedBackOff {
            reset_headers: b
                .reset_headers
                .iter()
                .map(|h| ResetHeader {
                    name: h.name.to_ascii_lowercase(),
                    unix_timestamp: h.format == ResetHeaderFormat::UnixTimestamp as i32,
                })
                .collect(),
            max_interval: b
                .max_interval
                .as_ref()
                .map(crate::convert::duration)
                .unwrap_or(Duration::from_secs(300)),
        }
    });
    Some(RetryPolicy {
        retry_on,
        retriable_headers,
        retriable_request_headers,
        rate_limited_back_off,
        num_retries: u32_or(&r.num_retries, 1),
        per_try_timeout: timeout_or(&r.per_try_timeout, None),
        per_try_idle_timeout: timeout_or(&r.per_try_idle_timeout, None),
        back_off_base,
        back_off_max,
        retriable_status_codes,
        avoid_previous_hosts,
        host_selection_retry_max_attempts: if r.host_selection_retry_max_attempts == 0 {
            1
        } else {
            r.host_selection_retry_max_attempts
        },
    })
}
