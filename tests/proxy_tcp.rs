//! TCP proxying and protocol detection on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::proxy::{address, fill, start};
use support::tcp::{echo, free_port, speaks_first};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
static_resources:
  listeners:
  - name: edge
    address: {socket_address: {address: 127.0.0.1, port_value: {edge}}}
    listener_filters:
    - {name: envoy.filters.listener.http_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}}
    - {name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}
    listener_filters_timeout: {detect_timeout}
    continue_on_listener_filters_timeout: true
    filter_chains:
    - name: tls-api
      filter_chain_match: {server_names: ["api.svc.cluster.local"], transport_protocol: tls}
      filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tls_api, cluster: echo}
    - name: http
      filter_chain_match: {application_protocols: ["http/1.1", "h2c"]}
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge_http
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "seen as HTTP"}}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
    default_filter_chain:
      name: opaque
      filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: edge_tcp, cluster: {default_cluster}}
  - name: idle
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: idle, cluster: echo, idle_timeout: 0.3s}
  - name: mysql_port
    address: {socket_address: {address: 127.0.0.1, port_value: {mysql}}}
    listener_filters:
    - {name: envoy.filters.listener.http_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}}
    listener_filters_timeout: 30s
    filter_chains:
    - filter_chain_match: {destination_port: {mysql}}
      filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: mysql, cluster: greeter}
    - filter_chain_match: {application_protocols: ["http/1.1"]}
      filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: unused, cluster: echo}
  clusters:
  - {name: echo, load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {echo}}}}}]}]}}
  - {name: greeter, load_assignment: {cluster_name: greeter, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {greeter}}}}}]}]}}
"#;

/// Reads exactly `n` bytes, failing the test if they take more than 10 s.
async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buffer = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    buffer
}

async fn setup(
    detect_timeout: &str,
    default_cluster: &str,
) -> (outrigger_proxy::Proxy, Vec<support::tcp::Server>) {
    let echo = echo().await;
    let greeter = speaks_first(b"220 ready\r\n").await;
    let config = fill(
        CONFIG,
        &[
            ("edge", free_port().to_string()),
            ("mysql", free_port().to_string()),
            ("detect_timeout", detect_timeout.to_string()),
            ("default_cluster", default_cluster.to_string()),
            ("echo", echo.address.port().to_string()),
            ("greeter", greeter.address.port().to_string()),
        ],
    );
    (start(&config).await, vec![echo, greeter])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_bytes_are_copied_both_ways_with_half_close() {
    let (proxy, _servers) = setup("1s", "echo").await;
    let mut client = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap(); // half-close: the echo continues, then closes its side
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_is_detected_and_served_by_the_connection_manager() {
    let (proxy, _servers) = setup("1s", "echo").await;
    let mut client = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("seen as HTTP"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_falls_back_to_opaque_tcp_after_the_detection_timeout() {
    let (proxy, _servers) = setup("0.3s", "greeter").await;
    let mut client = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    assert_eq!(read_exactly(&mut client, 11).await, b"220 ready\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_matched_chain_skips_detection_so_server_first_protocols_never_wait() {
    let (proxy, _servers) = setup("1s", "echo").await;
    let mut client = TcpStream::connect(address(&proxy, "mysql_port"))
        .await
        .unwrap();
    // The listener would wait 30 s for HTTP bytes; the port match makes it not wait at all.
    assert_eq!(read_exactly(&mut client, 11).await, b"220 ready\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_routed_by_sni_without_being_terminated() {
    use outrigger_proxy::detect::client_hello::encode;
    let (proxy, _servers) = setup("1s", "greeter").await;
    // SNI matches the TLS chain: its tcp_proxy reaches the echo server, which sends the ClientHello back.
    let hello = encode("api.svc.cluster.local", &["h2"]);
    let mut client = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    client.write_all(&hello).await.unwrap();
    assert_eq!(
        read_exactly(&mut client, hello.len()).await,
        hello,
        "the ClientHello passed through untouched"
    );
    // Another name falls to the default chain (the greeter).
    let mut other = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    other
        .write_all(&encode("web.svc.cluster.local", &["h2"]))
        .await
        .unwrap();
    assert_eq!(read_exactly(&mut other, 11).await, b"220 ready\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_is_detected_with_curl_and_nghttp() {
    let (proxy, _servers) = setup("1s", "echo").await;
    let url = format!("http://{}/", address(&proxy, "edge"));
    let outputs = tokio::task::spawn_blocking(move || {
        let curl = support::peer("curl")?;
        let nghttp = support::peer("nghttp")?;
        let run = |program: &std::path::Path, args: &[&str]| {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        Some((
            run(
                &curl,
                &[
                    "-sS",
                    "--max-time",
                    "10",
                    "--http2-prior-knowledge",
                    "-w",
                    " %{http_version}",
                    &url,
                ],
            ),
            // nghttp speaks h2 with prior knowledge to http:// URLs; -v shows the frames.
            run(&nghttp, &["-v", "-t", "10", &url]),
        ))
    })
    .await
    .unwrap();
    let Some((curl, nghttp)) = outputs else {
        return;
    };
    assert_eq!(curl, "seen as HTTP 2");
    assert!(nghttp.contains(":status: 200"), "{nghttp}");
    assert!(nghttp.contains("seen as HTTP"), "{nghttp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_are_closed_after_idle_timeout() {
    let (proxy, _servers) = setup("1s", "echo").await;
    let mut client = TcpStream::connect(address(&proxy, "idle")).await.unwrap();
    client.write_all(b"still there?").await.unwrap();
    let mut echoed = [0u8; 12];
    client.read_exact(&mut echoed).await.unwrap();
    // Then silence: the proxy closes the connection at its 0.3s idle timeout: not before (a lower bound, so
    // closing at once would fail), and well before the test gives up; nothing more is sent.
    let silent = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
    let after = silent.elapsed();
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the idle connection was not closed cleanly: {closed:?}"
    );
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_secs(5),
        "closed {after:?} after the last byte, for an idle timeout of 0.3s"
    );
    // Its bytes are counted although the idle timeout, not a close, ended it.
    let stats = proxy.inputs.metrics.envoy_stats();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut stats = stats;
    while !stats.contains("tcp.idle.downstream_cx_rx_bytes_total: 12") {
        assert!(std::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = proxy.inputs.metrics.envoy_stats();
    }
    assert!(
        stats.contains("tcp.idle.downstream_cx_tx_bytes_total: 12"),
        "{stats}"
    );
}

/// Bytes 0, 1, ..., 250, 0, 1, ...: a pattern whose period (a prime) never lines up with the proxy's chunks,
/// so a byte lost, repeated or reordered anywhere shows.
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) % 251) as u8)
        .collect()
}

/// Sends `total` pattern bytes in 64 KiB writes, then half-closes.
async fn send_pattern(mut writer: tokio::net::tcp::OwnedWriteHalf, total: u64) {
    let block = pattern(0, 64 * 1024 + 251);
    let mut offset = 0;
    while offset < total {
        let start = (offset % 251) as usize;
        let len = (total - offset).min(64 * 1024) as usize;
        writer.write_all(&block[start..start + len]).await.unwrap();
        offset += len as u64;
    }
    writer.shutdown().await.unwrap();
}

/// Reads to EOF, checking every byte against the pattern; returns how many came.
async fn expect_pattern<R: tokio::io::AsyncRead + Unpin>(mut reader: R) -> u64 {
    let block = pattern(0, 256 * 1024 + 251);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    loop {
        let n = reader.read(&mut buffer).await.unwrap();
        if n == 0 {
            return offset;
        }
        let start = (offset % 251) as usize;
        assert!(
            buffer[..n] == block[start..start + n],
            "bytes {offset}..{} differ from what was sent",
            offset + n as u64
        );
        offset += n as u64;
    }
}

/// Waits (up to 10 s) until the proxy's stats contain every one of `lines`.
async fn wait_for_stats(proxy: &outrigger_proxy::Proxy, lines: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = proxy.inputs.metrics.envoy_stats();
        if lines.iter().all(|l| stats.lines().any(|s| s == l)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {lines:?} in\n{stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_arrive_intact_and_are_counted() {
    const TOTAL: u64 = 64 * 1024 * 1024;
    let (proxy, _servers) = setup("1s", "echo").await;
    let client = TcpStream::connect(address(&proxy, "edge")).await.unwrap();
    let (reader, writer) = client.into_split();
    // Written and read back at once (the echo returns what it gets): both directions carry 64 MiB together.
    let sending = tokio::spawn(send_pattern(writer, TOTAL));
    let echoed = tokio::time::timeout(Duration::from_secs(60), expect_pattern(reader))
        .await
        .expect("the echo took over 60 s");
    sending.await.unwrap();
    assert_eq!(echoed, TOTAL);
    wait_for_stats(
        &proxy,
        &[
            format!("tcp.edge_tcp.downstream_cx_rx_bytes_total: {TOTAL}"),
            format!("tcp.edge_tcp.downstream_cx_tx_bytes_total: {TOTAL}"),
            "tcp.edge_tcp.downstream_cx_total: 1".to_string(),
        ],
    )
    .await;
}

const HALF_CLOSE: &str = r#"
static_resources:
  listeners:
  - name: client_first
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: client_first, cluster: answers_after_eof}
  - name: upstream_first
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: upstream_first, cluster: closes_first}
  clusters:
  - {name: answers_after_eof, load_assignment: {cluster_name: answers_after_eof, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {answers_after_eof}}}}}]}]}}
  - {name: closes_first, load_assignment: {cluster_name: closes_first, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {closes_first}}}}}]}]}}
"#;

/// Serves one connection with `handle` (given the two halves), then reports what it returns.
async fn one_connection<F, Fut>(handle: F) -> (u16, tokio::task::JoinHandle<u64>)
where
    F: FnOnce(tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, write) = stream.into_split();
        handle(read, write).await
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_passes_either_way_while_the_other_direction_keeps_flowing() {
    const UP: u64 = 3 * 1024 * 1024 + 17;
    const DOWN: u64 = 5 * 1024 * 1024 + 3;
    // Reads the client's bytes to their end, and only then answers: the answer flows after the client's FIN.
    let (answers_after_eof, first) = one_connection(|read, write| async move {
        let received = expect_pattern(read).await;
        send_pattern(write, DOWN).await;
        received
    })
    .await;
    // Answers and half-closes first, then reads the client's bytes, which come after that FIN.
    let (closes_first, second) = one_connection(|read, write| async move {
        send_pattern(write, DOWN).await;
        expect_pattern(read).await
    })
    .await;
    let config = fill(
        HALF_CLOSE,
        &[
            ("answers_after_eof", answers_after_eof.to_string()),
            ("closes_first", closes_first.to_string()),
        ],
    );
    let proxy = start(&config).await;
    let limit = Duration::from_secs(30);

    let client = TcpStream::connect(address(&proxy, "client_first"))
        .await
        .unwrap();
    let (reader, writer) = client.into_split();
    send_pattern(writer, UP).await;
    let answer = tokio::time::timeout(limit, expect_pattern(reader)).await;
    assert_eq!(
        answer.unwrap(),
        DOWN,
        "the answer sent after the client's FIN"
    );
    assert_eq!(
        tokio::time::timeout(limit, first).await.unwrap().unwrap(),
        UP
    );

    let client = TcpStream::connect(address(&proxy, "upstream_first"))
        .await
        .unwrap();
    let (reader, writer) = client.into_split();
    // The upstream's FIN reaches the client (its read ends) while the client has not sent a byte yet.
    let answer = tokio::time::timeout(limit, expect_pattern(reader)).await;
    assert_eq!(answer.unwrap(), DOWN, "the upstream's bytes, then its FIN");
    send_pattern(writer, UP).await;
    assert_eq!(
        tokio::time::timeout(limit, second).await.unwrap().unwrap(),
        UP,
        "the client's bytes sent after the upstream's FIN"
    );

    let mut lines = Vec::new();
    for prefix in ["client_first", "upstream_first"] {
        lines.push(format!("tcp.{prefix}.downstream_cx_rx_bytes_total: {UP}"));
        lines.push(format!("tcp.{prefix}.downstream_cx_tx_bytes_total: {DOWN}"));
    }
    wait_for_stats(&proxy, &lines).await;
}
