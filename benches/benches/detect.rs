//! Protocol detection on a connection's first bytes: a TLS ClientHello (SNI and ALPN), an HTTP/1.1 request,
//! the h2 preface, and an opaque protocol.

use criterion::{Criterion, criterion_group, criterion_main};
use outrigger_benches::generate;
use outrigger_proxy::detect::{Verdict, classify};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let hello = generate::client_hello("reviews.shop.svc.cluster.local", &["h2", "http/1.1"]);
    assert!(
        matches!(classify(&hello, true, true), Verdict::Known(ref d) if d.tls && d.server_name.is_some()),
        "the generated ClientHello must parse"
    );
    let h1 = b"GET /api/v1/reviews?id=42 HTTP/1.1\r\nHost: reviews.shop.svc.cluster.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n".to_vec();
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec();
    let postgres = b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec();
    let mut group = c.benchmark_group("detect");
    for (name, bytes) in [
        ("tls_client_hello", &hello),
        ("http1_request", &h1),
        ("h2_preface", &h2),
        ("opaque", &postgres),
    ] {
        group.bench_function(name, |b| b.iter(|| classify(black_box(bytes), true, true)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
