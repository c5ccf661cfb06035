//! Connection limits in real Envoy 1.40 and in Outrigger, the same YAML:
//! - `envoy.filters.network.local_ratelimit`: with a bucket of 2 (refilled once a minute), the first two
//!   connections are served and the next two are closed before any byte is answered;
//!   `local_rate_limit.<stat_prefix>.rate_limited` counts the two. A disabled filter (`runtime_enabled: false`)
//!   limits nothing.
//! - `tcp_proxy` under the `max_connections` circuit breaker: while one connection is open, new ones are closed
//!   at once and counted in `upstream_cx_overflow`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::tcp::free_port;

const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: limited
    address: {socket_address: {address: 127.0.0.1, port_value: {limited}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: conns
          token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 60s}
      - {name: hcm, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: limited, http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}], route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: ok}}}]}]}}}
  - name: disabled
    address: {socket_address: {address: 127.0.0.1, port_value: {disabled}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: unlimited
          token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 60s}
          runtime_enabled: {default_value: false, runtime_key: conns_off}
      - {name: hcm, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: disabled, http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}], route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: ok}}}]}]}}}
"#;

/// One HTTP/1.1 request on a new connection: the status, or `None` when the connection was closed unanswered.
fn request(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// The value of one statistic in the admin's `/stats` text.
fn stat(admin: u16, name: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

/// What one proxy did: statuses on the limited listener, on the disabled one, and the statistic.
fn observe(ports: &[(&str, u16)]) -> (Vec<Option<u16>>, Vec<Option<u16>>, Option<String>) {
    let port = |name: &str| ports.iter().find(|(n, _)| *n == name).unwrap().1;
    let limited = (0..4).map(|_| request(port("limited"))).collect();
    let disabled = (0..3).map(|_| request(port("disabled"))).collect();
    let counted = stat(port("admin"), "local_rate_limit.conns.rate_limited");
    (limited, disabled, counted)
}

fn config(ports: &[(&str, u16)]) -> String {
    support::proxy::fill(
        CONFIG,
        &ports
            .iter()
            .map(|(n, p)| (*n, p.to_string()))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn new_connections_past_the_bucket_are_closed_like_envoy() {
    let expected = (
        vec![Some(200), Some(200), None, None],
        vec![Some(200), Some(200), Some(200)],
        Some("2".to_string()),
    );
    let dir = std::env::temp_dir().join(format!(
        "outrigger-network-rate-limit-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = || {
        [
            ("admin", free_port()),
            ("limited", free_port()),
            ("disabled", free_port()),
        ]
    };
    if let Some(envoy) = support::peer("envoy") {
        let ports = ports();
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, config(&ports)).unwrap();
        let mut process = support::envoy::Envoy::start(&envoy, &path);
        process.wait_for_port(ports[2].1);
        assert_eq!(
            observe(&ports),
            expected,
            "Envoy 1.40 (the recorded behaviour)"
        );
    }
    let ports = ports();
    let _sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &config(&ports), ports[0].1);
    assert_eq!(observe(&ports), expected, "Outrigger");
}

const TCP_CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: {tcp}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: echo}
  clusters:
  - name: echo
    connect_timeout: 1s
    circuit_breakers: {thresholds: [{max_connections: 1}]}
    load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {echo}}}}}]}]}
"#;

/// Sends `message` and reads the echo: `None` when the connection is closed (or reset) instead.
fn echo_through(stream: &mut TcpStream, message: &[u8]) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(message).ok()?;
    let mut answer = vec![0; message.len()];
    stream.read_exact(&mut answer).ok()?;
    Some(answer)
}

/// While one connection holds the only upstream connection: the second and third are closed, then counted.
fn observe_tcp(tcp: u16, admin: u16) -> (Vec<Option<Vec<u8>>>, Option<String>) {
    let mut first = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut answers = vec![echo_through(&mut first, b"one")];
    for message in [b"two", b"six"] {
        let mut other = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        answers.push(echo_through(&mut other, message));
    }
    answers.push(echo_through(&mut first, b"end"));
    (answers, stat(admin, "cluster.echo.upstream_cx_overflow"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_closes_connections_over_max_connections_like_envoy() {
    let echo = support::tcp::echo().await;
    let expected = (
        vec![Some(b"one".to_vec()), None, None, Some(b"end".to_vec())],
        Some("2".to_string()),
    );
    let dir = std::env::temp_dir().join(format!("outrigger-tcp-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = || [("admin", free_port()), ("tcp", free_port())];
    let config = |ports: &[(&str, u16)]| {
        let mut values: Vec<(&str, String)> =
            ports.iter().map(|(n, p)| (*n, p.to_string())).collect();
        values.push(("echo", echo.address.port().to_string()));
        support::proxy::fill(TCP_CONFIG, &values)
    };
    if let Some(envoy) = support::peer("envoy") {
        let ports = ports();
        let path = dir.join("envoy-tcp.yaml");
        std::fs::write(&path, config(&ports)).unwrap();
        let mut process = support::envoy::Envoy::start(&envoy, &path);
        process.wait_for_port(ports[1].1);
        // The readiness probe's own connection holds the one upstream connection until it is closed upstream.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let baseline = stat(ports[0].1, "cluster.echo.upstream_cx_overflow");
        assert_eq!(baseline.as_deref(), Some("0"), "the probe did not overflow");
        let seen = tokio::task::spawn_blocking(move || observe_tcp(ports[1].1, ports[0].1))
            .await
            .unwrap();
        assert_eq!(seen, expected, "Envoy 1.40 (the recorded behaviour)");
    }
    let ports = ports();
    let _sidecar =
        support::sidecar::Sidecar::start(&dir, "outrigger-tcp", &config(&ports), ports[0].1);
    let seen = tokio::task::spawn_blocking(move || observe_tcp(ports[1].1, ports[0].1))
        .await
        .unwrap();
    assert_eq!(seen, expected, "Outrigger");
}
