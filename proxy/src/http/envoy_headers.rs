//! The `x-envoy-*` headers Envoy's router adds unless `suppress_envoy_headers` is set: the timeout the upstream
//! can expect on the request, and how long the upstream took on the response. (`x-envoy-overloaded` on an
//! overflow reply is the third; `UpstreamReply` leaves it out when the headers are suppressed.)

use http::HeaderValue;
use outrigger_config::model::route::Forward;
use std::time::{Duration, Instant};

pub const EXPECTED_TIMEOUT: &str = "x-envoy-expected-rq-timeout-ms";
pub const SERVICE_TIME: &str = "x-envoy-upstream-service-time";
pub const OVERLOADED: &str = "x-envoy-overloaded";

/// What the router adds for one route, computed once per configuration snapshot.
#[derive(Clone, Debug)]
pub struct RouterHeaders {
    /// `x-envoy-expected-rq-timeout-ms` for every request on the route; none when no timeout applies.
    pub expected_timeout: Option<HeaderValue>,
}

impl RouterHeaders {
    /// None when the router filter says `suppress_envoy_headers: true`.
    pub fn for_route(forward: &Forward, suppress_envoy_headers: bool) -> Option<Self> {
        (!suppress_envoy_headers).then(|| RouterHeaders {
            expected_timeout: expected_timeout(forward)
                .and_then(|t| HeaderValue::from_str(&t.as_millis().to_string()).ok()),
        })
    }
}

/// As Envoy computes it: the per-try timeout when there is one shorter than the route's, else the route's
/// timeout; nothing when neither is set (a route `timeout: 0s` and no per-try timeout).
fn expected_timeout(forward: &Forward) -> Option<Duration> {
    let global = forward.timeout.filter(|t| !t.is_zero());
    let per_try = forward
        .retry_policy
        .as_ref()
        .and_then(|p| p.per_try_timeout)
        .filter(|t| !t.is_zero())
        // Envoy ignores a per-try timeout that is not shorter than the route's.
        .filter(|per_try| global.is_none_or(|global| *per_try < global));
    per_try.or(global)
}

/// `x-envoy-upstream-service-time`: whole milliseconds since the route handed the request upstream.
///
/// Envoy counts from the moment the downstream request was complete; we count from when the router hands the
/// request to the upstream stack, which is the same moment for a request without a body and, for a streamed
/// body, includes the time the client took to send it.
pub fn service_time(since: Instant) -> HeaderValue {
    HeaderValue::from(u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::model::route::{ClusterTarget, HostRewrite, RetryPolicy};

    fn forward(timeout: Option<u64>, per_try: Option<u64>) -> Forward {
        Forward {
            target: ClusterTarget::Cluster("c".into()),
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: HostRewrite::Keep,
            timeout: timeout.map(Duration::from_millis),
            idle_timeout: None,
            retry_policy: per_try.map(|ms| RetryPolicy {
                per_try_timeout: Some(Duration::from_millis(ms)),
                ..crate::http::testing::policy(&[], 1)
            }),
            hedge_on_per_try_timeout: false,
            rate_limits: vec![],
            include_vh_rate_limits: false,
        }
    }

    fn expected(timeout: Option<u64>, per_try: Option<u64>) -> Option<String> {
        RouterHeaders::for_route(&forward(timeout, per_try), false)
            .and_then(|h| h.expected_timeout)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }

    #[test]
    fn the_expected_timeout_is_the_per_try_one_when_shorter_than_the_route_timeout() {
        assert_eq!(expected(Some(15_000), None).as_deref(), Some("15000"));
        assert_eq!(expected(Some(3_000), Some(1_000)).as_deref(), Some("1000"));
        // A per-try timeout not shorter than the route's is ignored, as Envoy does.
        assert_eq!(expected(Some(3_000), Some(5_000)).as_deref(), Some("3000"));
        // No route timeout: the per-try one alone, or nothing.
        assert_eq!(expected(None, Some(2_000)).as_deref(), Some("2000"));
        assert_eq!(expected(None, None), None);
    }

    #[test]
    fn suppressed_headers_are_not_computed() {
        assert!(RouterHeaders::for_route(&forward(Some(1_000), None), true).is_none());
    }
}
