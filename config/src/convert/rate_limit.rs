//! Rate limit actions (`rate_limits` on routes, virtual hosts and the local rate limit filter) and the local rate
//! limit filter's `descriptors`.

use super::Out;
use super::route::header_matcher;
use crate::diagnostic::Path;
use crate::model::http::TokenBucket;
use crate::model::rate_limit::{DescriptorEntry, LocalDescriptor, RateLimit, RateLimitAction};
use envoy_types::pb::envoy::config::route::v3 as pb;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3 as common;
use std::time::Duration;

/// A route's or virtual host's `rate_limits`.
pub fn rate_limits(limits: &[pb::RateLimit], at: &Path, out: &mut Out) -> Vec<RateLimit> {
    limits
        .iter()
        .enumerate()
        .filter_map(|(i, r)| rate_limit(r, &at.index(i), out))
        .collect()
}

/// The filter's own `rate_limits`: Envoy refuses `stage` and `disable_key` there.
pub fn filter_rate_limits(limits: &[pb::RateLimit], at: &Path, out: &mut Out) -> Vec<RateLimit> {
    for (i, r) in limits.iter().enumerate() {
        let at = at.index(i);
        // Envoy refuses the field set at all, even to 0.
        if r.stage.is_some() {
            out.error(
                &at.field("stage"),
                "not supported in the filter's own rate_limits (as in Envoy)",
            );
        }
        if !r.disable_key.is_empty() {
            out.error(
                &at.field("disable_key"),
                "not supported in the filter's own rate_limits (as in Envoy)",
            );
        }
    }
    rate_limits(limits, at, out)
}

fn rate_limit(r: &pb::RateLimit, at: &Path, out: &mut Out) -> Option<RateLimit> {
    let actions = r
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| action(a, &at.field("actions").index(i), out))
        .collect::<Option<Vec<_>>>()?;
    Some(RateLimit {
        stage: r.stage.map(|s| s.value).unwrap_or(0),
        disable_key: r.disable_key.clone(),
        actions,
    })
}

fn action(a: &pb::rate_limit::Action, at: &Path, out: &mut Out) -> Option<RateLimitAction> {
    use pb::rate_limit::action::ActionSpecifier as A;
    let or = |key: &str, default: &str| {
        if key.is_empty() {
            default.to_string()
        } else {
            key.to_string()
        }
    };
    Some(match a.action_specifier.as_ref()? {
        A::GenericKey(g) => RateLimitAction::GenericKey {
            descriptor_key: or(&g.descriptor_key, "generic_key"),
            descriptor_value: g.descriptor_value.clone(),
        },
        A::RequestHeaders(h) => RateLimitAction::RequestHeaders {
            header_name: h.header_name.to_ascii_lowercase(),
            descriptor_key: h.descriptor_key.clone(),
            skip_if_absent: h.skip_if_absent,
        },
        A::RemoteAddress(_) => RateLimitAction::RemoteAddress,
        A::DestinationCluster(_) => RateLimitAction::DestinationCluster,
        A::HeaderValueMatch(m) => RateLimitAction::HeaderValueMatch {
            descriptor_key: or(&m.descriptor_key, "header_match"),
            descriptor_value: m.descriptor_value.clone(),
            expect_match: m.expect_match.map(|b| b.value).unwrap_or(true),
            headers: m
                .headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    header_matcher(
                        h,
                        &at.field("header_value_match").field("headers").index(i),
                        out,
                    )
                })
                .collect::<Option<Vec<_>>>()?,
        },
        // The support table refuses the others by name before conversion.
        _ => {
            out.error(at, "this rate limit action is not supported; supported: generic_key, request_headers, remote_address, header_value_match, destination_cluster");
            return None;
        }
    })
}

/// `descriptors`: each needs a token bucket (the protos say so), a fill interval of at least 50 ms, and may
/// appear once (Envoy's own checks).
pub fn descriptors(
    list: &[common::LocalRateLimitDescriptor],
    at: &Path,
    out: &mut Out,
) -> Vec<LocalDescriptor> {
    let mut result: Vec<LocalDescriptor> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let at = at.index(i);
        let Some(bucket) = d.token_bucket.as_ref() else {
            out.error(
                &at.field("token_bucket"),
                "a descriptor needs a token_bucket",
            );
            continue;
        };
        let token_bucket = TokenBucket {
            max_tokens: bucket.max_tokens,
            tokens_per_fill: super::u32_or(&bucket.tokens_per_fill, 1),
            fill_interval: bucket
                .fill_interval
                .as_ref()
                .map(super::duration)
                .unwrap_or_default(),
        };
        if token_bucket.fill_interval < Duration::from_millis(50) {
            out.error(
                &at.field("token_bucket").field("fill_interval"),
                "must be at least 50ms (as in Envoy)",
            );
        }
        let descriptor = LocalDescriptor {
            entries: d
                .entries
                .iter()
                .map(|e| DescriptorEntry {
                    key: e.key.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            token_bucket,
        };
        if result.iter().any(|d| d.entries == descriptor.entries) {
            let shown: Vec<String> = descriptor.entries.iter().map(ToString::to_string).collect();
            out.error(
                &at.field("entries"),
                format!(
                    "duplicate descriptor in the local rate descriptor: {}",
                    shown.join(", ")
                ),
            );
            continue;
        }
        result.push(descriptor);
    }
    result
}

/// Whether these actions name the destination cluster: Outrigger picks a weighted cluster after the filter
/// has run, so such an action cannot see the pick as Envoy's does.
pub fn names_destination_cluster(limits: &[RateLimit]) -> bool {
    limits.iter().any(|l| {
        l.actions
            .iter()
            .any(|a| matches!(a, RateLimitAction::DestinationCluster))
    })
}

#[cfg(test)]
mod tests {
    use crate::model::http::HttpFilter;
    use crate::model::listener::NetworkFilter;
    use crate::model::rate_limit::VhRateLimits;
    use crate::{Format, load_bytes};

    fn filter(fields: &str) -> Result<crate::model::http::LocalRateLimit, String> {
        let yaml = format!(
            r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, direct_response: {{status: 200}}}}]}}]}}
          http_filters:
          - name: rl
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: rl{fields}}}
          - name: router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
        );
        let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).map_err(|p| format!("{p:?}"))?;
        match &loaded.snapshot.listeners[0].filter_chains[0].filters[0] {
            NetworkFilter::HttpConnectionManager(hcm) => match &hcm.http_filters[0] {
                HttpFilter::LocalRateLimit(l) => Ok(l.clone()),
                _ => Err("no filter".into()),
            },
            _ => Err("no connection manager".into()),
        }
    }

    #[test]
    fn envoy_defaults() {
        let l = filter("").unwrap();
        assert!(l.always_consume_default_token_bucket);
        assert_eq!(l.max_dynamic_descriptors, 20);
        assert_eq!(l.vh_rate_limits, VhRateLimits::Override);
        assert_eq!(l.stage, 0);
    }

    #[test]
    fn envoys_own_checks_name_the_path() {
        let bucket = "token_bucket: {max_tokens: 1, fill_interval: 1s}";
        let twice = filter(&format!(
            ", descriptors: [{{entries: [{{key: a, value: b}}], {bucket}}}, {{entries: [{{key: a, value: b}}], {bucket}}}]"
        ))
        .unwrap_err();
        assert!(
            twice.contains("descriptors[1].entries") && twice.contains("duplicate descriptor"),
            "{twice}"
        );
        let fast = filter(
            ", descriptors: [{entries: [{key: a}], token_bucket: {max_tokens: 1, fill_interval: 0.01s}}]",
        )
        .unwrap_err();
        assert!(
            fast.contains("descriptors[0].token_bucket.fill_interval"),
            "{fast}"
        );
        let staged =
            filter(", rate_limits: [{stage: 0, actions: [{generic_key: {descriptor_value: x}}]}]")
                .unwrap_err();
        assert!(staged.contains("rate_limits[0].stage"), "{staged}");
    }
}
