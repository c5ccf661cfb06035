//! tcp_proxy's copy loop (`outrigger_proxy::tcp::copy_both_ways`) between plain loopback sockets: 16 MiB from
//! a client through the copy to a server that reads it, both FINs passed on, the way scenario (e) of
//! `bash benches/run` exercises it without the rest of the proxy.
//!
//! What is timed is the CPU time of the thread that runs the copy (user and system, from
//! `/proc/thread-self/schedstat`), not the wall clock: the client and the server run on a thread of their own,
//! and their copies, which do not depend on how the proxy copies, would otherwise hide the difference (a
//! wall-clock version measured the buffered and the spliced copy within 2 % of each other).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outrigger_proxy::io::Stream;
use outrigger_proxy::tcp::copy_both_ways;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOTAL: usize = 16 * 1024 * 1024;

/// A connected pair of loopback sockets, non-blocking, for a runtime to adopt.
fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let outside = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let inside = listener.accept().unwrap().0;
    for socket in [&outside, &inside] {
        socket.set_nonblocking(true).unwrap();
        socket.set_nodelay(true).unwrap();
    }
    (outside, inside)
}

/// CPU time this thread has used so far.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("this benchmark needs /proc/thread-self/schedstat (Linux)");
    let nanos = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(nanos)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The client writes TOTAL bytes and half-closes, then reads to the end; the server reads TOTAL bytes to
/// their end and closes.
async fn ends(client: std::net::TcpStream, server: std::net::TcpStream) {
    let (mut client, mut server) = (
        TcpStream::from_std(client).unwrap(),
        TcpStream::from_std(server).unwrap(),
    );
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
    tokio::join!(client, server);
}

/// `iterations` connections one after the other; returns the CPU time the copies took.
fn copies(iterations: u64) -> Duration {
    let (mut proxied, mut outer) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let (client, downstream) = pair();
        let (upstream, server) = pair();
        proxied.push((downstream, upstream));
        outer.push((client, server));
    }
    let ends = std::thread::spawn(move || {
        runtime().block_on(async {
            for (client, server) in outer {
                ends(client, server).await;
            }
        })
    });
    let copy = std::thread::spawn(move || {
        let runtime = runtime();
        let start = thread_cpu();
        runtime.block_on(async {
            for (downstream, upstream) in proxied {
                let mut downstream = Stream::Plain(TcpStream::from_std(downstream).unwrap());
                let mut upstream = Stream::Plain(TcpStream::from_std(upstream).unwrap());
                let (_, received) = copy_both_ways(&mut downstream, &mut upstream, None).await;
                assert_eq!(received, TOTAL as u64);
            }
        });
        thread_cpu() - start
    });
    let spent = copy.join().unwrap();
    ends.join().unwrap();
    spent
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_copy");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(20);
    group.bench_function("plain_16mib_cpu", |b| b.iter_custom(copies));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
