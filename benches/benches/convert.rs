//! Configuration conversion of a large snapshot: parsing, checking and converting an Envoy v3 bootstrap with
//! many listeners (HTTP route tables, TCP proxies) and clusters into Outrigger's model; and what start-up pays
//! before the first listener binds: the embedded default configuration's load, and within it the decoding of
//! the core of Envoy's descriptors (benches/README.md, "tenth session"); and `outrigger validate` of that
//! configuration as a fresh process, which alone shows what a first load costs in a new process (the malloc
//! arena's growth, page faults) that repeated loads in one process no longer pay ("eleventh session").

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
    match outrigger_binary() {
        Some(binary) => {
            let dir = std::env::temp_dir().join(format!("outrigger-bench-{}", std::process::id()));
            let file = dir.join("default.yaml");
            if let Err(e) =
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, DEFAULT_CONFIG))
            {
                panic!("cannot write {}: {e}", file.display());
            }
            group.bench_function("validate_process/default_config", |b| {
                b.iter(|| validate(&binary, &file))
            });
            let _ = std::fs::remove_dir_all(&dir);
        }
        None => eprintln!(
            "startup/validate_process skipped: no release `outrigger` binary beside this benchmark; build it \
             first with `cargo build --release --workspace --bin outrigger`"
        ),
    }
    group.finish();
}

/// The `outrigger` binary of the same target directory (`target/release/outrigger`; this benchmark runs from
/// `target/release/deps/`).
fn outrigger_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.parent()?.join("outrigger");
    binary.is_file().then_some(binary)
}

/// One `outrigger validate FILE` from exec to exit; a failure is a broken benchmark, not a figure.
fn validate(binary: &std::path::Path, file: &std::path::Path) {
    let status = std::process::Command::new(binary)
        .arg("validate")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        other => panic!(
            "{} validate {}: {other:?}",
            binary.display(),
            file.display()
        ),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
