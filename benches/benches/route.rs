//! Route matching on a large route table: 100 small virtual hosts and one of 1000 routes (exact paths,
//! prefixes, header matches), loaded by outrigger_config and matched by outrigger_proxy's route module; and the
//! linear scan against the proxy's route index on 100 to 10,000 routes (`route_index/*`).

use criterion::{Criterion, criterion_group, criterion_main};
use http::request::Parts;
use outrigger_benches::generate;
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::route::RouteConfig;
use outrigger_config::{Format, load_bytes};
use outrigger_proxy::http::route;
use outrigger_proxy::http::route_index::RouteIndex;
use std::hint::black_box;

const SMALL_HOSTS: usize = 100;
const ROUTES: usize = 1000;

fn table() -> anyhow::Result<RouteConfig> {
    table_of(SMALL_HOSTS, ROUTES)
}

fn table_of(small_hosts: usize, routes: usize) -> anyhow::Result<RouteConfig> {
    let yaml = generate::route_table(small_hosts, routes);
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let listener = loaded
        .snapshot
        .listeners
        .first()
        .ok_or_else(|| anyhow::anyhow!("no listener"))?;
    for chain in &listener.filter_chains {
        for filter in &chain.filters {
            if let NetworkFilter::HttpConnectionManager(hcm) = filter
                && let RouteSource::Static(config) = &hcm.routes
            {
                return Ok(config.clone());
            }
        }
    }
    anyhow::bail!("no inline route table")
}

fn request(path: &str, tenant: Option<&str>) -> anyhow::Result<Parts> {
    let mut builder = http::Request::get(path).header(http::header::HOST, "big.bench");
    if let Some(tenant) = tenant {
        builder = builder.header("x-tenant", tenant);
    }
    Ok(builder.body(())?.into_parts().0)
}

fn bench(c: &mut Criterion) {
    let config = match table() {
        Ok(config) => config,
        Err(e) => panic!("route table: {e:#}"),
    };
    let mut group = c.benchmark_group("route");
    for (name, host) in [
        ("virtual_host/exact_last", "big.bench"),
        ("virtual_host/suffix", "api.svc50.example"),
        ("virtual_host/fallback", "unknown.host"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| route::virtual_host(black_box(&config), black_box(host)))
        });
    }
    let Some(vhost) = route::virtual_host(&config, "big.bench") else {
        panic!("no virtual host big.bench");
    };
    let cases = [
        ("route/first_of_1000", "/svc0/a", Some("tenant0")),
        ("route/middle_exact", "/svc501/exact", None),
        ("route/last_of_1000", "/svc999/exact", None),
        ("route/header_match_990", "/svc990/x", Some("tenant990")),
        ("route/no_match", "/nothing/here", None),
    ];
    for (name, path, tenant) in cases {
        let parts = match request(path, tenant) {
            Ok(parts) => parts,
            Err(e) => panic!("request {path}: {e:#}"),
        };
        group.bench_function(name, |b| {
            b.iter(|| route::route(black_box(vhost), black_box(&parts)).is_some())
        });
    }
    group.finish();
}

/// The linear scan (`route::route_index`, what the proxy did before the index) against the index the proxy
/// uses (`RouteIndex::first`), on 100, 1,000 and 10,000 routes: a path no route matches, and the last route.
fn indexed(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_index");
    for routes in [100, 1_000, 10_000] {
        let config = match table_of(0, routes) {
            Ok(config) => config,
            Err(e) => panic!("route table: {e:#}"),
        };
        let Some(vhost) = route::virtual_host(&config, "big.bench") else {
            panic!("no virtual host big.bench");
        };
        let index = RouteIndex::new(vhost);
        let last = format!("/svc{}/exact", routes - 1);
        for (case, path) in [("no_match", "/nothing/here"), ("last", last.as_str())] {
            let parts = match request(path, None) {
                Ok(parts) => parts,
                Err(e) => panic!("request {path}: {e:#}"),
            };
            assert_eq!(
                index.first(vhost, &parts),
                route::route_index(vhost, &parts),
                "{path}"
            );
            group.bench_function(format!("linear/{case}/{routes}"), |b| {
                b.iter(|| route::route_index(black_box(vhost), black_box(&parts)))
            });
            group.bench_function(format!("indexed/{case}/{routes}"), |b| {
                b.iter(|| index.first(black_box(vhost), black_box(&parts)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, indexed);
criterion_main!(benches);
