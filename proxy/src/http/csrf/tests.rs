use super::origin::{host_and_port, source, target};
use super::{Verdict, check};
use http::{HeaderMap, HeaderValue, Method, Request};
use outrigger_config::model::core::{Fraction, Pattern, StringMatch, StringMatcher};
use outrigger_config::model::csrf::CsrfPolicy;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Each case was sent to Envoy 1.40 (POST, `Host: filters.test` unless said) and its verdict noted.
#[test]
fn origins_are_read_as_envoy_reads_them() {
    let cases = [
        ("http://filters.test", "filters.test"),
        ("https://filters.test", "filters.test"),
        ("http://filters.test/", "filters.test"),
        ("http://filters.test/path?q=1", "filters.test"),
        ("http://user@filters.test", "filters.test"),
        ("http://user:pw@filters.test:8080/x", "filters.test:8080"),
        ("http://filters.test:80", "filters.test:80"),
        ("http://FILTERS.test", "FILTERS.test"),
        ("http://[::1]:80", "[::1]:80"),
        ("http://filters.test:00080", "filters.test:00080"),
        // Not absolute URLs to the parser: the value itself.
        ("filters.test", "filters.test"),
        ("null", "null"),
        ("http://filters.test:", "http://filters.test:"),
        ("http://filters.test:99999", "http://filters.test:99999"),
        ("http://", "http://"),
        ("http://a@b@c", "http://a@b@c"),
        ("h2c+x://filters.test", "filters.test"),
        ("http://filters.test#frag", "http://filters.test#frag"),
        ("http://filters.test/#frag", "filters.test"),
        ("http:/filters.test", "http:/filters.test"),
        (
            "http://filters.test,http://filters.test",
            "http://filters.test,http://filters.test",
        ),
        ("/relative", "/relative"),
        ("", ""),
    ];
    for (value, expected) in cases {
        assert_eq!(host_and_port(value), expected, "{value:?}");
    }
    // `Referer` only when `Origin` gives nothing; an `Origin` of exactly `null` is no source at all.
    assert_eq!(
        source(&headers(&[("referer", "http://filters.test/a/b")])),
        "filters.test"
    );
    assert_eq!(
        source(&headers(&[
            ("origin", "null"),
            ("referer", "http://filters.test/")
        ])),
        ""
    );
    assert_eq!(source(&headers(&[("origin", "NULL")])), "NULL");
    assert_eq!(source(&headers(&[("referer", "null")])), "null");
    assert_eq!(
        source(&headers(&[("origin", ""), ("referer", "http://r.test/")])),
        "r.test"
    );
    assert_eq!(source(&HeaderMap::new()), "");
    assert_eq!(target(Some("filters.test:8080")), "filters.test:8080");
    assert_eq!(target(Some("[::1]:80")), "[::1]:80");
    assert_eq!(target(None), "");
}

fn policy(additional: Vec<StringMatcher>) -> CsrfPolicy {
    CsrfPolicy {
        filter_enabled: Fraction(1.0),
        shadow_enabled: None,
        additional_origins: additional,
    }
}

fn post(method: Method, pairs: &[(&'static str, &str)]) -> http::request::Parts {
    let mut request = Request::builder()
        .method(method)
        .uri("/x")
        .body(())
        .unwrap();
    *request.headers_mut() = headers(pairs);
    request.into_parts().0
}

#[test]
fn only_state_changing_methods_are_checked() {
    let p = policy(vec![]);
    let cross = [("host", "filters.test"), ("origin", "http://evil.test")];
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        assert_eq!(
            check(&p, &post(method.clone(), &cross), true, false),
            Verdict::Mismatch,
            "{method}"
        );
    }
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::from_bytes(b"post").unwrap(),
    ] {
        assert_eq!(
            check(&p, &post(method.clone(), &cross), true, false),
            Verdict::Unchecked,
            "{method}"
        );
    }
    assert_eq!(
        check(&p, &post(Method::POST, &cross), false, false),
        Verdict::Unchecked
    );
}

#[test]
fn additional_origins_match_host_and_port_and_a_missing_origin_always_fails() {
    let any = StringMatcher {
        pattern: StringMatch::SafeRegex(Pattern::new(".*").unwrap()),
        ignore_case: false,
    };
    let exact = |s: &str| StringMatcher {
        pattern: StringMatch::Exact(s.into()),
        ignore_case: false,
    };
    let p = policy(vec![exact("trusted.test"), exact("https://scheme.test")]);
    let from = |origin: &str| {
        post(
            Method::POST,
            &[("host", "filters.test"), ("origin", origin)],
        )
    };
    assert_eq!(
        check(&p, &from("http://trusted.test"), true, false),
        Verdict::Valid
    );
    assert_eq!(
        check(&p, &from("trusted.test"), true, false),
        Verdict::Valid
    );
    assert_eq!(
        check(&p, &from("https://scheme.test"), true, false),
        Verdict::Mismatch
    );
    let no_origin = post(Method::POST, &[("host", "filters.test")]);
    assert_eq!(
        check(&policy(vec![any.clone()]), &no_origin, true, false),
        Verdict::Missing
    );
    assert_eq!(check(&p, &no_origin, true, false), Verdict::Missing);
    let null = post(
        Method::POST,
        &[
            ("host", "filters.test"),
            ("origin", "null"),
            ("referer", "http://filters.test/"),
        ],
    );
    assert_eq!(
        check(&policy(vec![any]), &null, true, false),
        Verdict::Missing
    );
}
