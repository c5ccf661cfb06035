#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::freshness::{
    RequestCacheControl, ResponseCacheControl, age, request_is_cacheable, requires_validation,
    response_is_cacheable,
};
use super::range::{Part, part};
use super::store::{Entry, MAX_ENTRIES, MAX_ENTRY_BYTES, Slot, Store};
use super::{CacheFilter, insert, lookup};
use crate::http::local_reply::{self, ResponseBody};
use crate::upstream::UpstreamBody;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use outrigger_config::model::cache::Cache;
use outrigger_config::model::core::{StringMatch, StringMatcher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

/// 2024-01-01T00:00:00Z and its HTTP form.
const T0: u64 = 1_704_067_200;
const T0_TEXT: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

fn at(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(seconds)
}

#[test]
fn age_is_apparent_age_or_age_header_plus_resident_time_truncated() {
    let dated = headers(&[("date", T0_TEXT)]);
    // Received 0.9 s after its date, looked up 1.05 s later: 1.95 s, so 1.
    assert_eq!(age(&dated, at(0.9), at(1.95)), 1);
    assert_eq!(age(&dated, at(0.9), at(2.0)), 2);
    // An `age` header larger than the apparent age wins.
    let aged = headers(&[("date", T0_TEXT), ("age", "30")]);
    assert_eq!(age(&aged, at(0.2), at(0.2)), 30);
    // A date in the future gives no negative apparent age.
    let future = headers(&[("date", "Mon, 01 Jan 2024 00:01:00 GMT")]);
    assert_eq!(age(&future, at(0.0), at(3.5)), 3);
    // No (or an unreadable) date is the epoch: as old as the clock.
    let undated = HeaderMap::new();
    assert_eq!(age(&undated, at(0.0), at(0.0)), T0 as i64);
    let garbled = headers(&[("date", "yesterday")]);
    assert_eq!(age(&garbled, at(0.0), at(0.0)), T0 as i64);
    // The obsolete date forms are read too.
    let rfc850 = headers(&[("date", "Monday, 01-Jan-24 00:00:00 GMT")]);
    assert_eq!(age(&rfc850, at(5.0), at(5.0)), 5);
    let asctime = headers(&[("date", "Mon Jan  1 00:00:00 2024")]);
    assert_eq!(age(&asctime, at(5.0), at(5.0)), 5);
}

#[test]
fn freshness_follows_max_age_s_maxage_and_expires() {
    let none = RequestCacheControl::default();
    let max_age = headers(&[("cache-control", "max-age=10")]);
    assert!(!requires_validation(&max_age, 10, &none));
    assert!(requires_validation(&max_age, 11, &none));
    // `s-maxage` wins over `max-age`, in either order.
    let shared = headers(&[("cache-control", "max-age=0, s-maxage=100")]);
    assert!(!requires_validation(&shared, 50, &none));
    let shared_first = headers(&[("cache-control", "s-maxage=100, max-age=0")]);
    assert!(!requires_validation(&shared_first, 50, &none));
    // Quoted and repeated headers are read; a bad value is ignored.
    let quoted = headers(&[
        ("cache-control", "public"),
        ("cache-control", "max-age=\"5\""),
    ]);
    assert!(!requires_validation(&quoted, 5, &none));
    assert_eq!(ResponseCacheControl::parse("max-age=-1").max_age, None);
    // Without max-age: `expires - date`.
    let expires = headers(&[
        ("date", T0_TEXT),
        ("expires", "Mon, 01 Jan 2024 00:01:40 GMT"),
    ]);
    assert!(!requires_validation(&expires, 100, &none));
    assert!(requires_validation(&expires, 101, &none));
    // `no-cache` in the response: validated on every use.
    let no_cache = headers(&[("cache-control", "no-cache, max-age=100")]);
    assert!(requires_validation(&no_cache, 0, &none));
}

#[test]
fn request_directives_tighten_or_loosen_freshness() {
    let stored = headers(&[("cache-control", "max-age=10")]);
    let req = |v: &str| RequestCacheControl::of(&headers(&[("cache-control", v)]), false);
    assert!(requires_validation(&stored, 0, &req("no-cache")));
    assert!(requires_validation(&stored, 3, &req("max-age=2")));
    assert!(!requires_validation(&stored, 2, &req("max-age=2")));
    assert!(requires_validation(&stored, 5, &req("min-fresh=6")));
    assert!(!requires_validation(&stored, 5, &req("min-fresh=4")));
    assert!(!requires_validation(&stored, 15, &req("max-stale=10")));
    assert!(requires_validation(&stored, 25, &req("max-stale=10")));
    assert!(!requires_validation(&stored, 1000, &req("max-stale")));
    let strict = headers(&[("cache-control", "max-age=10, must-revalidate")]);
    assert!(requires_validation(&strict, 15, &req("max-stale")));
    // `pragma: no-cache` counts only without a `cache-control`.
    let pragma = headers(&[("pragma", "no-cache")]);
    assert!(RequestCacheControl::of(&pragma, false).must_validate);
    let both = headers(&[("pragma", "no-cache"), ("cache-control", "max-age=100")]);
    assert!(!RequestCacheControl::of(&both, false).must_validate);
    // `ignore_request_cache_control_header`.
    let ignored = headers(&[("cache-control", "no-cache, no-store")]);
    assert_eq!(
        RequestCacheControl::of(&ignored, true),
        RequestCacheControl::default()
    );
    assert!(req("no-store").no_store);
}

#[test]
fn which_requests_and_responses_use_the_cache() {
    let plain = HeaderMap::new();
    assert!(request_is_cacheable(
        &Method::GET,
        &plain,
        true,
        "http",
        false
    ));
    assert!(request_is_cacheable(
        &Method::HEAD,
        &plain,
        true,
        "https",
        false
    ));
    assert!(!request_is_cacheable(
        &Method::POST,
        &plain,
        true,
        "http",
        false
    ));
    assert!(!request_is_cacheable(
        &Method::GET,
        &plain,
        true,
        "http",
        true
    ));
    assert!(!request_is_cacheable(
        &Method::GET,
        &plain,
        false,
        "http",
        false
    ));
    for h in [
        "authorization",
        "if-none-match",
        "if-modified-since",
        "if-range",
    ] {
        assert!(
            !request_is_cacheable(&Method::GET, &headers(&[(h, "x")]), true, "http", false),
            "{h}"
        );
    }
    // `if-match` and `if-unmodified-since` may be ignored by a cache.
    let if_match = headers(&[("if-match", "x")]);
    assert!(request_is_cacheable(
        &Method::GET,
        &if_match,
        true,
        "http",
        false
    ));

    let yes = |_: &str| true;
    let fresh = headers(&[("cache-control", "max-age=10")]);
    for code in [
        200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 451, 501,
    ] {
        let status = StatusCode::from_u16(code).unwrap();
        assert!(response_is_cacheable(status, &fresh, yes), "{code}");
    }
    for code in [201, 302, 307, 400, 500, 503] {
        let status = StatusCode::from_u16(code).unwrap();
        assert!(!response_is_cacheable(status, &fresh, yes), "{code}");
    }
    let ok = StatusCode::OK;
    for cc in ["private, max-age=10", "no-store, max-age=10", "public"] {
        assert!(
            !response_is_cacheable(ok, &headers(&[("cache-control", cc)]), yes),
            "{cc}"
        );
    }
    assert!(response_is_cacheable(
        ok,
        &headers(&[("cache-control", "no-cache")]),
        yes
    ));
    let expires_only = headers(&[("expires", T0_TEXT)]);
    assert!(!response_is_cacheable(ok, &expires_only, yes));
    let expires_dated = headers(&[("expires", T0_TEXT), ("date", T0_TEXT)]);
    assert!(response_is_cacheable(ok, &expires_dated, yes));
    let star = headers(&[("cache-control", "max-age=1"), ("vary", "*")]);
    assert!(!response_is_cacheable(ok, &star, yes));
    let vary = headers(&[
        ("cache-control", "max-age=1"),
        ("vary", "accept, user-agent"),
    ]);
    assert!(!response_is_cacheable(ok, &vary, |n| n == "accept"));
    assert!(response_is_cacheable(ok, &vary, |n| n == "accept" || n == "user-agent"));
}

#[test]
fn ranges_are_read_as_envoy_reads_them() {
    assert_eq!(part(None, 20), Part::Whole);
    assert_eq!(part(Some("bytes=0-3"), 20), Part::Range(0, 4));
    assert_eq!(part(Some("bytes=5-"), 20), Part::Range(5, 20));
    assert_eq!(part(Some("bytes=-4"), 20), Part::Range(16, 20));
    assert_eq!(part(Some("bytes=5-100"), 20), Part::Range(5, 20));
    assert_eq!(part(Some("bytes=0-"), 20), Part::Whole);
    assert_eq!(part(Some("bytes=0-19"), 20), Part::Whole);
    assert_eq!(part(Some("bytes=-20"), 20), Part::Whole);
    assert_eq!(part(Some("bytes=100-"), 20), Part::Unsatisfiable);
    assert_eq!(part(Some("bytes=-0"), 20), Part::Unsatisfiable);
    assert_eq!(part(Some("bytes=0-1,3-4"), 20), Part::Whole);
    assert_eq!(part(Some("items=0-1"), 20), Part::Whole);
    assert_eq!(part(Some("bytes=3-1"), 20), Part::Whole);
    assert_eq!(part(Some("bytes=0-1"), 0), Part::Unsatisfiable);
}

fn entry(body: usize) -> Entry {
    Entry {
        status: StatusCode::OK,
        headers: headers(&[("cache-control", "max-age=10"), ("etag", "\"a\"")]),
        body: Bytes::from(vec![b'x'; body]),
        trailers: None,
        response_time: SystemTime::now(),
    }
}

#[test]
fn the_store_is_bounded_and_drops_its_oldest_entries_first() {
    let mut store = Store::default();
    for i in 0..MAX_ENTRIES + 5 {
        store.insert(format!("k{i}"), Slot::Response(Arc::new(entry(1))));
    }
    assert_eq!(store.len(), MAX_ENTRIES);
    assert!(store.get("k0").is_none());
    assert!(store.get("k4").is_none());
    assert!(store.get("k5").is_some());
    // Replacing an entry keeps one copy and its bytes once.
    let before = store.bytes();
    store.insert("k5".into(), Slot::Response(Arc::new(entry(1))));
    assert_eq!(store.bytes(), before);
    // A response past the per-entry bound is not stored.
    store.insert(
        "big".into(),
        Slot::Response(Arc::new(entry(MAX_ENTRY_BYTES))),
    );
    assert!(store.get("big").is_none());
}

#[test]
fn a_304_refreshes_stored_headers_but_not_those_of_the_body() {
    let mut store = Store::default();
    store.insert("k".into(), Slot::Response(Arc::new(entry(3))));
    let merged = headers(&[
        ("cache-control", "max-age=99"),
        ("etag", "\"b\""),
        ("content-length", "0"),
        ("x-new", "1"),
        ("x-new", "2"),
    ]);
    store.update_headers("k", &merged, at(0.0));
    let Some(Slot::Response(e)) = store.get("k") else {
        panic!("entry gone");
    };
    assert_eq!(e.headers["cache-control"], "max-age=99");
    assert_eq!(e.headers["etag"], "\"a\"");
    assert!(!e.headers.contains_key("content-length"));
    assert_eq!(e.headers.get_all("x-new").iter().count(), 2);
    assert_eq!(e.response_time, at(0.0));
}

fn config(vary: &[&str]) -> Cache {
    Cache {
        disabled: false,
        allowed_vary_headers: vary
            .iter()
            .map(|v| StringMatcher {
                pattern: StringMatch::Exact(v.to_string()),
                ignore_case: false,
            })
            .collect(),
        ignore_request_cache_control_header: false,
    }
}

#[test]
fn variants_are_stored_per_allowed_request_header() {
    let config = config(&["accept"]);
    let key = "http\nvary.test\n/variants";
    let mut varied = entry(3);
    varied.headers.insert("vary", "accept".parse().unwrap());
    insert(key, &headers(&[("accept", "a")]), &config, varied);
    assert!(lookup(key, &headers(&[("accept", "a")]), &config).is_some());
    assert!(lookup(key, &headers(&[("accept", "b")]), &config).is_none());
    assert!(lookup(key, &HeaderMap::new(), &config).is_none());
    // Once the allowed headers change, the stored variants are out of reach.
    assert!(lookup(key, &headers(&[("accept", "a")]), &self::config(&[])).is_none());
    // A response varying on a header not allowed is not stored at all.
    let key = "http\nvary.test\n/not-allowed";
    let mut other = entry(3);
    other.headers.insert("vary", "user-agent".parse().unwrap());
    insert(key, &headers(&[("user-agent", "u")]), &config, other);
    assert!(lookup(key, &headers(&[("user-agent", "u")]), &config).is_none());
}

fn empty_request(method: Method, path: &str) -> Request<UpstreamBody> {
    let body: UpstreamBody = http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().unwrap();
    request
        .headers_mut()
        .insert("host", "filter.test".parse().unwrap());
    request
}

#[tokio::test]
async fn a_streamed_response_is_stored_and_then_answers_with_its_age() {
    use tower::ServiceExt;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let backend = tower::service_fn(move |_request: Request<UpstreamBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let frames = futures_util::stream::iter([
            Ok::<_, crate::upstream::BoxError>(http_body::Frame::data(Bytes::from("hel"))),
            Ok(http_body::Frame::data(Bytes::from("lo"))),
        ]);
        let mut response: Response<ResponseBody> =
            Response::new(http_body_util::StreamBody::new(frames).boxed());
        response
            .headers_mut()
            .insert("cache-control", "max-age=100".parse().unwrap());
        response.headers_mut().insert(
            "date",
            httpdate::fmt_http_date(SystemTime::now()).parse().unwrap(),
        );
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let filter = CacheFilter::new(backend, &config(&[]));
    let first = filter
        .clone()
        .oneshot(empty_request(Method::GET, "/streamed"))
        .await
        .unwrap();
    assert!(first.headers().get("age").is_none());
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    let second = filter
        .clone()
        .oneshot(empty_request(Method::GET, "/streamed"))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let age: u64 = second.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(age <= 1, "age {age}");
    let flags = second
        .extensions()
        .get::<crate::access_log::record::Flags>()
        .copied()
        .unwrap();
    assert!(flags.contains("RFCF"));
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    // A POST is never answered from the cache.
    let post = filter
        .oneshot(empty_request(Method::POST, "/streamed"))
        .await
        .unwrap();
    assert!(post.headers().get("age").is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let _ = local_reply::empty();
}
