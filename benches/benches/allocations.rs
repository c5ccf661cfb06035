//! Heap allocations per proxied HTTP/1.1 request, counted by a counting global allocator in this benchmark
//! binary (never in the proxy): the proxy runs in process on a keep-alive connection, between a client and a
//! backend that allocate nothing per request, so every allocation counted is the proxy's (and its runtime's).
//!
//! `cargo bench -p outrigger-benches --bench allocations` prints allocations and bytes per request; a change
//! that adds allocations to the common path shows here.

// A global allocator is unsafe to implement; this one only forwards to the system allocator and counts.
#![allow(unsafe_code)]

use outrigger_config::{Format, load_bytes};
use outrigger_proxy::Proxy;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
const WARM_UP: u64 = 2_000;
const COUNTED: u64 = 20_000;

/// Answers every request on each connection with `response`: its head and its body (by `content-length`) are
/// read into one reused buffer, so neither the backend nor the collector allocates per request.
async fn answer_each(listener: TcpListener, response: &'static [u8]) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut filled = 0;
            loop {
                // Every whole request buffered so far is answered.
                while let Some(end) = head_end(&buf[..filled]) {
                    let whole = end + content_length(&buf[..end]);
                    if filled < whole {
                        if buf.len() < whole {
                            buf.resize(whole, 0);
                        }
                        break;
                    }
                    if stream.write_all(response).await.is_err() {
                        return;
                    }
                    buf.copy_within(whole..filled, 0);
                    filled -= whole;
                }
                let Ok(n) = stream.read(&mut buf[filled..]).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                filled += n;
            }
        });
    }
}

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Sends `count` requests on one connection, each after the previous response's body arrived.
async fn client(stream: &mut TcpStream, count: u64, buf: &mut [u8]) -> std::io::Result<()> {
    const REQUEST: &[u8] = b"GET /bench HTTP/1.1\r\nhost: bench\r\nuser-agent: alloc-bench\r\n\r\n";
    for _ in 0..count {
        stream.write_all(REQUEST).await?;
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::Error::other("the proxy closed the connection"));
            }
            filled += n;
            // The backend's body is two bytes after the head.
            if head_end(&buf[..filled]).is_some_and(|end| filled >= end + 2) {
                break;
            }
        }
        if !buf.starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other(format!(
                "unexpected response: {}",
                String::from_utf8_lossy(&buf[..filled])
            )));
        }
    }
    Ok(())
}

/// Scenario (a)'s listener, or with `traced` scenario (i)'s additions: tracing at 1 % (OTLP/HTTP to a
/// collector that answers every post) and a file access log in Envoy's default format.
fn config(backend_port: u16, traced: Option<(u16, &std::path::Path)>) -> String {
    let observability = traced.map_or_else(String::new, |(collector, log)| {
        format!(
            r#"
          tracing:
            random_sampling: {{value: 1}}
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: bench
                http_service: {{http_uri: {{uri: "http://127.0.0.1:{collector}/v1/traces", cluster: collector, timeout: 5s}}}}
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {}"#,
            log.display()
        )
    });
    let collector_cluster = traced.map_or_else(String::new, |(collector, _)| {
        format!(
            r#"
  - name: collector
    connect_timeout: 1s
    load_assignment: {{cluster_name: collector, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {collector}}}}}}}}}]}}]}}"#
        )
    });
    format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench{observability}
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]}}]}}
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}}}}}]}}]}}{collector_cluster}
"#
    )
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// Allocations and bytes per request through a proxy started on `config`.
async fn count(config: String) -> anyhow::Result<(f64, f64)> {
    let loaded = load_bytes(config.as_bytes(), Format::Yaml)
        .map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
    let proxy = Proxy::start(loaded.snapshot).await?;
    let (_, address) = proxy
        .addresses()
        .into_iter()
        .find(|(name, _)| name == "http")
        .ok_or_else(|| anyhow::anyhow!("the listener http is not bound"))?;
    let mut stream = TcpStream::connect(address).await?;
    let mut buf = vec![0u8; 16 * 1024];
    client(&mut stream, WARM_UP, &mut buf).await?;
    let (allocations, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    client(&mut stream, COUNTED, &mut buf).await?;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    let bytes = BYTES.load(Ordering::Relaxed) - bytes;
    drop(stream);
    proxy.drain(std::time::Duration::from_millis(200)).await;
    Ok((
        allocations as f64 / COUNTED as f64,
        bytes as f64 / COUNTED as f64,
    ))
}

async fn run() -> anyhow::Result<()> {
    let backend_listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend_port = backend_listener.local_addr()?.port();
    tokio::spawn(answer_each(backend_listener, RESPONSE));
    let collector_listener = TcpListener::bind("127.0.0.1:0").await?;
    let collector_port = collector_listener.local_addr()?.port();
    // The tracer's collector: each OTLP post answered `200` with an empty body.
    tokio::spawn(answer_each(
        collector_listener,
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ));
    let log =
        std::env::temp_dir().join(format!("outrigger-allocations-{}.log", std::process::id()));
    let (allocations, bytes) = count(config(backend_port, None)).await?;
    println!(
        "(a) http1 keep-alive GET through the proxy: {allocations:.2} allocations, {bytes:.0} bytes allocated per request ({COUNTED} requests)"
    );
    let (allocations, bytes) = count(config(backend_port, Some((collector_port, &log)))).await?;
    println!(
        "(i) the same with tracing at 1 % and a file access log: {allocations:.2} allocations, {bytes:.0} bytes allocated per request ({COUNTED} requests; the 1 % sampled vary by a few)"
    );
    let _ = std::fs::remove_file(&log);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // One worker, as the sidecar runs on a small CPU quota; the count does not depend on it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}
