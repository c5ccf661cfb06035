use super::*;
use crate::http::hcm_fixture::hcm;

fn run(fields: &str, peer: &str, sent: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in sent {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    apply(&mut headers, &hcm(fields), peer.parse().unwrap(), false);
    headers
}

fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn trusted_hops_pick_the_client_from_the_right_of_xff() {
    let two = [("x-forwarded-for", "1.2.3.4, 8.8.8.8")];
    let cases = [
        (
            "use_remote_address: true, xff_num_trusted_hops: 1",
            "8.8.8.8",
        ),
        (
            "use_remote_address: true, xff_num_trusted_hops: 2",
            "1.2.3.4",
        ),
        // More hops than entries, or no hops: the peer.
        (
            "use_remote_address: true, xff_num_trusted_hops: 3",
            "203.0.113.9",
        ),
        ("use_remote_address: true", "203.0.113.9"),
    ];
    for (fields, client) in cases {
        let headers = run(fields, "203.0.113.9", &two);
        assert_eq!(
            get(&headers, "x-envoy-external-address"),
            Some(client),
            "{fields}"
        );
        assert_eq!(
            get(&headers, "x-forwarded-for"),
            Some("1.2.3.4, 8.8.8.8,203.0.113.9"),
            "{fields}"
        );
    }
}

#[test]
fn an_unparsable_entry_falls_back_to_the_peer() {
    let headers = run(
        "use_remote_address: true, xff_num_trusted_hops: 1",
        "203.0.113.9",
        &[("x-forwarded-for", "garbage")],
    );
    assert_eq!(
        get(&headers, "x-envoy-external-address"),
        Some("203.0.113.9")
    );
}

#[test]
fn forwarded_proto_is_trusted_only_behind_trusted_hops() {
    let sent = [("x-forwarded-proto", "https")];
    let with =
        |fields| get(&run(fields, "203.0.113.9", &sent), "x-forwarded-proto").map(str::to_string);
    assert_eq!(with("use_remote_address: true").as_deref(), Some("http"));
    assert_eq!(
        with("use_remote_address: true, xff_num_trusted_hops: 1").as_deref(),
        Some("https")
    );
    assert_eq!(with("").as_deref(), Some("https"));
}

#[test]
fn internal_only_headers_never_pass_and_edge_only_ones_not_at_the_edge() {
    let sent = [
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-internal", "true"),
        ("x-envoy-original-path", "/p"),
        ("x-envoy-external-address", "9.9.9.9"),
        ("x-envoy-attempt-count", "1"),
    ];
    let inner = run("xff_num_trusted_hops: 1", "127.0.0.1", &sent);
    assert_eq!(get(&inner, "x-envoy-retry-on"), None);
    assert_eq!(get(&inner, "x-envoy-internal"), None);
    assert_eq!(get(&inner, "x-envoy-original-path"), Some("/p"));
    assert_eq!(get(&inner, "x-envoy-external-address"), Some("9.9.9.9"));
    assert_eq!(get(&inner, "x-envoy-attempt-count"), Some("1"));
    assert_eq!(get(&inner, "x-forwarded-for"), None);
    let edge = run("use_remote_address: true", "203.0.113.9", &sent);
    assert_eq!(get(&edge, "x-envoy-original-path"), None);
    assert_eq!(get(&edge, "x-envoy-external-address"), Some("203.0.113.9"));
    assert_eq!(get(&edge, "x-envoy-attempt-count"), Some("1"));
}

#[test]
fn a_loopback_peer_is_recorded_as_the_proxys_own_address() {
    let headers = run("use_remote_address: true", "127.0.0.1", &[]);
    assert_eq!(
        get(&headers, "x-forwarded-for"),
        Some(local_address().to_string().as_str())
    );
    let skipped = run(
        "use_remote_address: true, skip_xff_append: true",
        "127.0.0.1",
        &[],
    );
    assert_eq!(get(&skipped, "x-forwarded-for"), None);
}

#[test]
fn every_removed_header_starts_with_x_envoy() {
    for name in INTERNAL_ONLY.iter().chain(&EDGE_ONLY) {
        assert!(name.as_str().starts_with("x-envoy-"), "{name}");
    }
}
