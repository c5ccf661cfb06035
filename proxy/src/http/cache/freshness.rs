//! What Envoy 1.40's cache filter reads in `cache-control`, `pragma`, `date`, `expires` and `age`: whether a
//! request may use the cache, whether a response may be stored, a stored response's age and whether it must be
//! validated upstream before it is served. Pure functions of headers and times, tested in `tests.rs`.
//!
//! Envoy's quirks kept on purpose (checked with real Envoy 1.40): a `date` that is missing or unreadable counts
//! as the Unix epoch, so such an entry is always too old and is validated on every use (and a response with
//! `expires` but no `date` is not stored); `s-maxage` wins over `max-age`; `private` counts as `no-store`; the
//! age is whole seconds, truncated.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The statuses Envoy stores (RFC 7231 6.1, RFC 7538, RFC 7725).
const CACHEABLE_STATUSES: &[u16] = &[
    200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 451, 501,
];

/// Request conditions the filter leaves to the upstream: such a request bypasses the cache.
const CONDITIONAL: &[&str] = &["if-none-match", "if-modified-since", "if-range"];

/// The directives of a request's `cache-control` the filter acts on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestCacheControl {
    /// `no-cache` (or `pragma: no-cache` without a `cache-control`).
    pub must_validate: bool,
    /// `no-store`: the response is not stored (a stored one may still be served).
    pub no_store: bool,
    pub max_age: Option<Duration>,
    pub min_fresh: Option<Duration>,
    /// `max-stale` without a value: any staleness.
    pub max_stale: Option<Duration>,
}

/// The directives of a response's `cache-control` the filter acts on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseCacheControl {
    /// `no-cache`: stored, validated on every use.
    pub must_validate: bool,
    /// `no-store` or `private` (the cache is shared).
    pub no_store: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub no_stale: bool,
    /// `s-maxage`, else `max-age`.
    pub max_age: Option<Duration>,
}

/// Every value of a header, joined by commas (how Envoy holds `cache-control`).
fn joined(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// `delta-seconds`, quoted or not; anything else (negative, not a number) is ignored, as in Envoy.
fn seconds(argument: &str) -> Option<Duration> {
    let s = argument.trim();
    let s = if s.len() > 1 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    };
    s.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_secs)
}

/// Each directive of a `cache-control` value, as (name, argument).
fn directives(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').map(|d| {
        let d = d.trim();
        d.split_once('=').unwrap_or((d, ""))
    })
}

impl RequestCacheControl {
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        for (name, argument) in directives(value) {
            match name {
                "no-cache" => cc.must_validate = true,
                "no-store" => cc.no_store = true,
                "max-age" => cc.max_age = seconds(argument),
                "min-fresh" => cc.min_fresh = seconds(argument),
                "max-stale" if argument.is_empty() => cc.max_stale = Some(Duration::MAX),
                "max-stale" => cc.max_stale = seconds(argument),
                _ => {}
            }
        }
        cc
    }

    /// The request's `cache-control`, else `pragma: no-cache`; nothing when the config ignores them.
    pub fn of(headers: &HeaderMap, ignore: bool) -> Self {
        if ignore {
            return Self::default();
        }
        let value = joined(headers, "cache-control");
        if !value.is_empty() {
            return Self::parse(&value);
        }
        Self {
            must_validate: Self::parse(&joined(headers, "pragma")).must_validate,
            ..Self::default()
        }
    }
}

impl ResponseCacheControl {
    pub fn parse(value: &str) -> Self {
        let mut cc = Self::default();
        let mut s_maxage = false;
        for (name, argument) in directives(value) {
            match name {
                "no-cache" => cc.must_validate = true,
                "must-revalidate" | "proxy-revalidate" => cc.no_stale = true,
                "no-store" | "private" => cc.no_store = true,
                "s-maxage" => {
                    cc.max_age = seconds(argument);
                    s_maxage = true;
                }
                "max-age" if !s_maxage && cc.max_age.is_none() => cc.max_age = seconds(argument),
                _ => {}
            }
        }
        cc
    }

    pub fn of(headers: &HeaderMap) -> Self {
        Self::parse(&joined(headers, "cache-control"))
    }
}

/// An HTTP date in any of its three forms; missing or unreadable is the Unix epoch, as in Envoy.
pub fn http_time(value: Option<&HeaderValue>) -> SystemTime {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(UNIX_EPOCH)
}

/// True when the value is a date Envoy can read.
pub fn is_http_time(value: Option<&HeaderValue>) -> bool {
    http_time(value) != UNIX_EPOCH
}

/// `a - b` in signed nanoseconds.
fn diff(a: SystemTime, b: SystemTime) -> i128 {
    match a.duration_since(b) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

const NANOS: i128 = 1_000_000_000;

/// The stored response's age now, in whole seconds (RFC 7234 4.2.3 as Envoy computes it): the larger of its
/// apparent age when received and its `age` header, plus the time it has been stored.
pub fn age(headers: &HeaderMap, response_time: SystemTime, now: SystemTime) -> i64 {
    let date = http_time(headers.get(http::header::DATE));
    let age_value: i128 = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .into();
    let apparent = diff(response_time, date).max(0);
    let initial = apparent.max(age_value * NANOS);
    let current = initial + diff(now, response_time);
    // Truncated toward zero, as `duration_cast` does.
    i64::try_from(current / NANOS).unwrap_or(i64::MAX)
}

/// Whether a stored response of this age must be validated upstream before it answers this request.
pub fn requires_validation(headers: &HeaderMap, age: i64, request: &RequestCacheControl) -> bool {
    let response = ResponseCacheControl::of(headers);
    let age = i128::from(age) * NANOS;
    let nanos = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
    let max_age_exceeded = request.max_age.is_some_and(|m| nanos(m) < age);
    if response.must_validate || request.must_validate || max_age_exceeded {
        return true;
    }
    let lifetime = match response.max_age {
        Some(max_age) => nanos(max_age),
        None => diff(
            http_time(headers.get(http::header::EXPIRES)),
            http_time(headers.get(http::header::DATE)),
        ),
    };
    if age > lifetime {
        let allowed_stale = request.max_stale.is_some_and(|m| nanos(m) > age - lifetime);
        response.no_stale || !allowed_stale
    } else {
        request.min_fresh.is_some_and(|m| nanos(m) > lifetime - age)
    }
}

/// Whether the request may be answered from (and stored in) the cache at all.
pub fn request_is_cacheable(
    method: &Method,
    headers: &HeaderMap,
    has_host: bool,
    scheme: &str,
    has_body: bool,
) -> bool {
    !has_body
        && !CONDITIONAL.iter().any(|h| headers.contains_key(*h))
        && has_host
        && !headers.contains_key(http::header::AUTHORIZATION)
        && (method == Method::GET || method == Method::HEAD)
        && matches!(scheme, "http" | "https")
}

/// Whether a response may be stored: a status Envoy stores, freshness information, no `no-store`/`private`,
/// and a `vary` naming only allowed headers.
pub fn response_is_cacheable(
    status: StatusCode,
    headers: &HeaderMap,
    vary_allowed: impl Fn(&str) -> bool,
) -> bool {
    let cc = ResponseCacheControl::of(headers);
    let has_freshness = cc.must_validate
        || cc.max_age.is_some()
        || (headers.contains_key(http::header::DATE)
            && headers.contains_key(http::header::EXPIRES));
    !cc.no_store
        && CACHEABLE_STATUSES.contains(&status.as_u16())
        && has_freshness
        && vary_allows(headers, vary_allowed)
}

/// True when the response has a non-empty `vary`.
pub fn has_vary(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::VARY)
        .is_some_and(|v| !v.is_empty())
}

/// The header names in `vary`, as written.
pub fn vary_values(headers: &HeaderMap) -> Vec<String> {
    joined(headers, "vary")
        .split(',')
        .map(|v| v.trim().to_string())
        .collect()
}

fn vary_allows(headers: &HeaderMap, allowed: impl Fn(&str) -> bool) -> bool {
    if !has_vary(headers) {
        return true;
    }
    vary_values(headers)
        .iter()
        .all(|name| name != "*" && allowed(name))
}

/// What keys a response that varies: each varied header's request values (sorted by name, empty names
/// skipped); `None` when a name is not allowed.
pub fn vary_identifier(
    vary: &[String],
    request: &HeaderMap,
    allowed: impl Fn(&str) -> bool,
) -> Option<String> {
    let mut names: Vec<&str> = vary
        .iter()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut id = String::from("vary-id\n");
    for name in names {
        if !allowed(name) {
            return None;
        }
        let values: Vec<String> = request
            .get_all(name.to_ascii_lowercase().as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        id.push_str(name);
        id.push('\r');
        id.push_str(&values.join("\r"));
        id.push('\n');
    }
    Some(id)
}
