//! UDP listeners with `udp_proxy` in real Envoy 1.40 and in Outrigger, the same YAML and the same datagrams from
//! the same kind of clients to UDP echo backends of the test's own: the replies, which backend each session
//! reached (round robin per session, per datagram with `use_per_packet_load_balancing`), datagrams over
//! `max_rx_datagram_size` dropped on both sides, the cluster's `max_connections` limiting sessions, a route to
//! a missing cluster, idle sessions ended (a new upstream source port after `idle_timeout`), the listener
//! stopped by `POST /drain_listeners`, and every
//! statistic of the UDP proxy, its clusters and its listeners must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::tcp::free_port;
use tokio::net::UdpSocket;

/// Every listener forwards to echo backends that answer `<name>:` and the datagram.
const TEMPLATE: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: rr
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: {rr}}}
    udp_listener_config: {downstream_socket_config: {max_rx_datagram_size: 2000}}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig
        stat_prefix: rr
        matcher:
          on_no_match:
            action:
              name: route
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route
                cluster: pair
  - name: per_packet
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: {per_packet}}}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig
        stat_prefix: per_packet
        cluster: pair
        use_per_packet_load_balancing: true
  - name: limited
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: {limited}}}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig
        stat_prefix: limited
        cluster: one
        upstream_socket_config: {max_rx_datagram_size: 1000, prefer_gro: false}
  - name: nowhere
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: {nowhere}}}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig
        stat_prefix: nowhere
        cluster: missing
  - name: idle
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: {idle}}}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig
        stat_prefix: idle
        idle_timeout: 1s
        cluster: solo
  clusters:
  - name: pair
    load_assignment:
      cluster_name: pair
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {a}}}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {b}}}}
  - name: one
    circuit_breakers: {thresholds: [{max_connections: 1}]}
    load_assignment:
      cluster_name: one
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {c}}}}}]}]
  - name: solo
    load_assignment:
      cluster_name: solo
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {d}}}}}]}]
"#;

const LISTENERS: &[&str] = &["rr", "per_packet", "limited", "nowhere", "idle"];

/// A UDP echo backend: answers `<name>:` and the datagram, and remembers each datagram's source address.
struct Echo {
    port: u16,
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    async fn start(name: &'static str) -> Echo {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                log.lock().unwrap().push(from);
                let mut reply = format!("{name}:").into_bytes();
                reply.extend_from_slice(&buffer[..n]);
                let _ = socket.send_to(&reply, from).await;
            }
        });
        Echo { port, seen, task }
    }

    /// The distinct source ports the proxy sent from (one per upstream socket, so one per session).
    fn source_ports(&self) -> BTreeSet<u16> {
        self.seen.lock().unwrap().iter().map(|a| a.port()).collect()
    }

    fn datagrams(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One proxy (Envoy or Outrigger) on the template, with its own backends.
struct Proxy {
    kind: &'static str,
    admin: u16,
    ports: BTreeMap<&'static str, u16>,
    backends: BTreeMap<&'static str, Echo>,
    _envoy: Option<support::envoy::Envoy>,
    _sidecar: Option<support::sidecar::Sidecar>,
}

impl Proxy {
    async fn start(kind: &'static str, dir: &Path) -> Proxy {
        let mut backends = BTreeMap::new();
        for name in ["a", "b", "c", "d"] {
            backends.insert(name, Echo::start(name).await);
        }
        let admin = free_port();
        let mut values = vec![("admin", admin.to_string())];
        for (name, echo) in &backends {
            values.push((*name, echo.port.to_string()));
        }
        let mut ports = BTreeMap::new();
        for listener in LISTENERS {
            let port = free_port();
            ports.insert(*listener, port);
            values.push((*listener, port.to_string()));
        }
        let yaml = support::proxy::fill(TEMPLATE, &values);
        let (envoy, sidecar) = if kind == "envoy" {
            let binary = support::peer("envoy").unwrap();
            let path = dir.join("envoy.yaml");
            std::fs::write(&path, &yaml).unwrap();
            let mut process = support::envoy::Envoy::start(&binary, &path);
            process.wait_for_port(admin);
            (Some(process), None)
        } else {
            (
                None,
                Some(support::sidecar::Sidecar::start(
                    dir,
                    "outrigger",
                    &yaml,
                    admin,
                )),
            )
        };
        // Envoy's listeners read once its workers run, which `/ready` says.
        let ready = tokio::time::Instant::now();
        while !admin_get(admin, "/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            assert!(
                ready.elapsed() < Duration::from_secs(20),
                "{kind} not ready"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Proxy {
            kind,
            admin,
            ports,
            backends,
            _envoy: envoy,
            _sidecar: sidecar,
        }
    }

    fn listener(&self, name: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[name]))
    }

    /// The UDP proxy's statistics, its clusters' and its listeners' (listener scopes named by role, since the
    /// ports differ), by name.
    fn stats(&self) -> BTreeMap<String, u64> {
        // A reply reaches the client a moment before the proxy counts it as sent.
        std::thread::sleep(Duration::from_millis(200));
        let body = admin_get(self.admin, "/stats").unwrap();
        let mut by_port: Vec<(String, &str)> = self
            .ports
            .iter()
            .map(|(name, port)| (format!("127.0.0.1_{port}"), *name))
            .collect();
        by_port.sort();
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(name, _)| {
                name.starts_with("udp.")
                    || name.contains(".udp.")
                    || (name.starts_with("cluster.")
                        && [
                            "upstream_cx_overflow",
                            "upstream_cx_none_healthy",
                            "upstream_cx_rx_bytes_total",
                            "upstream_cx_tx_bytes_total",
                        ]
                        .iter()
                        .any(|s| name.ends_with(s)))
            })
            .filter_map(|(name, value)| {
                let mut name = name.to_string();
                for (scope, role) in &by_port {
                    name = name.replace(scope.as_str(), role);
                }
                Some((name, value.parse().ok()?))
            })
            .collect()
    }
}

/// The admin API's whole response (HTTP/1.1: Envoy's admin refuses 1.0).
fn admin_get(port: u16, path: &str) -> Option<String> {
    admin_request(port, "GET", path)
}

fn admin_request(port: u16, method: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A client socket on loopback.
async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `datagram` to `to` and returns the reply, or `None` when none comes within 300ms.
async fn exchange(client: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    client.send_to(datagram, to).await.unwrap();
    let mut buffer = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buffer)).await {
        Ok(Ok((n, _))) => Some(buffer[..n].to_vec()),
        _ => None,
    }
}

/// What a reply says: the backend's name and the length of what it echoed, or that none came.
fn describe(reply: Option<Vec<u8>>) -> String {
    match reply {
        None => "no reply".to_string(),
        Some(bytes) => {
            let name = String::from_utf8_lossy(&bytes[..bytes.len().min(2)]).to_string();
            format!("{name}{}", bytes.len() - 2)
        }
    }
}

/// Everything one run observes, for comparing Envoy's with Outrigger's.
#[derive(Debug, PartialEq)]
struct Observed {
    /// Per client: the backend names its replies came from, and the lengths echoed.
    replies: Vec<Vec<String>>,
    /// Shape facts that hold whatever host round robin starts at.
    facts: Vec<(String, String)>,
    stats: BTreeMap<String, u64>,
}

async fn traffic(proxy: &Proxy) -> Observed {
    let mut replies = Vec::new();
    let mut facts = Vec::new();
    let sizes: &[usize] = &[1, 0, 100, 1400, 1800, 2000, 2001, 9000];
    // Two clients on the round-robin listener: a session each, on different hosts.
    let rr = proxy.listener("rr");
    let (one, two) = (client().await, client().await);
    for c in [&one, &two] {
        let mut seen = Vec::new();
        for size in sizes {
            seen.push(describe(exchange(c, rr, &vec![b'x'; *size]).await));
        }
        replies.push(seen);
    }
    let hosts = |replies: &[String]| -> BTreeSet<String> {
        replies
            .iter()
            .filter(|r| r.as_str() != "no reply")
            .map(|r| r[..1].to_string())
            .collect()
    };
    let (h1, h2) = (hosts(&replies[0]), hosts(&replies[1]));
    facts.push((
        "hosts per session".into(),
        format!("{} {}", h1.len(), h2.len()),
    ));
    facts.push(("sessions on different hosts".into(), (h1 != h2).to_string()));
    // Mask the host names (round robin starts anywhere): keep the lengths.
    for seen in &mut replies {
        for reply in seen.iter_mut() {
            if reply != "no reply" {
                *reply = format!("host:{}", &reply[2..]);
            }
        }
    }
    let a_ports = proxy.backends["a"].source_ports().len();
    let b_ports = proxy.backends["b"].source_ports().len();
    facts.push((
        "rr upstream sockets".into(),
        format!("{}", a_ports + b_ports),
    ));

    // Per-datagram balancing: one client, four datagrams, two each way, one session (socket) per host.
    let per_packet = proxy.listener("per_packet");
    let three = client().await;
    let mut seen = Vec::new();
    for i in 0..4 {
        let reply = describe(exchange(&three, per_packet, format!("p{i}").as_bytes()).await);
        seen.push(reply[2..].to_string());
    }
    replies.push(seen);
    let (a, b) = (&proxy.backends["a"], &proxy.backends["b"]);
    facts.push((
        "per-packet datagrams a+b, sockets a+b".into(),
        format!(
            "{} {}",
            a.datagrams() + b.datagrams(),
            a.source_ports().len() + b.source_ports().len()
        ),
    ));

    // max_connections 1: the first client's session is the only one; a reply over 1000 bytes is dropped.
    let limited = proxy.listener("limited");
    let mut seen = Vec::new();
    for (c, size) in [(&one, 10), (&two, 10), (&one, 997), (&one, 999), (&one, 5)] {
        seen.push(describe(exchange(c, limited, &vec![b'y'; size]).await));
    }
    replies.push(seen);

    // No cluster of that name: dropped.
    let nowhere = proxy.listener("nowhere");
    replies.push(vec![describe(exchange(&one, nowhere, b"lost").await)]);
    Observed {
        replies,
        facts,
        stats: proxy.stats(),
    }
}

fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("outrigger-udp-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_sessions_and_stats_like_envoy() {
    let dir = scratch("datagrams");
    let ours = Proxy::start("outrigger", &dir).await;
    let observed = traffic(&ours).await;
    eprintln!("{}: {observed:#?}", ours.kind);
    // What Envoy 1.40 does, also when it is not installed: 0-byte datagrams are forwarded, the client's
    // 2001 and 9000 bytes are over the listener's 2000, the second session over max_connections 1 is refused.
    let host = |n: usize| format!("host:{n}");
    assert_eq!(
        observed.replies[0],
        vec![
            host(1),
            host(0),
            host(100),
            host(1400),
            host(1800),
            host(2000),
            "no reply".into(),
            "no reply".into()
        ]
    );
    assert_eq!(
        observed.replies[3],
        vec!["c:10", "no reply", "c:997", "no reply", "c:5"]
    );
    assert_eq!(observed.replies[4], vec!["no reply"]);
    assert_eq!(observed.stats["udp.rr.downstream_sess_total"], 2);
    // Envoy 1.40 counts the session max_connections refused in the total, not among the active.
    assert_eq!(observed.stats["udp.limited.downstream_sess_total"], 2);
    assert_eq!(observed.stats["udp.limited.downstream_sess_active"], 1);
    assert_eq!(observed.stats["cluster.solo.udp.sess_tx_datagrams"], 0);
    assert_eq!(observed.stats["udp.per_packet.downstream_sess_total"], 2);
    assert_eq!(observed.stats["cluster.one.upstream_cx_overflow"], 1);
    assert_eq!(
        observed.stats["cluster.one.udp.sess_rx_datagrams_dropped"],
        1
    );
    assert_eq!(
        observed.stats["listener.rr.udp.downstream_rx_datagram_dropped"],
        4
    );
    assert_eq!(observed.stats["udp.nowhere.downstream_sess_no_route"], 1);
    if support::peer("envoy").is_some() {
        let envoy = Proxy::start("envoy", &dir).await;
        let theirs = traffic(&envoy).await;
        assert_eq!(
            observed.replies, theirs.replies,
            "replies differ from Envoy's"
        );
        assert_eq!(observed.facts, theirs.facts, "sessions differ from Envoy's");
        assert_eq!(
            observed.stats, theirs.stats,
            "statistics differ from Envoy's"
        );
    }
}

/// A session quiet for `idle_timeout` ends; the client's next datagram opens a new one (a new upstream socket);
/// datagrams within the timeout keep it. Then `POST /drain_listeners`: the listener stops, an open session
/// and a new client alike get no reply.
async fn idle(proxy: &Proxy) -> (Vec<usize>, BTreeMap<String, u64>, Vec<String>) {
    let to = proxy.listener("idle");
    let c = client().await;
    let backend = &proxy.backends["d"];
    let mut sockets = Vec::new();
    // Kept alive: a datagram every 400ms for 2s.
    for _ in 0..5 {
        assert!(exchange(&c, to, b"keep").await.is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    sockets.push(backend.source_ports().len());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(exchange(&c, to, b"again").await.is_some());
    sockets.push(backend.source_ports().len());
    let stats = proxy
        .stats()
        .into_iter()
        .filter(|(name, _)| name.starts_with("udp.idle.") || name.starts_with("cluster.solo."))
        .collect();
    let drained = admin_request(proxy.admin, "POST", "/drain_listeners").unwrap();
    assert!(drained.starts_with("HTTP/1.1 200"), "{drained}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = client().await;
    let after = vec![
        describe(exchange(&c, to, b"open session").await),
        describe(exchange(&fresh, to, b"new client").await),
    ];
    (sockets, stats, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end_and_drain_like_envoy() {
    let dir = scratch("idle");
    let ours = Proxy::start("outrigger", &dir).await;
    let (sockets, stats, after_drain) = idle(&ours).await;
    assert_eq!(after_drain, vec!["no reply", "no reply"]);
    assert_eq!(
        sockets,
        vec![1, 2],
        "one upstream socket while busy, a new one after idling"
    );
    assert_eq!(stats["udp.idle.idle_timeout"], 1, "{stats:#?}");
    assert_eq!(stats["udp.idle.downstream_sess_total"], 2, "{stats:#?}");
    assert_eq!(stats["udp.idle.downstream_sess_active"], 1, "{stats:#?}");
    if support::peer("envoy").is_some() {
        let envoy = Proxy::start("envoy", &dir).await;
        let theirs = idle(&envoy).await;
        assert_eq!((sockets, stats, after_drain), theirs, "differs from Envoy");
    }
}
