//! The `x-envoy-*` headers Envoy's router adds unless `suppress_envoy_headers` is set: the timeout the upstream
//! can expect on the request (set by the router), and how long the upstream took on the response (set by
//! `UpstreamReply`, which also leaves out `x-envoy-overloaded` on an overflow reply when the headers are
//! suppressed).

use http::{HeaderName, HeaderValue};
use outrigger_config::model::route::Forward;
use std::time::{Duration, Instant};

// Parsed names: a `&str` is parsed again at every use, and the first two are set on every request.
pub const EXPECTED_TIMEOUT: HeaderName = HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub const SERVICE_TIME: HeaderName = HeaderName::from_static("x-envoy-upstream-service-time");
pub const OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");

/// `x-envoy-expected-rq-timeout-ms` for the requests of one route (computed once per configuration snapshot);
/// none when no timeout applies. The router sets it before the route's header changes, as Envoy does, so a
/// `request_headers_to_remove` can take it away. (Envoy also lowers it on each retry to what is left of the route
/// timeout; here every attempt carries the first value.)
pub fn expected_timeout(forward: &Forward) -> Option<HeaderValue> {
    let timeout = expected(forward)?;
    HeaderValue::from_str(&timeout.as_millis().to_string()).ok()
}

/// As Envoy computes it: the per-try timeout when there is one shorter than the route's (and the route does not
/// hedge on it), else the route's timeout; nothing when neither is set (a route `timeout: 0s` and no per-try
/// timeout).
fn expected(forward: &Forward) -> Option<Duration> {
    let global = forward.timeout.filter(|t| !t.is_zero());
    let per_try = forward
        .retry_policy
        .as_ref()
        .and_then(|p| p.per_try_timeout)
        .filter(|t| !t.is_zero())
        // Envoy ignores a per-try timeout that is not shorter than the route's.
        .filter(|per_try| global.is_none_or(|global| *per_try < global));
    if forward.hedge_on_per_try_timeout {
        // Hedged attempts overlap: the caller waits for the route's timeout, so Envoy announces that.
        return global.or(per_try);
    }
    per_try.or(global)
}

/// `x-envoy-upstream-service-time`: whole milliseconds since the route handed the request upstream.
///
/// Envoy counts from the moment the downstream request was complete, and sets it only when the request was
/// complete before the response headers came; we count from when the router hands the request to the upstream
/// stack, which is the same moment for a request without a body, and set it on every upstream response.
pub fn service_time(since: Instant) -> HeaderValue {
    let millis = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Most answers take under a second: their values are made once, and a copy (an access log keeps one)
    // shares them instead of allocating.
    static SMALL: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let small = SMALL.get_or_init(|| (0..1000u64).map(HeaderValue::from).map(shared).collect());
    usize::try_from(millis)
        .ok()
        .and_then(|i| small.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(millis))
}

/// `value` with its bytes behind a reference count, so that copies do not allocate.
fn shared(value: HeaderValue) -> HeaderValue {
    let bytes = bytes::Bytes::from_owner(value.as_bytes().to_vec());
    HeaderValue::from_maybe_shared(bytes).unwrap_or(value)
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
            upgrades: Vec::new(),
            hash_policy: vec![],
            mirrors: vec![],
            cors: None,
        }
    }

    fn header(forward: &Forward) -> Option<String> {
        expected_timeout(forward).map(|v| v.to_str().unwrap_or_default().to_string())
    }

    fn expected(timeout: Option<u64>, per_try: Option<u64>) -> Option<String> {
        header(&forward(timeout, per_try))
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
    fn a_hedging_route_announces_its_whole_timeout() {
        let mut hedged = forward(Some(3_000), Some(1_000));
        hedged.hedge_on_per_try_timeout = true;
        assert_eq!(header(&hedged).as_deref(), Some("3000"));
    }
}
