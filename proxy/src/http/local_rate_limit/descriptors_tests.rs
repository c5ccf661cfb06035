use super::*;
use outrigger_config::model::http::{HttpConnectionManager, RouteSource};
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::{Format, load_bytes};
use std::net::Ipv4Addr;

/// The one virtual host of a config whose host has `host_limits` and whose routes are `routes` (YAML flow
/// sequences), with the filter listening to them.
fn host(host_limits: &str, routes: &str) -> VirtualHost {
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
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], rate_limits: {host_limits}, routes: {routes}}}]}}
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - {{name: app, load_assignment: {{cluster_name: app, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]}}}}
"#
    );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml)
        .unwrap_or_else(|problems| panic!("{problems:?}\n{yaml}"));
    let hcm: &HttpConnectionManager =
        match &loaded.snapshot.listeners[0].filter_chains[0].filters[0] {
            NetworkFilter::HttpConnectionManager(hcm) => hcm,
            _ => panic!("not a connection manager"),
        };
    match &hcm.routes {
        RouteSource::Static(table) => table.virtual_hosts[0].clone(),
        RouteSource::Rds { .. } => panic!("not inline"),
    }
}

fn forward(host: &VirtualHost, i: usize) -> &Forward {
    match &host.routes[i].action {
        outrigger_config::model::route::RouteAction::Route(f) => f,
        _ => panic!("not a route action"),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, http::HeaderValue::from_static(v));
    }
    map
}

/// The descriptors of route `i` for a request with `pairs`, shown as `k=v,k=v` each.
fn produced(
    host: &VirtualHost,
    i: usize,
    option: VhRateLimits,
    pairs: &[(&'static str, &'static str)],
) -> Vec<String> {
    let headers = headers(pairs);
    let f = forward(host, i);
    let view = RequestView {
        headers: &headers,
        remote: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        cluster: destination_cluster(f, &headers),
    };
    populate(route_policies(f, host, option), Some(0), &view)
        .iter()
        .map(|d| {
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

const ROUTES: &str = r#"[
  {match: {prefix: /gk}, route: {cluster: app, rate_limits: [{actions: [{generic_key: {descriptor_value: gk}}]}]}},
  {match: {prefix: /none}, route: {cluster: app}},
  {match: {prefix: /incl}, route: {cluster: app, include_vh_rate_limits: true, rate_limits: [{actions: [{generic_key: {descriptor_value: gk}}]}]}},
  {match: {prefix: /stage}, route: {cluster: app, rate_limits: [{stage: 1, actions: [{generic_key: {descriptor_value: s}}]}, {disable_key: d, actions: [{generic_key: {descriptor_value: d}}]}]}},
  {match: {prefix: /hdr}, route: {cluster: app, rate_limits: [
    {actions: [{request_headers: {header_name: X-User, descriptor_key: user}}]},
    {actions: [{request_headers: {header_name: x-team, descriptor_key: team, skip_if_absent: true}}, {destination_cluster: {}}]},
    {actions: [{request_headers: {header_name: x-team, descriptor_key: team, skip_if_absent: true}}]},
    {actions: [{header_value_match: {descriptor_value: debug, headers: [{name: x-debug, present_match: true}]}}, {remote_address: {}}]},
    {actions: [{header_value_match: {descriptor_key: m, descriptor_value: nodebug, expect_match: false, headers: [{name: x-debug, present_match: true}]}}]}]}}
]"#;

const VH: &str = "[{actions: [{generic_key: {descriptor_value: vh}}]}]";

#[test]
fn vh_rate_limits_override_include_and_ignore() {
    let h = host(VH, ROUTES);
    use VhRateLimits::*;
    assert_eq!(produced(&h, 0, Override, &[]), ["generic_key=gk"]);
    assert_eq!(produced(&h, 1, Override, &[]), ["generic_key=vh"]);
    assert_eq!(
        produced(&h, 0, Include, &[]),
        ["generic_key=gk", "generic_key=vh"]
    );
    assert!(produced(&h, 1, Ignore, &[]).is_empty());
    // include_vh_rate_limits wins over the filter's IGNORE.
    assert_eq!(
        produced(&h, 2, Ignore, &[]),
        ["generic_key=gk", "generic_key=vh"]
    );
}

#[test]
fn other_stages_and_disable_keys_are_left_out_but_still_hide_the_virtual_host() {
    let h = host(VH, ROUTES);
    assert!(produced(&h, 3, VhRateLimits::Override, &[]).is_empty());
}

#[test]
fn request_headers_header_value_match_remote_address_and_destination_cluster() {
    let h = host("[]", ROUTES);
    assert_eq!(
        produced(&h, 4, VhRateLimits::Override, &[]),
        ["destination_cluster=app", "m=nodebug"]
    );
    assert_eq!(
        produced(
            &h,
            4,
            VhRateLimits::Override,
            &[
                ("x-user", "alice"),
                ("x-user", "bob"),
                ("x-team", "red"),
                ("x-debug", "1")
            ]
        ),
        [
            "user=alice",
            "team=red,destination_cluster=app",
            "team=red",
            "header_match=debug,remote_address=10.0.0.1"
        ]
    );
}

#[test]
fn the_remote_address_is_the_connection_managers() {
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let xff = headers(&[
        ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
        ("x-forwarded-for", "3.3.3.3"),
    ]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(remote_address(&xff, false, 0, peer), ip("3.3.3.3"));
    assert_eq!(remote_address(&xff, false, 1, peer), ip("2.2.2.2"));
    assert_eq!(remote_address(&xff, false, 3, peer), peer);
    assert_eq!(
        remote_address(&headers(&[("x-forwarded-for", "junk")]), false, 0, peer),
        peer
    );
    assert_eq!(remote_address(&xff, true, 0, peer), peer);
    let edge = headers(&[("x-envoy-external-address", "4.4.4.4")]);
    assert_eq!(remote_address(&edge, true, 1, peer), ip("4.4.4.4"));
}
