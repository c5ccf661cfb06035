//! SDS: TLS contexts that name their certificate and trust bundle as secrets.
//!
//! - Over ADS, from the independent Python server (`tests/peers/ads_server.py`): a static listener and a
//!   dynamic one, and a dynamic cluster, all naming secrets. Before the secrets exist the listeners are not
//!   bound and `/ready` waits; then mTLS works end to end (curl with client certificates, TCP through the
//!   cluster's mTLS); a rotated secret is served on the next handshake while an open connection goes on.
//! - The same secrets from `static_resources.secrets` (files, rotated on disk), with the same bootstrap run by
//!   real Envoy 1.40: both accept and refuse the same client certificates.
//! - Warming, against real Envoy 1.40 given the same ADS states: a changed listener waiting for its secrets keeps
//!   its version before serving, then switches; a new one whose secret never comes is bound at its
//!   initial_fetch_timeout and fails every handshake; a cluster waiting for its secret warms too.
//! - `outrigger control-plane --ca-dir` issuing `default` and `ROOTCA` to an Outrigger sidecar and to Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sds/resources.rs"]
mod resources;
mod support;

use resources::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pki::{Pki, spiffe};
use support::tcp::free_port;
use support::{ChildGuard, peer};

/// Polls `check` for up to 20 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        if Instant::now() >= deadline {
            let text = log();
            let tail: String = text
                .lines()
                .filter(|l| !l.contains("statically linked") && !l.contains("server.cc:467"))
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "{what}: not in 20 s\n{}",
                &tail[tail.len().saturating_sub(4000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bound(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn read_pem(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// curl over mTLS to `port` with `identity`'s certificate (or none): true when the answer is `sds-ok`.
fn accepted(port: u16, identity: Option<&Path>) -> bool {
    let curl = peer("curl").expect("curl");
    let mut command = Command::new(curl);
    command.args(["-sk", "--max-time", "5"]);
    if let Some(identity) = identity {
        command
            .arg("--cert")
            .arg(identity.join("cert.pem"))
            .arg("--key")
            .arg(identity.join("key.pem"));
    }
    let output = command
        .arg(format!("https://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout) == "sds-ok"
}

/// The certificate `port` serves (PEM body without whitespace), asked with `identity`'s certificate.
fn served(port: u16, identity: &Path) -> String {
    let openssl = peer("openssl").expect("openssl");
    let output = Command::new("timeout")
        .arg("10")
        .arg(openssl)
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(identity.join("cert.pem"))
        .arg("-key")
        .arg(identity.join("key.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    pem_body(&text)
}

fn pem_body(text: &str) -> String {
    let Some(start) = text.find("-----BEGIN CERTIFICATE-----") else {
        return String::new();
    };
    let end = text[start..]
        .find("-----END CERTIFICATE-----")
        .map_or(text.len(), |e| e + start);
    text[start..end].split_whitespace().collect()
}

/// The URI SANs of the certificate `port` serves.
fn served_uri(port: u16, identity: &Path) -> String {
    let body = served(port, identity);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.trim_start_matches("-----BEGINCERTIFICATE-----")
    );
    let mut child = Command::new(peer("openssl").expect("openssl"))
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `line` on `stream` and reads its echo.
fn echo_on(stream: &mut TcpStream, line: &str) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if stream.write_all(line.as_bytes()).is_err() {
        return false;
    }
    let mut buffer = vec![0; line.len()];
    stream.read_exact(&mut buffer).is_ok() && buffer == line.as_bytes()
}

fn echo_through(port: u16, line: &str) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| echo_on(&mut s, line))
}

/// `outrigger run` (or Envoy) on a config, its log in a file, killed when dropped.
struct Process {
    child: ChildGuard,
    log: PathBuf,
}

impl Process {
    fn outrigger(dir: &Path, name: &str, config: &Value) -> Process {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = support::outrigger()
            .args(["run", "--concurrency", "1", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Process {
            child: ChildGuard(child),
            log,
        }
    }

    fn envoy(envoy: &Path, dir: &Path, name: &str, config: &Value, base_id: u32) -> Process {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(envoy)
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"])
            .args(["--base-id", &base_id.to_string(), "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Process {
            child: ChildGuard(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn child(&mut self) -> &mut Child {
        &mut self.child.0
    }
}

fn ready(admin: u16) -> Option<u16> {
    support::sidecar::get(("127.0.0.1", admin), "/ready").map(|r| r.0)
}

fn admin(port: u16) -> Value {
    json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}})
}

fn ads_bootstrap(node: &str, metadata: Value, admin_port: u16, ads_port: u16) -> Value {
    json!({
        "node": {"id": node, "cluster": "sds-tests", "metadata": metadata},
        "admin": admin(admin_port),
        "dynamic_resources": {
            "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"}},
        "static_resources": {"listeners": [], "clusters": [{
            "name": "xds", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ads_port}}}}]}]}}]}
    })
}

/// python3 with grpcio and xds-protos, or `None` outside CI.
fn python_with_xds_protos() -> Option<PathBuf> {
    let python = peer("python3")?;
    let ok = Command::new(&python)
        .args(["-c", "import grpc, envoy.service.discovery.v3.ads_pb2_grpc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || !support::in_ci(),
        "python3 lacks grpcio or xds-protos under CI=true"
    );
    ok.then_some(python)
}

/// Writes the ADS server's state file atomically.
fn write_state(path: &Path, version: u32, resources: &[(&str, Vec<Value>)]) {
    let mut by_type = serde_json::Map::new();
    for (type_url, list) in resources {
        let typed_list: Vec<Value> = list.iter().map(|r| typed(type_url, r.clone())).collect();
        by_type.insert(type_url.to_string(), Value::Array(typed_list));
    }
    let state = json!({"version": version.to_string(), "resources": by_type});
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, state.to_string()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn secrets_from(pki: &Pki, server: &Path, client: &Path) -> Vec<Value> {
    let ca = read_pem(&pki.dir.join("ca"), "ca.pem");
    vec![
        certificate_secret(
            "server_cert",
            &read_pem(server, "cert.pem"),
            &read_pem(server, "key.pem"),
        ),
        certificate_secret(
            "client_cert",
            &read_pem(client, "cert.pem"),
            &read_pem(client, "key.pem"),
        ),
        trust_secret("client_trust", &ca, &spiffe("client")),
        trust_secret("server_trust", &ca, &spiffe("server")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_over_ads_warm_serve_mtls_and_rotate() {
    let (Some(python), Some(_), Some(_)) =
        (python_with_xds_protos(), peer("curl"), peer("openssl"))
    else {
        return;
    };
    let pki = Pki::new("sds-ads");
    let server = pki.issue("server", &spiffe("server"));
    let server2 = pki.issue("server2", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    let client2 = pki.issue("client2", &spiffe("client"));
    let other = pki.issue("other", &spiffe("other"));
    let echo_server = support::tcp::echo().await;
    let (http_port, tcp_port, out_port, admin_port, ads_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let state = pki.dir.join("state.json");
    let dynamic = |secrets: Vec<Value>| {
        vec![
            (LISTENER, vec![mtls_tcp(tcp_port, true), out(out_port)]),
            (
                CLUSTER,
                vec![echo(echo_server.address.port()), to_mtls(tcp_port, true)],
            ),
            (SECRET, secrets),
        ]
    };
    // Version 1: listeners and clusters, no secrets yet.
    write_state(&state, 1, &dynamic(Vec::new()));
    let events = pki.dir.join("ads.events");
    let _ads = ChildGuard(
        Command::new(&python)
            .arg(support::repo_root().join("tests/peers/ads_server.py"))
            .args(["--port", &ads_port.to_string(), "--state"])
            .arg(&state)
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let ads_log = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until(
        "the ADS server listens",
        || ads_log().contains("listening"),
        &ads_log,
    );
    let mut bootstrap = ads_bootstrap("sds-sidecar", json!({}), admin_port, ads_port);
    bootstrap["static_resources"]["listeners"] = json!([mtls_http(http_port, true)]);
    let mut sidecar = Process::outrigger(&pki.dir, "sidecar", &bootstrap);
    let log = || sidecar_log(&pki.dir);
    wait_until(
        "listeners ACKed",
        || {
            ads_log()
                .lines()
                .any(|l| l.contains("\"ack\"") && l.contains("\"Listener\""))
        },
        &log,
    );
    // Warming: the secrets have not arrived, so neither listener that names them is served, and the
    // initial fetch waits for them.
    std::thread::sleep(Duration::from_millis(500));
    assert!(sidecar.child().try_wait().unwrap().is_none(), "{}", log());
    assert!(
        !bound(http_port) && !bound(tcp_port),
        "a listener without its secrets is served\n{}",
        log()
    );
    assert!(bound(out_port), "{}", log());
    assert_eq!(ready(admin_port), Some(503), "ready before the secrets");
    assert!(
        ads_log()
            .lines()
            .any(|l| l.contains("\"Secret\"") && l.contains("server_cert")),
        "the client subscribes to the secrets by name\n{}",
        ads_log()
    );

    // Version 2: the secrets. mTLS end to end.
    write_state(&state, 2, &dynamic(secrets_from(&pki, &server, &client)));
    wait_until(
        "the secrets served",
        || bound(http_port) && bound(tcp_port),
        &log,
    );
    wait_until("ready", || ready(admin_port) == Some(200), &log);
    assert!(accepted(http_port, Some(&client)), "{}", log());
    assert!(
        !accepted(http_port, Some(&other)),
        "a SAN the secret does not allow"
    );
    assert!(!accepted(http_port, None), "no client certificate");
    assert_eq!(
        served(http_port, &client),
        pem_body(&read_pem(&server, "cert.pem"))
    );
    let mut open = TcpStream::connect(("127.0.0.1", out_port)).unwrap();
    assert!(
        echo_on(&mut open, "before\n"),
        "through the cluster's mTLS\n{}",
        log()
    );

    // Version 3: both certificates rotated. The next handshakes use them; the open connection goes on.
    write_state(&state, 3, &dynamic(secrets_from(&pki, &server2, &client2)));
    let rotated = pem_body(&read_pem(&server2, "cert.pem"));
    wait_until(
        "the rotated certificate served",
        || served(http_port, &client) == rotated,
        &log,
    );
    assert_eq!(served(tcp_port, &client2), rotated);
    assert!(
        echo_on(&mut open, "after\n"),
        "the open connection\n{}",
        log()
    );
    assert!(
        echo_through(out_port, "new\n"),
        "a new connection\n{}",
        log()
    );
    assert!(accepted(http_port, Some(&client2)));
    assert!(
        log().contains("secrets updated; new handshakes use them"),
        "{}",
        log()
    );
}

fn sidecar_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sidecar.log")).unwrap_or_default()
}

/// A bootstrap whose TLS contexts name static secrets (files).
fn static_bootstrap(pki: &Pki, server: &Path, client: &Path, ports: [u16; 5]) -> Value {
    let [http_port, tcp_port, out_port, echo_port, admin_port] = ports;
    let ca = pki.dir.join("ca/ca.pem").display().to_string();
    let file = |dir: &Path, f: &str| dir.join(f).display().to_string();
    json!({
        "admin": admin(admin_port),
        "static_resources": {
            "listeners": [mtls_http(http_port, false), mtls_tcp(tcp_port, false), out(out_port)],
            "clusters": [echo(echo_port), to_mtls(tcp_port, false)],
            "secrets": [
                certificate_secret("server_cert", &file(server, "cert.pem"), &file(server, "key.pem")),
                certificate_secret("client_cert", &file(client, "cert.pem"), &file(client, "key.pem")),
                trust_secret("client_trust", &ca, &spiffe("client")),
                trust_secret("server_trust", &ca, &spiffe("server"))]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_secrets_serve_mtls_rotate_and_match_envoy() {
    let (Some(_), Some(_)) = (peer("curl"), peer("openssl")) else {
        return;
    };
    let pki = Pki::new("sds-static");
    let server = pki.issue("server", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    let other = pki.issue("other", &spiffe("other"));
    let foreign = pki.other_trust_domain("foreign", "client");
    let echo_server = support::tcp::echo().await;
    // The server's files are copied, so the test can rotate them.
    let live = pki.dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(server.join(f), live.join(f)).unwrap();
    }
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        echo_server.address.port(),
        free_port(),
    ];
    let config = static_bootstrap(&pki, &live, &client, ports);
    let sidecar = Process::outrigger(&pki.dir, "sidecar", &config);
    let log = || sidecar.log();
    wait_until("ready", || ready(ports[4]) == Some(200), &log);
    let verdicts = |port: u16| {
        [Some(&client), Some(&other), Some(&foreign), None]
            .map(|identity| accepted(port, identity.map(PathBuf::as_path)))
    };
    let outrigger = verdicts(ports[0]);
    assert_eq!(outrigger, [true, false, false, false], "{}", log());
    assert!(echo_through(ports[2], "static\n"), "{}", log());

    if let Some(envoy) = peer("envoy") {
        let envoy_ports = [
            free_port(),
            free_port(),
            free_port(),
            echo_server.address.port(),
            free_port(),
        ];
        let config = static_bootstrap(&pki, &live, &client, envoy_ports);
        let envoy = Process::envoy(
            &envoy,
            &pki.dir,
            "envoy",
            &config,
            7300 + std::process::id() % 500,
        );
        let envoy_log = || envoy.log();
        // Envoy's admin does not answer HTTP/1.0: wait for its listener instead.
        wait_until("Envoy serves", || bound(envoy_ports[0]), &envoy_log);
        assert_eq!(
            verdicts(envoy_ports[0]),
            outrigger,
            "Envoy and Outrigger disagree"
        );
        assert!(echo_through(envoy_ports[2], "envoy\n"), "{}", envoy_log());
    }

    // A static secret's files rotate like any certificate file.
    let server2 = pki.issue("server2", &spiffe("server"));
    for f in ["cert.pem", "key.pem"] {
        let staging = live.join(format!("{f}.new"));
        std::fs::copy(server2.join(f), &staging).unwrap();
        std::fs::rename(&staging, live.join(f)).unwrap();
    }
    let rotated = pem_body(&read_pem(&server2, "cert.pem"));
    wait_until(
        "the rotated file served",
        || served(ports[0], &client) == rotated,
        &log,
    );
    assert!(accepted(ports[0], Some(&client)));
}

#[test]
fn the_control_plane_issues_workload_certificates_to_outrigger_and_envoy() {
    let (Some(_), Some(_)) = (peer("curl"), peer("openssl")) else {
        return;
    };
    let pki = Pki::new("sds-issue");
    let client = pki.issue("client", &spiffe("client"));
    let folder = pki.dir.join("xds");
    let ads_port = free_port();
    // Each node's listener in its own folder: mTLS with the issued `default` and `ROOTCA`.
    let listener = |node: &str, port: u16| {
        let dir = folder.join(node);
        std::fs::create_dir_all(&dir).unwrap();
        let mut l = mtls_http(port, true);
        let context =
            &mut l["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"];
        context["tls_certificate_sds_secret_configs"] = json!([secret_ref("default", true)]);
        context["validation_context_sds_secret_config"] = secret_ref("ROOTCA", true);
        let document = json!({"resources": [typed(LISTENER, l)]});
        std::fs::write(dir.join("listener.yaml"), document.to_string()).unwrap();
    };
    std::fs::create_dir_all(&folder).unwrap();
    let (outrigger_port, envoy_port) = (free_port(), free_port());
    listener("cart", outrigger_port);
    listener("web", envoy_port);
    let cp_log = pki.dir.join("control-plane.log");
    let _control_plane = ChildGuard(
        support::outrigger()
            .args(["control-plane", "--config-dir"])
            .arg(&folder)
            .arg("--ca-dir")
            .arg(pki.dir.join("ca"))
            .args([
                "--cert-ttl",
                "1h",
                "--listen",
                &format!("127.0.0.1:{ads_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&cp_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let cp = || std::fs::read_to_string(&cp_log).unwrap_or_default();
    wait_until("the control plane listens", || bound(ads_port), &cp);

    let admin_port = free_port();
    let metadata = json!({"NAMESPACE": "shop", "SERVICE_ACCOUNT": "cart"});
    let sidecar = Process::outrigger(
        &pki.dir,
        "sidecar",
        &ads_bootstrap("cart", metadata, admin_port, ads_port),
    );
    let log = || format!("{}\n{}", sidecar.log(), cp());
    wait_until(
        "Outrigger serves with its issued certificate",
        || accepted(outrigger_port, Some(&client)),
        &log,
    );
    assert!(
        served_uri(outrigger_port, &client).contains("spiffe://cluster.local/ns/shop/sa/cart"),
        "{}",
        served_uri(outrigger_port, &client)
    );
    assert!(!accepted(outrigger_port, None));

    if let Some(envoy) = peer("envoy") {
        let envoy_admin = free_port();
        let metadata = json!({"SPIFFE_ID": "spiffe://cluster.local/ns/shop/sa/web"});
        let envoy = Process::envoy(
            &envoy,
            &pki.dir,
            "envoy",
            &ads_bootstrap("web", metadata, envoy_admin, ads_port),
            7900 + std::process::id() % 500,
        );
        let log = || format!("{}\n{}", envoy.log(), cp());
        wait_until(
            "Envoy serves with its issued certificate",
            || accepted(envoy_port, Some(&client)),
            &log,
        );
        assert!(served_uri(envoy_port, &client).contains("spiffe://cluster.local/ns/shop/sa/web"));
        assert!(!accepted(envoy_port, None));
    }
}

/// Every `sds_config` under `value` replaced by `source`.
fn with_sds_config(value: &mut Value, source: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "sds_config" {
                    *inner = source.clone();
                } else {
                    with_sds_config(inner, source);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| with_sds_config(v, source)),
        _ => {}
    }
}

/// Istio's pattern: a static listener's certificate and trust bundle from an `sds_config` gRPC source (the
/// static cluster `sds-grpc`, the Python server's SecretDiscoveryService), with no ADS at all. Until the
/// secrets arrive the listener is not served and `/ready` waits; then mTLS works with the delivered
/// certificate; a pushed new secret is served on the next handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_an_sds_grpc_source_warm_serve_and_rotate() {
    let (Some(python), Some(_), Some(_)) =
        (python_with_xds_protos(), peer("curl"), peer("openssl"))
    else {
        return;
    };
    let pki = Pki::new("sds-grpc");
    let server = pki.issue("server", &spiffe("server"));
    let server2 = pki.issue("server2", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    let (http_port, admin_port, sds_port) = (free_port(), free_port(), free_port());
    let state = pki.dir.join("state.json");
    write_state(&state, 1, &[(SECRET, Vec::new())]);
    let events = pki.dir.join("sds.events");
    let _sds = ChildGuard(
        Command::new(&python)
            .arg(support::repo_root().join("tests/peers/ads_server.py"))
            .args(["--port", &sds_port.to_string(), "--state"])
            .arg(&state)
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let sds_log = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until(
        "the SDS server listens",
        || sds_log().contains("listening"),
        &sds_log,
    );
    let mut listener = mtls_http(http_port, true);
    with_sds_config(
        &mut listener,
        &json!({"resource_api_version": "V3", "api_config_source": {
            "api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}),
    );
    let bootstrap = json!({
        "node": {"id": "sds-grpc-sidecar", "cluster": "sds-tests"},
        "admin": admin(admin_port),
        "static_resources": {"listeners": [listener], "clusters": [{
            "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": sds_port}}}}]}]}}]}
    });
    let mut sidecar = Process::outrigger(&pki.dir, "sidecar", &bootstrap);
    let log = || sidecar_log(&pki.dir);
    // The SDS stream asks for both secrets by name, on SecretDiscoveryService (the peer's stream kind
    // "sotw"); the listener warms meanwhile.
    wait_until(
        "the secrets asked for",
        || {
            sds_log().lines().any(|l| {
                l.contains("\"request\"") && l.contains("server_cert") && l.contains("client_trust")
            })
        },
        &|| format!("{}\n{}", log(), sds_log()),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(sidecar.child().try_wait().unwrap().is_none(), "{}", log());
    assert!(!bound(http_port), "served without its secrets\n{}", log());
    assert_eq!(ready(admin_port), Some(503), "ready before the secrets");

    write_state(&state, 2, &[(SECRET, secrets_from(&pki, &server, &client))]);
    wait_until("the listener served", || bound(http_port), &log);
    wait_until("ready", || ready(admin_port) == Some(200), &log);
    assert!(accepted(http_port, Some(&client)), "{}", log());
    assert!(!accepted(http_port, None), "no client certificate");
    assert_eq!(
        served(http_port, &client),
        pem_body(&read_pem(&server, "cert.pem"))
    );
    assert!(
        sds_log()
            .lines()
            .any(|l| l.contains("\"ack\"") && l.contains("\"Secret\"")),
        "{}",
        sds_log()
    );

    // A new certificate pushed: the next handshake serves it.
    write_state(
        &state,
        3,
        &[(SECRET, secrets_from(&pki, &server2, &client))],
    );
    let rotated = pem_body(&read_pem(&server2, "cert.pem"));
    wait_until(
        "the rotated certificate served",
        || served(http_port, &client) == rotated,
        &log,
    );
    assert!(accepted(http_port, Some(&client)), "{}", log());
}

/// A listener delivered over ADS names its secrets from an SDS gRPC source (DELTA_GRPC) that no static
/// resource uses: the SDS stream starts once the listener is accepted and asks for the names the listener
/// brings; the listener warms until they arrive, then serves mTLS. One Python server serves both the ADS and
/// the SecretDiscoveryService streams (two clusters, one address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_listener_takes_its_secrets_from_an_sds_grpc_source() {
    let (Some(python), Some(_), Some(_)) =
        (python_with_xds_protos(), peer("curl"), peer("openssl"))
    else {
        return;
    };
    let pki = Pki::new("sds-grpc-dynamic");
    let server = pki.issue("server", &spiffe("server"));
    let client = pki.issue("client", &spiffe("client"));
    let (http_port, admin_port, ads_port) = (free_port(), free_port(), free_port());
    let mut listener = mtls_http(http_port, true);
    with_sds_config(
        &mut listener,
        &json!({"api_config_source": {
            "api_type": "DELTA_GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}),
    );
    let state = pki.dir.join("state.json");
    write_state(
        &state,
        1,
        &[
            (LISTENER, vec![listener]),
            (SECRET, secrets_from(&pki, &server, &client)),
        ],
    );
    let events = pki.dir.join("ads.events");
    let _ads = ChildGuard(
        Command::new(&python)
            .arg(support::repo_root().join("tests/peers/ads_server.py"))
            .args(["--port", &ads_port.to_string(), "--state"])
            .arg(&state)
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let ads_log = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until(
        "the server listens",
        || ads_log().contains("listening"),
        &ads_log,
    );
    let mut bootstrap = ads_bootstrap("sds-grpc-dynamic", json!({}), admin_port, ads_port);
    let mut sds_cluster = bootstrap["static_resources"]["clusters"][0].clone();
    sds_cluster["name"] = json!("sds-grpc");
    sds_cluster["load_assignment"]["cluster_name"] = json!("sds-grpc");
    bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(sds_cluster);
    let _sidecar = Process::outrigger(&pki.dir, "sidecar", &bootstrap);
    let log = || format!("{}\n{}", sidecar_log(&pki.dir), ads_log());
    wait_until("the listener served", || bound(http_port), &log);
    assert!(accepted(http_port, Some(&client)), "{}", log());
    assert_eq!(
        served(http_port, &client),
        pem_body(&read_pem(&server, "cert.pem"))
    );
    // The secrets came on a delta stream of their own, asked for by name.
    assert!(
        ads_log()
            .lines()
            .any(|l| l.contains("\"stream\": \"delta\"")
                && l.contains("\"Secret\"")
                && l.contains("server_cert")),
        "{}",
        ads_log()
    );
    wait_until("ready", || ready(admin_port) == Some(200), &log);
}

/// Plain HTTP on `port`, named like `mtls_http` (so a later version of it is that listener changed): every
/// request answered 200 `plain-ok`.
fn plain_http(port: u16) -> Value {
    let mut listener = mtls_http(port, true);
    listener["filter_chains"][0]
        .as_object_mut()
        .unwrap()
        .remove("transport_socket");
    listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
        [0]["routes"][0]["direct_response"]["body"]["inline_string"] = json!("plain-ok");
    listener
}

/// A new mTLS listener `late` whose certificate `never` is never sent; its SDS initial_fetch_timeout is 1 s.
fn late_listener(port: u16) -> Value {
    let mut listener = mtls_http(port, true);
    listener["name"] = json!("late");
    listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificate_sds_secret_configs"] = json!([{"name": "never",
            "sds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "1s"}}]);
    listener
}

/// `listener_manager.total_listeners_warming` and `cluster_manager.warming_clusters` from `/stats`.
fn listeners_warming(admin: u16) -> String {
    // curl: Envoy's admin refuses HTTP/1.0 too.
    let output = Command::new(peer("curl").expect("curl"))
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{admin}/stats"),
        ])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ").map(str::to_string))
            .unwrap_or_else(|| "absent".into())
    };
    format!(
        "{} clusters warming {}",
        value("listener_manager.total_listeners_warming"),
        value("cluster_manager.warming_clusters")
    )
}

/// A new cluster `name` with mTLS to `port` whose client certificate `secret` is never sent (1 s timeout).
fn late_cluster(name: &str, port: u16, secret: &str) -> Value {
    let mut cluster = to_mtls(port, true);
    cluster["name"] = json!(name);
    cluster["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificate_sds_secret_configs"] = json!([{"name": secret,
            "sds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "1s"}}]);
    cluster
}

/// One follower (Outrigger or Envoy) through the secret warming steps; what a client sees at each.
fn secret_warming(pki: &Pki, python: &Path, envoy: Option<&Path>) -> Vec<String> {
    let name = if envoy.is_some() {
        "envoy"
    } else {
        "outrigger"
    };
    let server = pki.issue(&format!("{name}-server"), &spiffe("server"));
    let client = pki.issue(&format!("{name}-client"), &spiffe("client"));
    let (port, late, admin_port, ads_port) = (free_port(), free_port(), free_port(), free_port());
    let state = pki.dir.join(format!("{name}-state.json"));
    let secrets = secrets_from(pki, &server, &client);
    write_state(&state, 1, &[(LISTENER, vec![plain_http(port)])]);
    let events = pki.dir.join(format!("{name}-ads.events"));
    let _ads = ChildGuard(
        Command::new(python)
            .arg(support::repo_root().join("tests/peers/ads_server.py"))
            .args(["--port", &ads_port.to_string(), "--state"])
            .arg(&state)
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let ads_log = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until(
        "the ADS server listens",
        || ads_log().contains("listening"),
        &ads_log,
    );
    let bootstrap = ads_bootstrap(name, json!({}), admin_port, ads_port);
    let follower = match envoy {
        Some(envoy) => Process::envoy(envoy, &pki.dir, name, &bootstrap, 40_000 + u32::from(port)),
        None => Process::outrigger(&pki.dir, name, &bootstrap),
    };
    let log = || follower.log();
    // curl, HTTP/1.1 (Envoy refuses HTTP/1.0 by default): the body, or `None` when the request failed.
    let plain = || {
        let output = Command::new(peer("curl").expect("curl"))
            .args([
                "-s",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    };
    wait_until(
        "version 1 served",
        || plain().as_deref() == Some("plain-ok"),
        &log,
    );
    let sent = |kind: &str, version: u32| {
        wait_until(
            &format!("{kind} version {version} sent"),
            || {
                ads_log().lines().any(|l| {
                    l.contains("\"response\"")
                        && l.contains(&format!("\"{kind}\""))
                        && l.contains(&format!("\"version\": \"{version}\""))
                })
            },
            &ads_log,
        );
    };
    let mut seen = Vec::new();

    // Version 2: the listener changes to mTLS with secrets not sent yet; its version 1 serves meanwhile, and
    // no request fails.
    write_state(&state, 2, &[(LISTENER, vec![mtls_http(port, true)])]);
    sent("Listener", 2);
    let until = Instant::now() + Duration::from_millis(800);
    let mut answers = std::collections::BTreeSet::new();
    while Instant::now() < until {
        answers.insert(format!("{:?}", plain()));
        std::thread::sleep(Duration::from_millis(20));
    }
    seen.push(format!("changed, secrets missing: plain {answers:?}"));
    seen.push(format!("  mTLS {}", accepted(port, Some(&client))));
    seen.push(format!(
        "  listeners warming {}",
        listeners_warming(admin_port)
    ));

    // Version 3: the secrets arrive; the new version takes over.
    write_state(
        &state,
        3,
        &[
            (LISTENER, vec![mtls_http(port, true)]),
            (SECRET, secrets.clone()),
        ],
    );
    wait_until("mTLS served", || accepted(port, Some(&client)), &log);
    seen.push(format!("secrets arrived: plain {:?}", plain().is_some()));
    seen.push(format!(
        "  listeners warming {}",
        listeners_warming(admin_port)
    ));

    // Version 4: a new listener whose certificate never comes: not bound; after its 1 s initial_fetch_timeout
    // in force without it, every handshake failing.
    let resources = [
        (LISTENER, vec![mtls_http(port, true), late_listener(late)]),
        (SECRET, secrets.clone()),
    ];
    write_state(&state, 4, &resources);
    sent("Listener", 4);
    std::thread::sleep(Duration::from_millis(400));
    seen.push(format!("new, secret missing: bound {}", bound(late)));
    seen.push(format!(
        "  listeners warming {}",
        listeners_warming(admin_port)
    ));
    std::thread::sleep(Duration::from_millis(1500));
    seen.push(format!(
        "timed out: bound {} mTLS {}",
        bound(late),
        accepted(late, Some(&client))
    ));
    seen.push(format!(
        "  listeners warming {}",
        listeners_warming(admin_port)
    ));

    // Version 5: a new cluster naming the secret whose wait already timed out does not warm (one
    // subscription per secret, as Envoy shares them); version 6: one naming a secret not asked for yet warms
    // until its own 1 s initial_fetch_timeout.
    let mut resources = resources.to_vec();
    resources.push((CLUSTER, vec![late_cluster("late_a", port, "never")]));
    write_state(&state, 5, &resources);
    sent("Cluster", 5);
    std::thread::sleep(Duration::from_millis(400));
    seen.push(format!(
        "new cluster, timed-out secret: listeners warming {}",
        listeners_warming(admin_port)
    ));
    resources.pop();
    resources.push((
        CLUSTER,
        vec![
            late_cluster("late_a", port, "never"),
            late_cluster("late_b", port, "never_either"),
        ],
    ));
    write_state(&state, 6, &resources);
    sent("Cluster", 6);
    std::thread::sleep(Duration::from_millis(400));
    seen.push(format!(
        "new cluster, secret missing: listeners warming {}",
        listeners_warming(admin_port)
    ));
    std::thread::sleep(Duration::from_millis(1500));
    seen.push(format!(
        "timed out: listeners warming {}",
        listeners_warming(admin_port)
    ));
    eprintln!("{name}: {seen:#?}");
    seen
}

/// A changed listener whose new version waits for its SDS secrets keeps its version before in force (no
/// request fails), then switches; a new one whose secret never comes goes into force at its
/// initial_fetch_timeout with failing handshakes; a new cluster whose secret never comes warms until then too.
/// The same ADS states given to real Envoy 1.40.
#[test]
fn a_listener_warms_until_its_secrets_arrive_as_in_envoy() {
    let (Some(python), Some(_)) = (python_with_xds_protos(), peer("curl")) else {
        return;
    };
    let pki = Pki::new("sds-warming");
    let outrigger = secret_warming(&pki, &python, None);
    let expected = [
        "changed, secrets missing: plain {\"Some(\\\"plain-ok\\\")\"}",
        "  mTLS false",
        "  listeners warming 1 clusters warming 0",
        "secrets arrived: plain false",
        "  listeners warming 0 clusters warming 0",
        "new, secret missing: bound false",
        "  listeners warming 1 clusters warming 0",
        "timed out: bound true mTLS false",
        "  listeners warming 0 clusters warming 0",
        "new cluster, timed-out secret: listeners warming 0 clusters warming 0",
        "new cluster, secret missing: listeners warming 0 clusters warming 1",
        "timed out: listeners warming 0 clusters warming 0",
    ];
    assert_eq!(outrigger, expected);
    if let Some(envoy) = peer("envoy") {
        assert_eq!(
            secret_warming(&pki, &python, Some(&envoy)),
            outrigger,
            "Envoy 1.40 and Outrigger differ"
        );
    }
}
