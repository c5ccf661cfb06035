use super::*;
use crate::http::route::route_index;
use outrigger_config::model::http::{HttpConnectionManager, RouteSource};
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::{Format, load_bytes};

/// The one virtual host of a config whose routes are `routes` (YAML, one flow map a line).
fn host(routes: &[String]) -> VirtualHost {
    let mut yaml = String::from(
        r#"
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
"#,
    );
    for route in routes {
        yaml.push_str(&format!(
            "              - {{match: {route}, direct_response: {{status: 200}}}}\n"
        ));
    }
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

fn request(path: &str, header: Option<&str>) -> Parts {
    let mut builder = http::Request::get(path);
    if let Some(value) = header {
        builder = builder.header("x-h", value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// A table mixing every kind of match, where the first match in order is often not the most specific one.
#[test]
fn the_first_route_in_order_wins_whatever_its_kind() {
    let routes: Vec<String> = [
        "{safe_regex: {regex: \"/r[0-9]+\"}}",
        "{path: /a/exact, headers: [{name: x-h, string_match: {exact: one}}]}",
        "{prefix: /a/}",
        "{path: /a/exact}",
        "{prefix: /A/, case_sensitive: false}",
        "{path: /CI, case_sensitive: false}",
        "{path_separated_prefix: /sep}",
        "{safe_regex: {regex: \"/late.*\"}}",
        "{prefix: /late/exact}",
        "{prefix: \"\", headers: [{name: x-h, present_match: true}]}",
        "{prefix: /}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let vhost = host(&routes);
    let index = RouteIndex::new(&vhost);
    let cases = [
        ("/r12", None, Some(0)),
        ("/a/exact", Some("one"), Some(1)),
        ("/a/exact", None, Some(2)),
        ("/a/other", None, Some(2)),
        ("/A/x", None, Some(4)),
        ("/ci", None, Some(5)),
        ("/cI", None, Some(5)),
        ("/sep", None, Some(6)),
        ("/sep/x", None, Some(6)),
        ("/sepx", None, Some(10)),
        ("/late/exact", None, Some(7)),
        ("/x", Some("any"), Some(9)),
        ("/x", None, Some(10)),
        ("/r12?q=1", None, Some(0)),
    ];
    for (path, header, want) in cases {
        let parts = request(path, header);
        assert_eq!(index.first(&vhost, &parts), want, "{path} {header:?}");
        assert_eq!(route_index(&vhost, &parts), want, "{path} {header:?}");
    }
    let without_catch_all = host(&routes[..9]);
    let index = RouteIndex::new(&without_catch_all);
    assert_eq!(index.first(&without_catch_all, &request("/x", None)), None);
}

/// Random tables over a small alphabet (so prefixes nest, collide in length and differ only in case) give the
/// same answer through the index as testing every route in order.
#[test]
fn random_tables_pick_what_the_linear_scan_picks() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    const PIECES: [&str; 6] = ["/", "a", "A", "b", "/ab", "_"];
    let text = |next: &mut dyn FnMut(u64) -> u64| {
        let mut s = String::from("/");
        for _ in 0..next(4) {
            s.push_str(PIECES[next(PIECES.len() as u64) as usize]);
        }
        s
    };
    let mut checked = 0;
    for _ in 0..25 {
        let mut routes = Vec::new();
        for _ in 0..(1 + next(12)) {
            let path = text(&mut next);
            let case = if next(3) == 0 {
                ", case_sensitive: false"
            } else {
                ""
            };
            let header = if next(4) == 0 {
                ", headers: [{name: x-h, string_match: {exact: v}}]"
            } else {
                ""
            };
            let kind = match next(4) {
                0 => format!("prefix: \"{path}\""),
                1 => format!("path: \"{path}\""),
                2 => format!("path_separated_prefix: \"{}\"", path.trim_end_matches('/')),
                _ => format!("safe_regex: {{regex: \"{path}.?\"}}"),
            };
            let kind = if kind.ends_with(": \"\"") {
                "prefix: \"/\"".to_string()
            } else {
                kind
            };
            routes.push(format!("{{{kind}{case}{header}}}"));
        }
        let vhost = host(&routes);
        let index = RouteIndex::new(&vhost);
        for _ in 0..200 {
            let path = text(&mut next);
            let header = (next(2) == 0).then_some("v");
            let Ok(parts) = http::Request::get(path.as_str())
                .header("x-h", header.unwrap_or("w"))
                .body(())
                .map(|r| r.into_parts().0)
            else {
                continue;
            };
            assert_eq!(
                index.first(&vhost, &parts),
                route_index(&vhost, &parts),
                "{path} {header:?} in {routes:#?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 4000, "only {checked} requests checked");
}
