//! tcp_proxy's copy loop (`outrigger_proxy::tcp::copy_both_ways`) between plain loopback sockets: 16 MiB from
//! a client through the copy to a server that discards it, the way scenario (e) of `bash benches/run`
//! exercises it without the rest of the proxy. Plain TCP on both sides takes the spliced path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outrigger_proxy::io::Stream;
use outrigger_proxy::tcp::copy_both_ways;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOTAL: usize = 16 * 1024 * 1024;

/// A connected pair of loopback sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (outside, inside) = tokio::join!(TcpStream::connect(address), listener.accept());
    (outside.unwrap(), inside.unwrap().0)
}

/// One connection: the client writes TOTAL bytes and half-closes, the copy passes them (and the FIN) on, the
/// server reads them to the end and closes, and the copy passes that on too.
async fn once() {
    let (mut client, downstream) = pair().await;
    let (upstream, mut server) = pair().await;
    let (mut downstream, mut upstream) = (Stream::Plain(downstream), Stream::Plain(upstream));
    let client = async {
        let chunk = vec![0x5a_u8; 64 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            client.write_all(&chunk).await.unwrap();
        }
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
    };
    let server = async {
        let mut buffer = vec![0_u8; 64 * 1024];
        let mut seen = 0;
        loop {
            match server.read(&mut buffer).await.unwrap() {
                0 => break,
                n => seen += n,
            }
        }
        assert_eq!(seen, TOTAL);
        drop(server);
    };
    let ((_, received), (), ()) = tokio::join!(
        copy_both_ways(&mut downstream, &mut upstream, None),
        client,
        server
    );
    assert_eq!(received, TOTAL as u64);
}

fn bench(c: &mut Criterion) {
    // One thread runs the client, the copy and the server: what is measured is the copy's cost per byte
    // beside theirs (the client's and server's copies are the same whatever the copy does).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("tcp_copy");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(20);
    group.bench_function("plain_16mib", |b| b.iter(|| runtime.block_on(once())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
