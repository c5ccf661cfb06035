use super::policy::{Decision, Policies, decide};
use http::{HeaderValue, Method, Request};
use outrigger_config::model::core::{Fraction, Pattern, StringMatch, StringMatcher};
use outrigger_config::model::cors::CorsPolicy;

fn matcher(pattern: StringMatch, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        pattern,
        ignore_case,
    }
}

fn policy(allow_origin: Vec<StringMatcher>) -> CorsPolicy {
    CorsPolicy {
        allow_origin,
        allow_methods: String::new(),
        allow_headers: String::new(),
        expose_headers: String::new(),
        max_age: String::new(),
        allow_credentials: None,
        allow_private_network_access: None,
        forward_not_matching_preflights: None,
        filter_enabled: None,
        shadow_enabled: None,
    }
}

fn request(method: Method, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = Request::builder().method(method).uri("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

#[test]
fn origins_match_as_envoy_matches_them() {
    let regex = Pattern::new(r"https://.*\.example\.com").unwrap();
    let one = |m: StringMatcher| policy(vec![m]);
    let cases = [
        (
            one(matcher(StringMatch::Exact("https://a.test".into()), false)),
            "https://a.test",
            true,
        ),
        (
            one(matcher(StringMatch::Exact("https://a.test".into()), false)),
            "https://A.test",
            false,
        ),
        (
            one(matcher(StringMatch::Exact("https://a.test".into()), true)),
            "https://A.TEST",
            true,
        ),
        (
            one(matcher(StringMatch::Prefix("https://app".into()), false)),
            "https://app.test",
            true,
        ),
        (
            one(matcher(StringMatch::Prefix("https://app".into()), false)),
            "http://app.test",
            false,
        ),
        (
            one(matcher(StringMatch::Suffix(".test".into()), false)),
            "https://b.test",
            true,
        ),
        (
            one(matcher(StringMatch::Suffix(".test".into()), false)),
            "https://b.tester",
            false,
        ),
        (
            one(matcher(StringMatch::Contains("shop".into()), false)),
            "https://my.shop.io",
            true,
        ),
        (
            one(matcher(StringMatch::Contains("SHOP".into()), true)),
            "https://my.shop.io",
            true,
        ),
        (
            one(matcher(StringMatch::SafeRegex(regex.clone()), false)),
            "https://x.example.com",
            true,
        ),
        // The regex must match the whole origin.
        (
            one(matcher(StringMatch::SafeRegex(regex), false)),
            "https://x.example.com.evil",
            false,
        ),
        // A matcher that matches `*` lets every origin in (Envoy tries `*` first).
        (
            one(matcher(StringMatch::Exact("*".into()), false)),
            "https://anything",
            true,
        ),
        (
            one(matcher(
                StringMatch::SafeRegex(Pattern::new(r"\*").unwrap()),
                false,
            )),
            "https://anything",
            true,
        ),
        (policy(vec![]), "https://a.test", false),
    ];
    for (policy, origin, allowed) in cases {
        let policies = Policies::new(vec![&policy]);
        assert_eq!(
            policies.origin_allowed(origin),
            allowed,
            "{origin} against {policy:?}"
        );
    }
}

#[test]
fn fields_come_from_the_first_policy_that_sets_them() {
    let mut route = policy(vec![]);
    route.allow_methods = "PUT".into();
    route.allow_credentials = Some(false);
    let mut host = policy(vec![matcher(
        StringMatch::Exact("https://a.test".into()),
        false,
    )]);
    host.allow_methods = "GET".into();
    host.allow_headers = "x-a".into();
    host.allow_credentials = Some(true);
    host.filter_enabled = Some(Fraction(0.0));
    let policies = Policies::new(vec![&route, &host]);
    let preflight = request(
        Method::OPTIONS,
        &[
            ("origin", "https://a.test"),
            ("access-control-request-method", "PUT"),
        ],
    );
    let Decision::Answer {
        headers,
        decorate,
        valid,
    } = decide(&policies, &preflight)
    else {
        panic!("the route's policy is enabled (the host's filter_enabled does not apply)");
    };
    assert!(valid);
    assert_eq!(headers["access-control-allow-methods"], "PUT");
    assert_eq!(headers["access-control-allow-headers"], "x-a");
    // The route's explicit `false` wins over the host's `true`.
    assert!(!headers.contains_key("access-control-allow-credentials"));
    assert!(!decorate.unwrap().credentials);
}

#[test]
fn disabled_shadowed_and_invalid_requests() {
    let allowed = vec![matcher(StringMatch::Exact("https://a.test".into()), false)];
    let actual = request(Method::GET, &[("origin", "https://a.test")]);
    let mut off = policy(allowed.clone());
    off.filter_enabled = Some(Fraction(0.0));
    assert_eq!(
        decide(&Policies::new(vec![&off]), &actual),
        Decision::Ignore
    );
    off.shadow_enabled = Some(Fraction(1.0));
    assert_eq!(
        decide(&Policies::new(vec![&off]), &actual),
        Decision::Pass {
            valid: true,
            decorate: None
        }
    );
    let on = policy(allowed);
    let other = request(
        Method::OPTIONS,
        &[
            ("origin", "https://b.test"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(
        decide(&Policies::new(vec![&on]), &other),
        Decision::Pass {
            valid: false,
            decorate: None
        }
    );
    let mut strict = on.clone();
    strict.forward_not_matching_preflights = Some(false);
    let Decision::Answer { headers, .. } = decide(&Policies::new(vec![&strict]), &other) else {
        panic!("a preflight from another origin is answered when not forwarded");
    };
    assert!(!headers.contains_key("access-control-allow-origin"));
    let no_origin = request(Method::GET, &[]);
    assert_eq!(
        decide(&Policies::new(vec![&on]), &no_origin),
        Decision::Ignore
    );
    let Decision::Pass {
        decorate: Some(d), ..
    } = decide(&Policies::new(vec![&on]), &actual)
    else {
        panic!("an allowed origin's request is decorated");
    };
    assert_eq!(d.origin, HeaderValue::from_static("https://a.test"));
}
