//! Configuration conversion of a large snapshot: parsing, checking and converting an Envoy v3 bootstrap with
//! many listeners (HTTP route tables, TCP proxies) and clusters into Outrigger's model; and what start-up pays
//! before the first listener binds: the embedded default configuration's load, and within it the decoding of
//! the core of Envoy's descriptors (benches/README.md, "tenth session").

use criterion::{Criterion, criterion_group, criterion_main};
use outrigger_benches::generate;
use outrigger_config::{DEFAULT_CONFIG, Format, load_bytes};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for services in [10, 200] {
        let yaml = generate::large_snapshot(services);
        if let Err(d) = load_bytes(yaml.as_bytes(), Format::Yaml) {
            panic!("the generated snapshot of {services} services does not load: {d:?}");
        }
        group.throughput(criterion::Throughput::Bytes(yaml.len() as u64));
        group.bench_function(format!("load_bytes/{services}_services"), |b| {
            b.iter(|| load_bytes(black_box(yaml.as_bytes()), Format::Yaml).is_ok())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("startup");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("decode_core_descriptors", |b| {
        b.iter(|| outrigger_config::benchmarks::decode_core_descriptors().is_ok())
    });
    group.bench_function("load_bytes/default_config", |b| {
        b.iter(|| load_bytes(black_box(DEFAULT_CONFIG.as_bytes()), Format::Yaml).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
