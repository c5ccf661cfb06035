//! Connection-level policies in real Envoy 1.40 and in Outrigger, the same YAML, with an expected table both
//! must give:
//! - network RBAC over plain TCP (`tcp_proxy` behind `envoy.filters.network.rbac`): permissions by destination
//!   port, port range (start inclusive, end exclusive), destination IP, SNI (read by `tls_inspector`, matched
//!   by suffix, substring and regex), combined with `and_rules`, `or_rules` and `not_rule`; principals by
//!   remote IP with `or_ids`, and `any`. An allowed connection is echoed, a denied one is closed.
//! - TLS: `tls_params` minimum and maximum versions on both sides (curl forcing 1.2 or 1.3 downstream; a
//!   cluster limited to a version its server refuses), the upstream `sni` (the server only has a chain for
//!   that name), `san_type` (a DNS SAN matched as DNS passes, the same name expected as a URI SAN fails), a
//!   certificate and trust bundle given as `inline_bytes`, a body from `environment_variable`.
//! - HTTP/2: the SETTINGS and connection WINDOW_UPDATE that `http2_protocol_options` put on the wire, from the
//!   connection manager to a client and from a cluster to its upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use support::tcp::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A scratch directory for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("outrigger-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Envoy on `config`, when it is installed (a failure under CI when not), once `port` accepts connections.
fn envoy(dir: &std::path::Path, config: &str, port: u16) -> Option<support::envoy::Envoy> {
    let binary = support::peer("envoy")?;
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    let mut process = support::envoy::Envoy::start(&binary, &path);
    process.wait_for_port(port);
    Some(process)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// RBAC

/// ALLOW only to ports {p3} and [{p1}, {p2}), never to 127.0.0.2, and only from 127.0.0.1 or 127.0.0.5.
const PORTS_RULES: &str = r#"
            action: ALLOW
            policies:
              ports:
                permissions:
                - and_rules:
                    rules:
                    - or_rules:
                        rules:
                        - destination_port: {p3}
                        - destination_port_range: {start: {p1}, end: {p2}}
                    - not_rule: {destination_ip: {address_prefix: 127.0.0.2, prefix_len: 32}}
                principals:
                - or_ids:
                    ids:
                    - remote_ip: {address_prefix: 127.0.0.1, prefix_len: 32}
                    - remote_ip: {address_prefix: 127.0.0.5, prefix_len: 32}"#;

/// DENY any peer whose SNI ends in `.blocked.example`, contains `evil`, or is `re<digits>.example`.
const NAMES_RULES: &str = r#"
            action: DENY
            policies:
              names:
                permissions:
                - requested_server_name: {suffix: .blocked.example}
                - requested_server_name: {contains: evil}
                - requested_server_name: {safe_regex: {regex: "re[0-9]+\\.example"}}
                principals: [{any: true}]"#;

/// One listener: RBAC with `rules`, then tcp_proxy to the echo server.
fn rbac_listener(name: &str, address: &str, port: &str, inspector: bool, rules: &str) -> String {
    let listener_filters = if inspector {
        r#"
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}"#
    } else {
        ""
    };
    format!(
        r#"
  - name: {name}
    address: {{socket_address: {{address: {address}, port_value: {port}}}}}{listener_filters}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: {name}
          rules:{rules}
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: {name}, cluster: echo}}"#
    )
}

fn rbac_config(ports: &RbacPorts, echo: u16) -> String {
    let mut yaml = String::from("static_resources:\n  listeners:");
    for (name, port) in ["p0", "p1", "p2", "p3"].iter().zip(ports.row) {
        yaml += &rbac_listener(name, "127.0.0.1", &port.to_string(), false, PORTS_RULES);
    }
    yaml += &rbac_listener("ip2", "127.0.0.2", "{p1}", false, PORTS_RULES);
    yaml += &rbac_listener(
        "names",
        "127.0.0.1",
        &ports.names.to_string(),
        true,
        NAMES_RULES,
    );
    yaml += &format!(
        r#"
  clusters:
  - name: echo
    connect_timeout: 1s
    load_assignment: {{cluster_name: echo, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {echo}}}}}}}}}]}}]}}
"#
    );
    let values: Vec<(&str, String)> = ["p0", "p1", "p2", "p3"]
        .into_iter()
        .zip(ports.row.map(|p| p.to_string()))
        .collect();
    support::proxy::fill(&yaml, &values)
}

struct RbacPorts {
    /// Four consecutive ports, so that a range has ports on both sides of each end.
    row: [u16; 4],
    names: u16,
}

impl RbacPorts {
    fn new() -> RbacPorts {
        for _ in 0..100 {
            let row = [free_port(), free_port(), free_port(), free_port()];
            if row.windows(2).all(|w| w[1] == w[0] + 1) {
                return RbacPorts {
                    row,
                    names: free_port(),
                };
            }
        }
        panic!("no four consecutive free ports");
    }
}

/// Connects from `source` to `destination`, sends `message` and waits for it to come back: true when echoed,
/// false when the connection is closed (or reset) first.
async fn echoed(source: &str, destination: SocketAddr, message: &[u8]) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip(source), 0)).unwrap();
    let Ok(mut stream) = socket.connect(destination).await else {
        return false;
    };
    if stream.write_all(message).await.is_err() {
        return false;
    }
    let mut back = vec![0; message.len()];
    match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back)).await {
        Ok(Ok(_)) => back == message,
        Ok(Err(_)) => false,
        Err(_) => panic!("{destination} neither echoed nor closed in 5 s"),
    }
}

/// Every probe: what it is, and whether it was echoed.
async fn observe_rbac(ports: &RbacPorts) -> Vec<(String, bool)> {
    use outrigger_proxy::detect::client_hello::encode;
    let [p0, p1, p2, p3] = ports.row;
    let at = |address: &str, port: u16| SocketAddr::new(ip(address), port);
    let mut seen = Vec::new();
    for (source, destination) in [
        ("127.0.0.1", at("127.0.0.1", p0)),
        ("127.0.0.1", at("127.0.0.1", p1)),
        ("127.0.0.1", at("127.0.0.1", p2)),
        ("127.0.0.1", at("127.0.0.1", p3)),
        ("127.0.0.1", at("127.0.0.2", p1)),
        ("127.0.0.5", at("127.0.0.1", p1)),
        ("127.0.0.3", at("127.0.0.1", p1)),
        ("127.0.0.3", at("127.0.0.1", p3)),
    ] {
        let port = if destination.port() == p0 {
            "p0".to_string()
        } else {
            format!("p{}", destination.port() - p0)
        };
        let what = format!("{source} -> {}:{port}", destination.ip());
        seen.push((what, echoed(source, destination, b"ping").await));
    }
    let names = at("127.0.0.1", ports.names);
    for sni in [
        "a.blocked.example",
        "blocked.example.com",
        "my-evil.example",
        "re42.example",
        "re42.example.org",
        "ok.example",
    ] {
        let hello = encode(sni, &["h2"]);
        seen.push((
            format!("SNI {sni}"),
            echoed("127.0.0.1", names, &hello).await,
        ));
    }
    seen.push((
        "no TLS".to_string(),
        echoed("127.0.0.1", names, b"plain").await,
    ));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_rules_allow_and_deny_connections_like_envoy() {
    let expected: Vec<(String, bool)> = [
        // Below the range's start, its start (inclusive), its end (exclusive), the single port.
        ("127.0.0.1 -> 127.0.0.1:p0", false),
        ("127.0.0.1 -> 127.0.0.1:p1", true),
        ("127.0.0.1 -> 127.0.0.1:p2", false),
        ("127.0.0.1 -> 127.0.0.1:p3", true),
        // The not_rule on the destination IP.
        ("127.0.0.1 -> 127.0.0.2:p1", false),
        // The second of or_ids, and a source neither names.
        ("127.0.0.5 -> 127.0.0.1:p1", true),
        ("127.0.0.3 -> 127.0.0.1:p1", false),
        ("127.0.0.3 -> 127.0.0.1:p3", false),
        // DENY by suffix, substring and regex (a whole-name match); everything else, and no SNI, passes.
        ("SNI a.blocked.example", false),
        ("SNI blocked.example.com", true),
        ("SNI my-evil.example", false),
        ("SNI re42.example", false),
        ("SNI re42.example.org", true),
        ("SNI ok.example", true),
        ("no TLS", true),
    ]
    .into_iter()
    .map(|(what, echoed)| (what.to_string(), echoed))
    .collect();
    let echo = support::tcp::echo().await;
    let dir = Scratch::new("rbac");
    {
        let ports = RbacPorts::new();
        let config = rbac_config(&ports, echo.address.port());
        if let Some(_envoy) = envoy(&dir.0, &config, ports.names) {
            assert_eq!(
                observe_rbac(&ports).await,
                expected,
                "Envoy 1.40 (the recorded behaviour)"
            );
        }
    }
    let ports = RbacPorts::new();
    let _proxy = support::proxy::start(&rbac_config(&ports, echo.address.port())).await;
    assert_eq!(observe_rbac(&ports).await, expected, "Outrigger");
}

// ---------------------------------------------------------------------------------------------------------------
// TLS

const SERVER_NAME: &str = "server.example";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/server";

/// A CA, and a server certificate from it with a DNS SAN (`server.example`) and a URI SAN (a SPIFFE ID).
struct Certificates {
    ca: String,
    cert: String,
    key: String,
}

impl Certificates {
    fn new() -> Certificates {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
        server.subject_alt_names = vec![
            SanType::DnsName(SERVER_NAME.try_into().unwrap()),
            SanType::URI(SERVER_ID.try_into().unwrap()),
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = server.signed_by(&key, &issuer).unwrap();
        Certificates {
            ca: ca_pem,
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Standard base64 with padding: how `inline_bytes` is written in YAML.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A connection manager named `name` with `routes` (YAML flow sequence items).
fn hcm(name: &str, routes: &str) -> String {
    format!(
        r#"
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{routes}]}}]}}"#
    )
}

/// A downstream TLS context: the certificate as `inline_bytes`, its key from a file, and `tls_params`.
fn server_tls(params: &str) -> String {
    format!(
        r#"
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_params: {params}
            tls_certificates: [{{certificate_chain: {{inline_bytes: "{{cert}}"}}, private_key: {{filename: "{{key}}"}}}}]"#
    )
}

/// A cluster to 127.0.0.1:`port` over TLS: the CA as `inline_bytes`, `extra` added to the UpstreamTlsContext
/// and `params` as its `tls_params`.
fn tls_cluster(name: &str, port: &str, extra: &str, params: &str, san: &str) -> String {
    format!(
        r#"
  - name: {name}
    connect_timeout: 2s
    load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext{extra}
        common_tls_context:
          tls_params: {params}
          validation_context:
            trusted_ca: {{inline_bytes: "{{ca}}"}}
            match_typed_subject_alt_names: [{san}]"#
    )
}

fn tls_config(ports: &[(&str, u16)], certificates: &Certificates, key: &std::path::Path) -> String {
    let direct = |path: &str, body: &str| {
        format!("{{match: {{path: {path}}}, direct_response: {{status: 200, body: {body}}}}}")
    };
    let to = |path: &str, cluster: &str| {
        format!("{{match: {{path: {path}}}, route: {{cluster: {cluster}}}}}")
    };
    let front_routes = [
        to("/sni", "sni"),
        to("/default-max", "default_max"),
        to("/no-sni", "no_sni"),
        to("/uri-type", "uri_type"),
        to("/max12", "max12"),
        to("/min13", "min13"),
        to("/to12", "to12"),
        direct("/env", "{environment_variable: PATH}"),
    ]
    .join(", ");
    let dns = format!("{{san_type: DNS, matcher: {{exact: {SERVER_NAME}}}}}");
    let sni = format!("\n        sni: {SERVER_NAME}");
    let mut yaml = format!(
        r#"static_resources:
  listeners:
  - name: server13
    address: {{socket_address: {{address: 127.0.0.1, port_value: {{server13}}}}}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}
    filter_chains:
    - filter_chain_match: {{server_names: [{SERVER_NAME}]}}{server13_tls}
      filters:{server13_hcm}
  - name: server12
    address: {{socket_address: {{address: 127.0.0.1, port_value: {{server12}}}}}}
    filter_chains:
    - {server12_tls}
      filters:{server12_hcm}
  - name: front
    address: {{socket_address: {{address: 127.0.0.1, port_value: {{front}}}}}}
    filter_chains:
    - filters:{front_hcm}
  clusters:"#,
        server13_tls = server_tls("{tls_minimum_protocol_version: TLSv1_3}"),
        server13_hcm = hcm("server13", &direct("/sni", "{inline_string: server13}")),
        server12_tls = server_tls("{tls_maximum_protocol_version: TLSv1_2}").trim_start(),
        server12_hcm = hcm(
            "server12",
            "{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: server12}}}"
        ),
        front_hcm = hcm("front", &front_routes),
    );
    for (name, port, extra, params, san) in [
        (
            "sni",
            "{server13}",
            sni.as_str(),
            "{tls_maximum_protocol_version: TLSv1_3}",
            dns.as_str(),
        ),
        (
            "default_max",
            "{server13}",
            sni.as_str(),
            "{}",
            dns.as_str(),
        ),
        ("no_sni", "{server13}", "", "{}", dns.as_str()),
        (
            "uri_type",
            "{server13}",
            sni.as_str(),
            "{}",
            &format!("{{san_type: URI, matcher: {{exact: {SERVER_NAME}}}}}"),
        ),
        (
            "max12",
            "{server13}",
            sni.as_str(),
            "{tls_maximum_protocol_version: TLSv1_2}",
            dns.as_str(),
        ),
        (
            "min13",
            "{server12}",
            "",
            // A client's maximum must be raised too: Envoy accepts a minimum above the default maximum, then
            // fails every handshake; Outrigger refuses that configuration.
            "{tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}",
            dns.as_str(),
        ),
        ("to12", "{server12}", "", "{}", dns.as_str()),
    ] {
        yaml += &tls_cluster(name, port, extra, params, san);
    }
    yaml.push('\n');
    let mut values: Vec<(&str, String)> = ports.iter().map(|(n, p)| (*n, p.to_string())).collect();
    values.push(("cert", base64(certificates.cert.as_bytes())));
    values.push(("ca", base64(certificates.ca.as_bytes())));
    values.push(("key", key.display().to_string()));
    support::proxy::fill(&yaml, &values)
}

/// `curl` forcing one TLS version to 127.0.0.1:`port` (naming `server.example`): the HTTP status, or "000" when
/// the handshake failed.
fn curl_with_version(curl: &std::path::Path, port: u16, version: &str) -> String {
    let forced: &[&str] = match version {
        "1.2" => &["--tlsv1.2", "--tls-max", "1.2"],
        _ => &["--tlsv1.3"],
    };
    let output = std::process::Command::new(curl)
        .args([
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(forced)
        .arg("--resolve")
        .arg(format!("{SERVER_NAME}:{port}:127.0.0.1"))
        .arg(format!("https://{SERVER_NAME}:{port}/sni"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One HTTP/1.1 GET on a new connection: the status and body.
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Curl's status per listener and version, then each front route's status (and body when 200).
async fn observe_tls(ports: &[(&str, u16)]) -> Vec<(String, String)> {
    let port = |name: &str| ports.iter().find(|(n, _)| *n == name).unwrap().1;
    let mut seen = Vec::new();
    if let Some(curl) = support::peer("curl") {
        for (listener, version) in [
            ("server13", "1.2"),
            ("server13", "1.3"),
            ("server12", "1.2"),
            ("server12", "1.3"),
        ] {
            let (curl, at) = (curl.clone(), port(listener));
            let status = tokio::task::spawn_blocking(move || curl_with_version(&curl, at, version))
                .await
                .unwrap();
            seen.push((format!("curl TLS {version} to {listener}"), status));
        }
    }
    for path in [
        "/sni",
        "/default-max",
        "/no-sni",
        "/uri-type",
        "/max12",
        "/min13",
        "/to12",
        "/env",
    ] {
        let (status, body) = get(port("front"), path).await;
        let shown = if status == 200 {
            format!("200 {body}")
        } else {
            status.to_string()
        };
        seen.push((path.to_string(), shown));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_sni_and_san_types_like_envoy() {
    let path_variable = std::env::var("PATH").unwrap();
    let mut expected: Vec<(String, String)> = Vec::new();
    if support::peer("curl").is_some() {
        for (what, status) in [
            // Downstream: each listener refuses the version its tls_params exclude.
            ("curl TLS 1.2 to server13", "000"),
            ("curl TLS 1.3 to server13", "200"),
            ("curl TLS 1.2 to server12", "200"),
            ("curl TLS 1.3 to server12", "000"),
        ] {
            expected.push((what.into(), status.into()));
        }
    }
    for (path, shown) in [
        // The sni, with a DNS SAN matched as DNS: served by the only chain, for server.example.
        ("/sni", "200 server13".to_string()),
        // Without tls_params a client offers TLS 1.2 at most, which this server refuses.
        ("/default-max", "503".to_string()),
        // No sni: the server has no chain for the connection.
        ("/no-sni", "503".to_string()),
        // The DNS name expected as a URI SAN: the certificate's URI SAN is a SPIFFE ID.
        ("/uri-type", "503".to_string()),
        // A client capped at TLS 1.2 to a TLS 1.3 server, and one requiring 1.3 to a TLS 1.2 server.
        ("/max12", "503".to_string()),
        ("/min13", "503".to_string()),
        ("/to12", "200 server12".to_string()),
        // A body from the environment.
        ("/env", format!("200 {path_variable}")),
    ] {
        expected.push((path.into(), shown));
    }
    let certificates = Certificates::new();
    let dir = Scratch::new("tls-params");
    let key = dir.0.join("key.pem");
    std::fs::write(&key, &certificates.key).unwrap();
    let ports = || {
        [
            ("server13", free_port()),
            ("server12", free_port()),
            ("front", free_port()),
        ]
    };
    {
        let ports = ports();
        let config = tls_config(&ports, &certificates, &key);
        if let Some(_envoy) = envoy(&dir.0, &config, ports[2].1) {
            assert_eq!(
                observe_tls(&ports).await,
                expected,
                "Envoy 1.40 (the recorded behaviour)"
            );
        }
    }
    let ports = ports();
    let _proxy = support::proxy::start(&tls_config(&ports, &certificates, &key)).await;
    assert_eq!(observe_tls(&ports).await, expected, "Outrigger");
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP/2 settings

/// The connection manager's h2 options (to clients) and the cluster's (to its upstream), all off their defaults.
const H2_CONFIG: &str = r#"
static_resources:
  listeners:
  - name: h2
    address: {socket_address: {protocol: TCP, address: 127.0.0.1, port_value: {h2}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h2
          http2_protocol_options: {max_concurrent_streams: 7, initial_stream_window_size: 131072, initial_connection_window_size: 1048576}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: upstream}}]}]}
  clusters:
  - name: upstream
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {max_concurrent_streams: 5, initial_stream_window_size: 196608, initial_connection_window_size: 2097152}
    load_assignment: {cluster_name: upstream, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {upstream}}}}}]}]}
"#;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// What one side of an h2 connection announced when it opened: its first SETTINGS, and its connection window
/// (65535 plus its WINDOW_UPDATEs on stream 0).
#[derive(Debug, PartialEq)]
struct Announced {
    max_concurrent_streams: Option<u32>,
    initial_window_size: Option<u32>,
    connection_window: u32,
}

/// Reads frames for up to 3 s, until the peer's first SETTINGS and a connection WINDOW_UPDATE have come.
async fn announced(stream: &mut TcpStream) -> Announced {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut settings: Option<Vec<(u16, u32)>> = None;
    let mut window_updated = false;
    let mut connection_window = 65_535u32;
    while settings.is_none() || !window_updated {
        let mut header = [0u8; 9];
        let read = tokio::time::timeout_at(deadline, stream.read_exact(&mut header)).await;
        if !matches!(read, Ok(Ok(_))) {
            break;
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let stream_id =
            u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; length];
        let read = tokio::time::timeout_at(deadline, stream.read_exact(&mut payload)).await;
        if !matches!(read, Ok(Ok(_))) {
            break;
        }
        const SETTINGS: u8 = 4;
        const WINDOW_UPDATE: u8 = 8;
        const ACK: u8 = 1;
        match kind {
            SETTINGS if flags & ACK == 0 && settings.is_none() => {
                settings = Some(
                    payload
                        .chunks_exact(6)
                        .map(|e| {
                            (
                                u16::from_be_bytes([e[0], e[1]]),
                                u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
                            )
                        })
                        .collect(),
                );
            }
            WINDOW_UPDATE if stream_id == 0 && payload.len() == 4 => {
                let increment =
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                connection_window += increment & 0x7fff_ffff;
                window_updated = true;
            }
            _ => {}
        }
    }
    let setting = |id: u16| {
        settings
            .iter()
            .flatten()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| *v)
    };
    Announced {
        max_concurrent_streams: setting(3),
        initial_window_size: setting(4),
        connection_window,
    }
}

/// What the proxy announces to an h2 client, and to its h2 upstream (a listener of this test's that records it
/// and then closes, so the request that opened it gets an error the test does not look at).
async fn observe_h2(h2: u16, upstream: tokio::net::TcpListener) -> (Announced, Announced) {
    let mut client = TcpStream::connect(("127.0.0.1", h2)).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(&EMPTY_SETTINGS).await.unwrap();
    let to_client = announced(&mut client).await;
    let request = tokio::spawn(async move {
        let mut http1 = TcpStream::connect(("127.0.0.1", h2)).await.unwrap();
        let _ = http1
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), http1.read_to_end(&mut sink)).await;
    });
    let (mut proxy, _) = tokio::time::timeout(Duration::from_secs(5), upstream.accept())
        .await
        .expect("the proxy connects to the upstream")
        .unwrap();
    proxy.write_all(&EMPTY_SETTINGS).await.unwrap();
    let mut preface = [0u8; 24];
    tokio::time::timeout(Duration::from_secs(5), proxy.read_exact(&mut preface))
        .await
        .expect("the client preface")
        .unwrap();
    assert_eq!(preface, PREFACE);
    let to_upstream = announced(&mut proxy).await;
    drop(proxy);
    request.abort();
    (to_client, to_upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_protocol_options_are_announced_like_envoy() {
    let expected = (
        Announced {
            max_concurrent_streams: Some(7),
            initial_window_size: Some(131_072),
            connection_window: 1_048_576,
        },
        Announced {
            max_concurrent_streams: Some(5),
            initial_window_size: Some(196_608),
            connection_window: 2_097_152,
        },
    );
    let dir = Scratch::new("h2-settings");
    let config = |h2: u16, upstream: u16| {
        support::proxy::fill(
            H2_CONFIG,
            &[("h2", h2.to_string()), ("upstream", upstream.to_string())],
        )
    };
    {
        let h2 = free_port();
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        if let Some(_envoy) = envoy(&dir.0, &config(h2, upstream_port), h2) {
            assert_eq!(
                observe_h2(h2, upstream).await,
                expected,
                "Envoy 1.40 (the recorded behaviour)"
            );
        }
    }
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    let h2 = free_port();
    let _proxy = support::proxy::start(&config(h2, upstream_port)).await;
    assert_eq!(observe_h2(h2, upstream).await, expected, "Outrigger");
}
