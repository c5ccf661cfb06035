//! Mutual TLS with SPIFFE identities, against real peers: Envoy 1.40 as client and as server, OpenSSL's
//! s_client, curl. Each refusal (plaintext to a STRICT port, no client certificate, expired certificate, another
//! trust domain, a SPIFFE ID RBAC does not allow, garbage instead of a ClientHello) is checked for its log line
//! and its metric, with good traffic going on in between. Certificates rotate under load without a failed
//! request, and `transport_socket_matches` picks TLS per endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::pki::{Pki, spiffe, text};
use support::proxy::fill;
use support::sidecar::Sidecar;
use support::tcp::free_port;

const FAILURES: &str = "outrigger_tls_handshake_failure_total";

/// A server-side context: `{server}` holds cert.pem, key.pem and ca.pem.
const SERVER_TLS: &str = r#"
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates: [{certificate_chain: {filename: "{server}/cert.pem"}, private_key: {filename: "{server}/key.pem"}}]
            validation_context:
              trusted_ca: {filename: "{server}/ca.pem"}
              match_typed_subject_alt_names: [{san_type: URI, matcher: {prefix: "spiffe://cluster.local/"}}]
"#;

/// A client-side context presenting `{client}` and expecting the server to be `{expect}`. TLS 1.3 as Istio
/// sets it (a client's default maximum is 1.2, and the Envoy servers here take 1.3 only).
const CLIENT_TLS: &str = r#"
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            tls_params: {tls_maximum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: "{client}/cert.pem"}, private_key: {filename: "{client}/key.pem"}}]
            validation_context:
              trusted_ca: {filename: "{client}/ca.pem"}
              match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "{expect}"}}]
"#;

const ROUTER: &str = r#"http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]"#;

fn tls_inspector() -> &'static str {
    r#"listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]"#
}

fn server_tls(dir: &Path) -> String {
    fill(SERVER_TLS, &[("server", text(dir))])
}

fn client_tls(dir: &Path, expect: &str) -> String {
    fill(
        CLIENT_TLS,
        &[("client", text(dir)), ("expect", expect.to_string())],
    )
}

/// Outrigger terminating mTLS: `strict` (TLS only, RBAC allows only sa/client) and `permissive` (TLS or
/// plaintext), both in front of the test backend, passing the client's identity in XFCC.
fn inbound_config(server: &Path, admin: u16, strict: u16, permissive: u16, backend: u16) -> String {
    fill(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: strict
    address: {socket_address: {address: 127.0.0.1, port_value: {strict}}}
    {inspector}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      transport_socket: &server_tls {server_tls}
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: strict
          rules:
            action: ALLOW
            policies:
              only-the-client:
                permissions: [{any: true}]
                principals: [{authenticated: {principal_name: {exact: "{client_id}"}}}]
      - &hcm
        name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: {uri: true}
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}
          {router}
  - name: permissive
    address: {socket_address: {address: 127.0.0.1, port_value: {permissive}}}
    {inspector}
    filter_chains:
    - filter_chain_match: {transport_protocol: tls}
      transport_socket: *server_tls
      filters: [*hcm]
    - filter_chain_match: {transport_protocol: raw_buffer}
      filters: [*hcm]
  clusters:
  - name: backend
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {backend}}}}}]}]}
"#,
        &[
            ("admin", admin.to_string()),
            ("strict", strict.to_string()),
            ("permissive", permissive.to_string()),
            ("backend", backend.to_string()),
            ("server_tls", server_tls(server)),
            ("client_id", spiffe("client")),
            ("inspector", tls_inspector().to_string()),
            ("router", ROUTER.to_string()),
        ],
    )
}

/// Envoy as the client: plaintext in on `{port}`, mTLS out to Outrigger. `/` expects Outrigger to be
/// sa/server; `/wrong` expects somebody else, so Envoy must refuse Outrigger's certificate.
fn envoy_client_config(client: &Path, port: u16, admin: u16, outrigger: u16) -> String {
    fill(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: plain
    address: {socket_address: {address: 127.0.0.1, port_value: {port}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /wrong}, route: {cluster: wrong}}, {match: {prefix: /}, route: {cluster: outrigger}}]}]}
          {router}
  clusters:
  - name: outrigger
    connect_timeout: 2s
    load_assignment: {cluster_name: outrigger, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {outrigger}}}}}]}]}
    transport_socket: {right}
  - name: wrong
    connect_timeout: 2s
    load_assignment: {cluster_name: wrong, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {outrigger}}}}}]}]}
    transport_socket: {wrong}
"#,
        &[
            ("admin", admin.to_string()),
            ("port", port.to_string()),
            ("outrigger", outrigger.to_string()),
            ("right", client_tls(client, &spiffe("server"))),
            ("wrong", client_tls(client, &spiffe("someone-else"))),
            ("router", ROUTER.to_string()),
        ],
    )
}

fn curl(args: &[&str]) -> (bool, String) {
    let curl = support::peer("curl").expect("curl");
    let output = Command::new(curl)
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A request over mTLS with `identity`'s certificate (curl does not check the server: these tests are about
/// what the server accepts).
fn curl_with(identity: &Path, url: &str, extra: &[&str]) -> (bool, String) {
    let cert = identity.join("cert.pem");
    let key = identity.join("key.pem");
    let mut args = vec![
        "-k",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args)
}

fn openssl_s_client(port: u16, identity: Option<&Path>) -> String {
    let openssl = support::peer("openssl").expect("openssl");
    // `-ign_eof`: read until the server closes (after its answer, or after refusing), 10 s at most.
    let mut command = Command::new("timeout");
    command.arg("10").arg(openssl);
    command.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-tls1_3",
        "-ign_eof",
    ]);
    if let Some(identity) = identity {
        command
            .arg("-cert")
            .arg(identity.join("cert.pem"))
            .arg("-key")
            .arg(identity.join("key.pem"));
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // An HTTP request, so the client reads what the server does after the handshake (TLS 1.3 sends the
    // refusal of a missing client certificate then).
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /s_client HTTP/1.0\r\nHost: s-client\r\n\r\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn inbound_mtls_with_envoy_openssl_and_every_refusal() {
    let (Some(envoy), Some(_), Some(_)) = (
        support::peer("envoy"),
        support::peer("curl"),
        support::peer("openssl"),
    ) else {
        return;
    };
    let rt = runtime();
    let backend = rt.block_on(Backend::start("app"));
    let pki = Pki::new("mtls-inbound");
    let server = pki.issue("server", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    let intruder = pki.issue("intruder", &spiffe("intruder"));
    let expired = pki.expired("expired", &spiffe("client"));
    let foreign = pki.other_trust_domain("foreign", "client");

    let (admin, strict, permissive) = (free_port(), free_port(), free_port());
    let config = inbound_config(&server, admin, strict, permissive, backend.address.port());
    let outrigger = Sidecar::start(&pki.dir, "inbound", &config, admin);
    let strict_url = format!("https://127.0.0.1:{strict}/direct");
    let listener = format!("127.0.0.1_{strict}");
    let failures = |reason: &str| {
        outrigger.metric(
            FAILURES,
            &[("envoy_listener_address", &listener), ("reason", reason)],
        )
    };
    let good_traffic_goes_on = || {
        let (ok, body) = curl_with(&client, &strict_url, &[]);
        assert!(ok && body.contains("\"backend\":\"app\""), "{body}");
        assert!(body.contains("\"x-forwarded-proto\":\"https\""), "{body}");
    };

    // Real Envoy as the client, presenting sa/client and verifying that Outrigger is sa/server.
    let (envoy_port, envoy_admin) = (free_port(), free_port());
    let envoy_config = pki.dir.join("envoy-client.yaml");
    std::fs::write(
        &envoy_config,
        envoy_client_config(&client, envoy_port, envoy_admin, strict),
    )
    .unwrap();
    let mut envoy = support::envoy::Envoy::start(&envoy, &envoy_config);
    envoy.wait_for_port(envoy_port);
    let (ok, body) = curl(&[&format!("http://127.0.0.1:{envoy_port}/via-envoy")]);
    assert!(ok, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    let xfcc = seen["headers"]["x-forwarded-client-cert"].as_str().unwrap();
    assert!(
        xfcc.starts_with(&format!("By={};Hash=", spiffe("server")))
            && xfcc.ends_with(&format!(";URI={}", spiffe("client"))),
        "the app learns who called: {xfcc}"
    );
    // Envoy refuses Outrigger when it expects another SPIFFE ID: Envoy verified it.
    let (_, refused) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{envoy_port}/wrong"),
    ]);
    assert_eq!(refused, "503");
    assert!(
        outrigger.metric(
            "envoy_listener_ssl_handshake_total",
            &[("envoy_listener_address", &listener)]
        ) >= 1
    );

    // OpenSSL: TLS 1.3, a client certificate requested and required.
    let with_cert = openssl_s_client(strict, Some(&client));
    assert!(with_cert.contains("TLSv1.3"), "{with_cert}");
    assert!(
        with_cert.contains("Acceptable client certificate CA names"),
        "{with_cert}"
    );
    assert!(with_cert.contains("\"backend\":\"app\""), "{with_cert}");
    let without = openssl_s_client(strict, None);
    assert!(without.contains("certificate required"), "{without}");
    outrigger.wait_for_log(&["inbound TLS handshake failed", "no_client_certificate"]);
    assert_eq!(failures("no_client_certificate"), 1);
    good_traffic_goes_on();

    // Plaintext to the STRICT port.
    let (ok, _) = curl(&[&format!("http://127.0.0.1:{strict}/plain")]);
    assert!(!ok, "plaintext must not be served on a STRICT port");
    outrigger.wait_for_log(&["only serves mutual TLS", "plaintext"]);
    assert_eq!(failures("plaintext"), 1);
    good_traffic_goes_on();

    // An expired certificate from the right CA.
    let (ok, _) = curl_with(&expired, &strict_url, &[]);
    assert!(!ok);
    outrigger.wait_for_log(&[
        "inbound TLS handshake failed",
        "reason=\"expired\"",
        "certificate expired",
    ]);
    assert_eq!(failures("expired"), 1);
    good_traffic_goes_on();

    // A certificate from another trust domain's CA.
    let (ok, _) = curl_with(&foreign, &strict_url, &[]);
    assert!(!ok);
    outrigger.wait_for_log(&["inbound TLS handshake failed", "unknown_ca"]);
    assert_eq!(failures("unknown_ca"), 1);
    good_traffic_goes_on();

    // A valid mesh identity that RBAC does not allow.
    let (ok, _) = curl_with(&intruder, &strict_url, &[]);
    assert!(!ok);
    let line = outrigger.wait_for_log(&["RBAC denied the connection"]);
    assert!(line.contains(&spiffe("intruder")), "{line}");
    assert_eq!(
        outrigger.metric(
            "envoy_rbac_denied_total",
            &[("envoy_rbac_prefix", "strict")]
        ),
        1
    );
    good_traffic_goes_on();

    // Garbage that starts like a TLS record but is no ClientHello.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", strict)).unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x20this is not a client hello at all..")
        .unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing is served to garbage");
    outrigger.wait_for_log(&["only serves mutual TLS", "reason=\"protocol\""]);
    assert_eq!(failures("protocol"), 1);
    good_traffic_goes_on();

    // h2 by ALPN over mTLS.
    let (ok, version) = curl_with(
        &client,
        &strict_url,
        &["--http2", "-o", "/dev/null", "-w", "%{http_version}"],
    );
    assert!(ok && version == "2", "{version}");

    // PERMISSIVE: TLS and plaintext on one port; XFCC only when a certificate was presented.
    let (ok, body) = curl_with(&client, &format!("https://127.0.0.1:{permissive}/tls"), &[]);
    assert!(
        ok && body.contains(&format!("URI={}", spiffe("client"))),
        "{body}"
    );
    let (ok, body) = curl(&[
        "-H",
        "x-forwarded-client-cert: By=forged",
        &format!("http://127.0.0.1:{permissive}/plain"),
    ]);
    assert!(ok && !body.contains("x-forwarded-client-cert"), "{body}");
}

/// Outrigger as the client of a real Envoy mTLS server: HTTP and TCP, verifying Envoy's SPIFFE ID.
#[test]
fn outbound_mtls_to_envoy() {
    let (Some(envoy), Some(_)) = (support::peer("envoy"), support::peer("curl")) else {
        return;
    };
    let pki = Pki::new("mtls-outbound");
    let envoy_identity = pki.issue("envoy", &spiffe("envoy"));
    let client = pki.issue("client", &spiffe("client"));
    let (envoy_port, envoy_admin) = (free_port(), free_port());
    let envoy_config = support::envoy::mtls_server_config(
        &envoy_identity,
        &spiffe("client"),
        envoy_port,
        envoy_admin,
        "hello from envoy over mTLS",
    );
    let envoy_config_path = pki.dir.join("envoy-server.yaml");
    std::fs::write(&envoy_config_path, envoy_config).unwrap();
    let mut envoy = support::envoy::Envoy::start(&envoy, &envoy_config_path);
    envoy.wait_for_port(envoy_port);

    let (admin, front, front_tcp) = (free_port(), free_port(), free_port());
    let config = fill(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
{front_listener}
  - name: front_tcp
    address: {socket_address: {address: 127.0.0.1, port_value: {front_tcp}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: front_tcp, cluster: envoy}
  clusters:
  - name: envoy
    load_assignment: {cluster_name: envoy, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {envoy}}}}}]}]}
    transport_socket: {right}
  - name: impostor
    load_assignment: {cluster_name: impostor, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {envoy}}}}}]}]}
    transport_socket: {wrong}
"#,
        &[
            ("admin", admin.to_string()),
            (
                "front_listener",
                front_listener(front, "wrong", "impostor", "envoy"),
            ),
            ("front_tcp", front_tcp.to_string()),
            ("envoy", envoy_port.to_string()),
            ("right", client_tls(&client, &spiffe("envoy"))),
            ("wrong", client_tls(&client, &spiffe("somebody-else"))),
            ("router", ROUTER.to_string()),
        ],
    );
    let outrigger = Sidecar::start(&pki.dir, "outbound", &config, admin);

    let (ok, body) = curl(&[&format!("http://127.0.0.1:{front}/hello")]);
    assert!(ok && body == "hello from envoy over mTLS", "{body}");
    assert_eq!(
        outrigger.metric(
            "envoy_cluster_ssl_handshake_total",
            &[("envoy_cluster_name", "envoy")]
        ),
        1
    );

    // Raw TCP over mTLS: tcp_proxy with the same cluster.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", front_tcp)).unwrap();
    tcp.write_all(b"GET /tcp HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n")
        .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("hello from envoy over mTLS"), "{answer}");

    // Envoy's certificate is not the SPIFFE ID the impostor cluster expects: refused before any request.
    let (_, code) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{front}/wrong"),
    ]);
    assert_eq!(code, "503");
    let line = outrigger.wait_for_log(&["upstream TLS handshake failed", "san_mismatch"]);
    assert!(
        line.contains(&spiffe("envoy")),
        "the log names what was presented: {line}"
    );
    assert_eq!(
        outrigger.metric(
            FAILURES,
            &[
                ("envoy_cluster_name", "impostor"),
                ("reason", "san_mismatch")
            ]
        ),
        1
    );
}

/// A plaintext HTTP listener `front` on `port`: `/{prefix}...` goes to cluster `special`, the rest to `default`.
fn front_listener(port: u16, prefix: &str, special: &str, default: &str) -> String {
    fill(
        r#"  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: {port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /{prefix}}, route: {cluster: {special}}}, {match: {prefix: /}, route: {cluster: {default}}}]}]}
          {router}"#,
        &[
            ("port", port.to_string()),
            ("prefix", prefix.to_string()),
            ("special", special.to_string()),
            ("default", default.to_string()),
            ("router", ROUTER.to_string()),
        ],
    )
}

/// One process, both ends: `front` (plaintext) -> cluster over mTLS -> `mesh_in` (mTLS) -> backend.
fn loop_config(pki: &Pki, admin: u16, front: u16, mesh_in: u16, backend: u16) -> String {
    let server = pki.dir.join("server");
    let client = pki.dir.join("client");
    fill(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
{front_listener}
  - name: mesh_in
    address: {socket_address: {address: 127.0.0.1, port_value: {mesh_in}}}
    filter_chains:
    - transport_socket: {server_tls}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mesh_in
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: {uri: true}
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}
          {router}
  clusters:
  - name: mesh
    load_assignment: {cluster_name: mesh, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {mesh_in}}}}}]}]}
    transport_socket: {client_tls}
  # Istio's auto-mTLS: endpoints labelled tlsMode=istio get mTLS, the others plaintext.
  - name: mixed
    load_assignment:
      cluster_name: mixed
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {mesh_in}}}}
          metadata: {filter_metadata: {envoy.transport_socket_match: {tlsMode: istio}}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {backend}}}}
    transport_socket_matches:
    - name: istio-mtls
      match: {tlsMode: istio}
      transport_socket: {client_tls}
    - name: plaintext
      match: {}
      transport_socket: {name: envoy.transport_sockets.raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
  - name: backend
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {backend}}}}}]}]}
"#,
        &[
            ("admin", admin.to_string()),
            (
                "front_listener",
                front_listener(front, "mixed", "mixed", "mesh"),
            ),
            ("mesh_in", mesh_in.to_string()),
            ("backend", backend.to_string()),
            ("server_tls", server_tls(&server)),
            ("client_tls", client_tls(&client, &spiffe("server"))),
            ("router", ROUTER.to_string()),
        ],
    )
}

#[test]
fn transport_socket_matches_choose_tls_per_endpoint() {
    let rt = runtime();
    let backend = rt.block_on(Backend::start("app"));
    let pki = Pki::new("mtls-matches");
    pki.issue("server", &spiffe("server"));
    pki.issue("client", &spiffe("client"));
    let (admin, front, mesh_in) = (free_port(), free_port(), free_port());
    let config = loop_config(&pki, admin, front, mesh_in, backend.address.port());
    let _outrigger = Sidecar::start(&pki.dir, "matches", &config, admin);
    let (mut over_tls, mut plaintext) = (0, 0);
    for i in 0..10 {
        let reply = rt.block_on(support::client::get(
            &format!("http://127.0.0.1:{front}/mixed/{i}"),
            &[],
        ));
        assert_eq!(reply.status, 200);
        match reply.json()["headers"]["x-forwarded-client-cert"].as_str() {
            Some(xfcc) => {
                assert!(xfcc.contains(&format!("URI={}", spiffe("client"))));
                over_tls += 1;
            }
            None => plaintext += 1,
        }
    }
    assert_eq!(
        (over_tls, plaintext),
        (5, 5),
        "round robin over one mTLS and one plaintext endpoint"
    );
}

/// The certificate `port` serves, as PEM text without whitespace.
fn served_certificate(port: u16, identity: &Path) -> String {
    let output = openssl_s_client(port, Some(identity));
    let start = output
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = output[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    output[start..end].split_whitespace().collect()
}

fn pem_body(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap();
    text[..end].split_whitespace().collect()
}

/// Replaces `dir`'s certificate and key with `new`'s, each by an atomic rename, the key only once `between`
/// returns (as a real rotation may: in between, the two do not match and must not be used).
fn rotate(dir: &Path, new: &Path, between: impl Fn()) {
    for file in ["cert.pem", "key.pem"] {
        let staging = dir.join(format!("{file}.new"));
        std::fs::copy(new.join(file), &staging).unwrap();
        std::fs::rename(&staging, dir.join(file)).unwrap();
        if file == "cert.pem" {
            between();
        }
    }
}

/// Requests a load loop has finished (answered or failed), shared with the test's thread.
type Done = std::sync::Arc<std::sync::atomic::AtomicU32>;

/// Blocks until each loop has finished `more` requests past `since` (30 s at most): a number of requests in
/// a phase, whatever the machine's speed.
fn wait_for_requests(loops: &[(&str, &Done)], since: &[u32], more: u32) {
    let started = Instant::now();
    for ((name, done), since) in loops.iter().zip(since) {
        while done.load(std::sync::atomic::Ordering::SeqCst) < since + more {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the {name} loop finished {} requests, not {}",
                done.load(std::sync::atomic::Ordering::SeqCst),
                since + more
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn certificates_rotate_under_load_without_a_failed_request() {
    let (Some(_), Some(_)) = (support::peer("curl"), support::peer("openssl")) else {
        return;
    };
    let rt = runtime();
    let backend = rt.block_on(Backend::start("app"));
    let pki = Pki::new("mtls-rotation");
    let server = pki.issue("server", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    // The test's own client (curl, openssl) keeps its certificate: only the proxy's rotate.
    let caller = pki.issue("caller", &spiffe("caller"));
    let (admin, front, mesh_in) = (free_port(), free_port(), free_port());
    let config = loop_config(&pki, admin, front, mesh_in, backend.address.port());
    let outrigger = Sidecar::start(&pki.dir, "rotation", &config, admin);
    let before = served_certificate(mesh_in, &caller);
    assert_eq!(before, pem_body(&server.join("cert.pem")));

    // Load: requests through `front`, whose pooled mTLS connection to `mesh_in` was made with the old
    // certificates, and new mTLS connections straight to `mesh_in`, each a new handshake. Each phase lasts a
    // number of requests of each loop, not a time: 20 pooled and 5 new before the rotation, 3 of each while a
    // certificate does not match its key, and 20 and 5 after both reloads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (pooled_done, fresh_done): (Done, Done) = (Done::default(), Done::default());
    let pooled = {
        let (stop, done) = (stop.clone(), pooled_done.clone());
        rt.spawn(async move {
            let (mut sent, mut ok, mut failed) = (0u32, 0u32, Vec::new());
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
            {
                sent += 1;
                match support::client::try_get(&format!("http://127.0.0.1:{front}/pooled"), &[])
                    .await
                {
                    Ok(reply) if reply.status == 200 => ok += 1,
                    Ok(reply) => failed.push(format!("{} {}", reply.status, reply.body)),
                    Err(e) => failed.push(e),
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (sent, ok, failed)
        })
    };
    let fresh = {
        let (stop, done) = (stop.clone(), fresh_done.clone());
        let caller = caller.clone();
        std::thread::spawn(move || {
            let (mut sent, mut ok, mut failed) = (0u32, 0u32, Vec::new());
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
            {
                sent += 1;
                let (success, body) =
                    curl_with(&caller, &format!("https://127.0.0.1:{mesh_in}/fresh"), &[]);
                if success && body.contains("\"backend\":\"app\"") {
                    ok += 1;
                } else {
                    failed.push(body);
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (sent, ok, failed)
        })
    };
    let loops = [("pooled", &pooled_done), ("new-connection", &fresh_done)];
    let now = || loops.map(|(_, d)| d.load(std::sync::atomic::Ordering::SeqCst));
    wait_for_requests(&loops[..1], &[0], 20);
    wait_for_requests(&loops[1..], &[0], 5);
    let new_server = pki.issue("server-next", &spiffe("server"));
    let new_client = pki.issue("client-next", &spiffe("client"));
    rotate(&server, &new_server, || {
        wait_for_requests(&loops, &now(), 3)
    });
    rotate(&client, &new_client, || {
        wait_for_requests(&loops, &now(), 3)
    });
    outrigger.wait_for_log(&["server TLS context: certificates reloaded"]);
    outrigger.wait_for_log(&["upstream TLS context: certificates reloaded"]);
    let reloaded = now();
    wait_for_requests(&loops[..1], &reloaded[..1], 20);
    wait_for_requests(&loops[1..], &reloaded[1..], 5);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (pooled_sent, pooled_ok, pooled_failed) = rt.block_on(pooled).unwrap();
    let (fresh_sent, fresh_ok, fresh_failed) = fresh.join().unwrap();
    eprintln!(
        "rotation under load: pooled sent {pooled_sent}, succeeded {pooled_ok}, failed {}; new connections \
         sent {fresh_sent}, succeeded {fresh_ok}, failed {}",
        pooled_failed.len(),
        fresh_failed.len()
    );
    assert!(
        pooled_failed.is_empty(),
        "pooled requests failed: {pooled_failed:?}"
    );
    assert!(
        fresh_failed.is_empty(),
        "new connections failed: {fresh_failed:?}"
    );
    assert_eq!((pooled_ok, fresh_ok), (pooled_sent, fresh_sent));

    // New handshakes get the new certificate; the established upstream connection was never dropped.
    let after = served_certificate(mesh_in, &caller);
    assert_ne!(after, before);
    assert_eq!(after, pem_body(&new_server.join("cert.pem")));
    assert_eq!(
        outrigger.metric(
            "envoy_cluster_upstream_cx_total",
            &[("envoy_cluster_name", "mesh")]
        ),
        1,
        "one pooled connection carried every request through the rotation"
    );
    // A new upstream connection (the `mixed` cluster's pool) presents the new client certificate.
    let hash = sha256_fingerprint(&new_client.join("cert.pem"));
    let mut presented = Vec::new();
    for i in 0..2 {
        let reply = rt.block_on(support::client::get(
            &format!("http://127.0.0.1:{front}/mixed/{i}"),
            &[],
        ));
        if let Some(xfcc) = reply.json()["headers"]["x-forwarded-client-cert"].as_str() {
            presented.push(xfcc.to_string());
        }
    }
    assert_eq!(presented.len(), 1, "{presented:?}");
    assert!(
        presented[0].contains(&format!("Hash={hash}")),
        "{presented:?} vs {hash}"
    );
}

/// `openssl x509 -fingerprint -sha256`, as XFCC's `Hash` writes it (lower-case hex, no colons).
fn sha256_fingerprint(cert: &Path) -> String {
    let output = Command::new(support::peer("openssl").unwrap())
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// Public Envoy examples serve self-signed X.509 version 1 certificates inline (the front-proxy, tls and
/// websocket sandboxes). Envoy serves them; so must Outrigger (rustls' own check of the key pair parses the
/// certificate with webpki, which refuses version 1). The same file through both, the same answer over TLS.
#[test]
fn an_x509_v1_certificate_is_served_as_envoy_serves_it() {
    let envoy = support::peer("envoy");
    if support::peer("curl").is_none() {
        return;
    }
    let config =
        std::fs::read_to_string("tests/configs/valid/49-tls-x509-v1-certificate.yaml").unwrap();
    let dir = std::env::temp_dir().join(format!("outrigger-x509-v1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with_ports = |port: u16, admin: u16| {
        config.replace("18449", &port.to_string())
            + &format!(
                "admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}\n"
            )
    };
    let answer = |port: u16| curl(&["-k", &format!("https://127.0.0.1:{port}/")]);
    let expected = (true, "served with a version 1 certificate".to_string());

    let (port, admin) = (free_port(), free_port());
    let sidecar = Sidecar::start(&dir, "outrigger", &with_ports(port, admin), admin);
    assert_eq!(answer(port), expected, "{}", sidecar.log_text());
    drop(sidecar);

    if let Some(envoy) = envoy {
        let (port, admin) = (free_port(), free_port());
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, with_ports(port, admin)).unwrap();
        let mut envoy = support::envoy::Envoy::start(&envoy, &path);
        envoy.wait_for_port(port);
        assert_eq!(answer(port), expected, "Envoy");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
