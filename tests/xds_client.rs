//! Outrigger as the xDS client of an independent control plane: `tests/peers/ads_server.py` (grpcio +
//! xds-protos, our own Python server), state of the world and delta, with the fixtures that
//! `tests/peers/check_ads_server.sh` runs through real Envoy 1.40 (also run here, so the peer and the fixtures
//! are what Envoy accepts and refuses). Version 1 is served once the initial fetch is done; version 2 (another
//! cluster) under a continuous request loop with no failed request; a broken version 3 is NACKed with the
//! types Envoy NACKs, the error naming the resource and field, and version 2 keeps serving; the server killed,
//! traffic flows on the last good configuration; the server back, the client reconnects and takes version 4;
//! version 5 removes a cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::try_get;
use support::tcp::free_port;
use support::{ChildGuard, in_ci, peer, repo_root};

/// python3 with grpcio and xds-protos (`grpcio-csds`), or `None` outside CI.
fn python_with_xds_protos() -> Option<PathBuf> {
    let python = peer("python3")?;
    let ok = Command::new(&python)
        .args(["-c", "import grpc, envoy.service.discovery.v3.ads_pb2_grpc"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "python3 lacks grpcio or xds-protos under CI=true; .ci/run installs grpcio-csds"
        );
        eprintln!(
            "note: xds-protos is not installed; the xDS client test is not run (it is in CI)"
        );
        return None;
    }
    Some(python)
}

/// The Python ADS server, its event lines collected as they come.
struct AdsServer {
    _guard: ChildGuard,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl AdsServer {
    fn start(python: &Path, port: u16, state: &Path) -> AdsServer {
        Self::start_with(python, port, state, &[])
    }

    /// With more arguments (`--tls-cert`, ...).
    fn start_with(python: &Path, port: u16, state: &Path, args: &[&Path]) -> AdsServer {
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/peers/ads_server.py"))
            .args(["--port", &port.to_string(), "--state"])
            .arg(state)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(event) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        let server = AdsServer {
            _guard: ChildGuard(child),
            events,
        };
        server.wait_for(|e| e["event"] == "listening", "the ADS server listens");
        server
    }

    fn find(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|e| wanted(e))
            .cloned()
    }

    fn wait_for(
        &self,
        wanted: impl Fn(&serde_json::Value) -> bool,
        what: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(event) = self.find(&wanted) {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen; events: {:#?}",
                self.events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Fixture {
    dir: PathBuf,
    listen: u16,
    backend_a: u16,
    backend_b: u16,
}

impl Fixture {
    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Writes `tests/peers/ads/<template>` as the server's state, atomically.
    fn write_state(&self, template: &str, version: u32) {
        let text = std::fs::read_to_string(repo_root().join("tests/peers/ads").join(template))
            .unwrap()
            .replace("@LISTEN_PORT@", &self.listen.to_string())
            .replace("@BACKEND_A@", &self.backend_a.to_string())
            .replace("@BACKEND_B@", &self.backend_b.to_string())
            .replace("@VERSION@", &version.to_string());
        let temporary = self.dir.join("state.json.tmp");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, self.state()).unwrap();
    }
}

const BOOTSTRAP: &str = r#"node: {id: "{node}", cluster: xds-tests}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {ads}}}}}]}]
"#;

/// Status, the backend that answered and `x-state-version`, or the error.
async fn probe(port: u16) -> Result<(u16, String, String), String> {
    let reply = try_get(&format!("http://127.0.0.1:{port}/"), &[]).await?;
    let backend = reply.header("x-backend").unwrap_or_default();
    let version = reply.header("x-state-version").unwrap_or_default();
    Ok((reply.status, backend, version))
}

async fn wait_until_served(port: u16, backend: &str, version: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = probe(port).await;
        if let Ok((200, b, v)) = &seen
            && b == backend
            && v == version
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} from {backend} not served; last: {seen:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_text(admin: u16, path: &str) -> String {
    try_get(&format!("http://127.0.0.1:{admin}{path}"), &[])
        .await
        .map(|r| r.body)
        .unwrap_or_default()
}

/// The value of a Prometheus sample (`name{labels}` exactly as printed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn outrigger_follows_the_ads_server(api_type: &str) {
    let Some(python) = python_with_xds_protos() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "outrigger-xds-client-{}-{api_type}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (
        Backend::start("backend-a").await,
        Backend::start("backend-b").await,
    );
    let fixture = Fixture {
        dir: dir.clone(),
        listen: free_port(),
        backend_a: a.address.port(),
        backend_b: b.address.port(),
    };
    let (ads_port, admin) = (free_port(), free_port());
    let node = format!("outrigger-{api_type}");
    let bootstrap = BOOTSTRAP
        .replace("{node}", &node)
        .replace("{admin}", &admin.to_string())
        .replace("{api_type}", api_type)
        .replace("{ads}", &ads_port.to_string());
    std::fs::write(dir.join("bootstrap.yaml"), bootstrap).unwrap();
    let log = dir.join("outrigger.log");

    // Outrigger first, with no control plane yet: not ready until its first configuration is in place.
    let _outrigger = ChildGuard(
        support::outrigger()
            .args(["run", "-c"])
            .arg(dir.join("bootstrap.yaml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    support::tcp::wait_until_listening(admin, "the admin API").await;
    let ready = try_get(&format!("http://127.0.0.1:{admin}/ready"), &[])
        .await
        .unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (503, "INITIALIZING\n"));

    // Version 1.
    fixture.write_state("state-1.json", 1);
    let server = AdsServer::start(&python, ads_port, &fixture.state());
    wait_until_served(fixture.listen, "backend-a", "1", &log).await;
    // Ready once every name the listeners and clusters use has arrived (just after the first request works).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = try_get(&format!("http://127.0.0.1:{admin}/ready"), &[])
            .await
            .unwrap();
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for kind in [
        "Listener",
        "RouteConfiguration",
        "Cluster",
        "ClusterLoadAssignment",
    ] {
        server.wait_for(
            |e| e["event"] == "ack" && e["type"] == kind && e["version"] == "1",
            &format!("ACK of {kind} version 1"),
        );
    }

    // Version 2 (the route moves to a new cluster) while requests flow: none fails.
    fixture.write_state("state-2.json", 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut requests = 0;
    loop {
        requests += 1;
        let seen = probe(fixture.listen).await;
        match &seen {
            Ok((200, b, v)) if b == "backend-b" && v == "2" => break,
            Ok((200, _, _)) => {}
            _ => panic!(
                "request {requests} failed while switching to version 2: {seen:?}\n{}\n{:#?}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                server.events.lock().unwrap()
            ),
        }
        assert!(Instant::now() < deadline, "version 2 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..50 {
        assert_eq!(
            probe(fixture.listen).await.unwrap(),
            (200, "backend-b".into(), "2".into())
        );
    }

    // A broken version 3: the same types NACKed as Envoy NACKs (a cluster with an undefined lb_policy, a route
    // with a bad regex), each error naming the resource and field; version 2 keeps serving.
    fixture.write_state("state-broken.json", 3);
    let cluster_nack = server.wait_for(
        |e| e["event"] == "nack" && e["type"] == "Cluster",
        "NACK of the broken clusters",
    );
    let error = cluster_nack["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Cluster \"broken\"") && error.contains("lb_policy"),
        "{error}"
    );
    if api_type == "GRPC" {
        // Delta requests carry no version: the peer reports the one of the response they answer.
        assert_eq!(
            cluster_nack["version"], "2",
            "a NACK carries the last good version"
        );
    }
    let route_nack = server.wait_for(
        |e| e["event"] == "nack" && e["type"] == "RouteConfiguration",
        "NACK of the route with a bad regex",
    );
    let error = route_nack["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("RouteConfiguration \"routes\"") && error.contains("regex"),
        "{error}"
    );
    for _ in 0..10 {
        assert_eq!(
            probe(fixture.listen).await.unwrap(),
            (200, "backend-b".into(), "2".into())
        );
    }
    let stats = admin_text(admin, "/stats/prometheus").await;
    assert!(
        sample(&stats, "envoy_cluster_manager_cds_update_rejected_total{}") >= 1.0,
        "{stats}"
    );
    assert!(sample(&stats, "envoy_listener_manager_lds_update_success_total{}") >= 1.0);
    assert_eq!(sample(&stats, "envoy_control_plane_connected_state"), 1.0);

    // The server dies: traffic flows on the last good configuration.
    drop(server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        assert_eq!(
            probe(fixture.listen).await.unwrap(),
            (200, "backend-b".into(), "2".into())
        );
    }
    let stats = admin_text(admin, "/stats/prometheus").await;
    assert_eq!(sample(&stats, "envoy_control_plane_connected_state"), 0.0);

    // Back with version 4: the client reconnects and takes it.
    fixture.write_state("state-2.json", 4);
    let server = AdsServer::start(&python, ads_port, &fixture.state());
    wait_until_served(fixture.listen, "backend-b", "4", &log).await;

    // Version 5 drops cluster `a`.
    fixture.write_state("state-b-only.json", 5);
    wait_until_served(fixture.listen, "backend-b", "5", &log).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clusters = admin_text(admin, "/clusters").await;
        if clusters.contains("b::") && !clusters.lines().any(|l| l.starts_with("a::")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster a not removed: {clusters}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dump: serde_json::Value =
        serde_json::from_str(&admin_text(admin, "/config_dump").await).unwrap();
    // Each resource's version: the response's (state of the world) or the resource's own (delta).
    let routes_version =
        &dump["dynamic_resources_state"]["route_configs"]["routes"]["version_info"];
    if api_type == "GRPC" {
        assert_eq!(routes_version, "5", "{dump:#}");
    } else {
        assert!(
            routes_version.as_str().is_some_and(|v| !v.is_empty()),
            "{dump:#}"
        );
    }
    assert!(
        dump["dynamic_resources_state"]["listeners"]["ingress"]["last_updated"].is_string(),
        "{dump:#}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outrigger_follows_an_independent_sotw_control_plane() {
    outrigger_follows_the_ads_server("GRPC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outrigger_follows_an_independent_delta_control_plane() {
    outrigger_follows_the_ads_server("DELTA_GRPC").await;
}

/// The peer and its fixtures, checked against real Envoy 1.40 (what the test above expects of Outrigger is
/// what Envoy does with the same states).
#[test]
fn the_ads_peer_and_its_fixtures_behave_with_envoy() {
    let (Some(_), Some(envoy), Some(_)) = (python_with_xds_protos(), peer("envoy"), peer("curl"))
    else {
        return;
    };
    let output = Command::new("bash")
        .arg(repo_root().join("tests/peers/check_ads_server.sh"))
        .env("ENVOY_BIN", envoy)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The control plane's cluster over mutual TLS, built from the cluster's `UpstreamTlsContext` as the proxy
/// builds it (client certificate, trust bundle, SAN matcher): the Python server requires client certificates
/// its CA signed (grpcio `require_client_auth`). A sidecar with a trusted certificate takes its configuration
/// and serves it; one whose certificate comes from another CA is refused, says why, and stays not ready until
/// its certificate files are rotated to a trusted one (read again at the next attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outrigger_follows_a_control_plane_over_mtls() {
    let Some(python) = python_with_xds_protos() else {
        return;
    };
    let pki = support::pki::Pki::new("xds-mtls");
    let server_id = support::pki::spiffe("control-plane");
    let server_dir = pki.issue("server", &server_id);
    let client_dir = pki.issue("client", &support::pki::spiffe("sidecar"));
    let rogue_dir = pki.other_trust_domain("rogue", "sidecar");
    let dir = pki.dir.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let a = Backend::start("backend-a").await;
    let fixture = Fixture {
        dir: dir.clone(),
        listen: free_port(),
        backend_a: a.address.port(),
        backend_b: a.address.port(),
    };
    fixture.write_state("state-1.json", 1);
    let ads_port = free_port();
    let ca = pki.dir.join("ca/ca.pem");
    let server = AdsServer::start_with(
        &python,
        ads_port,
        &fixture.state(),
        &[
            Path::new("--tls-cert"),
            &server_dir.join("cert.pem"),
            Path::new("--tls-key"),
            &server_dir.join("key.pem"),
            Path::new("--client-ca"),
            &ca,
        ],
    );
    let bootstrap = |identity: &Path, admin: u16| {
        BOOTSTRAP
            .replace("{node}", "outrigger-mtls")
            .replace("{admin}", &admin.to_string())
            .replace("{api_type}", "GRPC")
            .replace("{ads}", &ads_port.to_string())
            + &format!(
                r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: control-plane.local
        common_tls_context:
          tls_certificates: [{{certificate_chain: {{filename: "{cert}"}}, private_key: {{filename: "{key}"}}}}]
          validation_context:
            trusted_ca: {{filename: "{ca}"}}
            match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{server_id}"}}}}]
"#,
                cert = identity.join("cert.pem").display(),
                key = identity.join("key.pem").display(),
                ca = ca.display(),
            )
    };
    let run = |name: &str, identity: &Path, admin: u16| {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, bootstrap(identity, admin)).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = support::outrigger()
            .args(["run", "--concurrency", "1", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (ChildGuard(child), log)
    };

    // Trusted: the configuration arrives over mTLS and serves.
    let admin = free_port();
    let (trusted, log) = run("trusted", &client_dir, admin);
    wait_until_served(fixture.listen, "backend-a", "1", &log).await;
    server.wait_for(
        |e| e["event"] == "ack" && e["type"] == "Listener" && e["version"] == "1",
        "ACK of the listeners over mTLS",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_get(&format!("http://127.0.0.1:{admin}/ready"), &[])
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            Instant::now() < deadline,
            "the trusted sidecar is not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("https://127.0.0.1:"), "{text}");

    // Another CA's certificate: the server refuses the handshake; the sidecar says so, backs off, and is
    // never ready.
    let rogue_admin = free_port();
    let (_rogue, rogue_log) = run("rogue", &rogue_dir, rogue_admin);
    support::tcp::wait_until_listening(rogue_admin, "the rogue sidecar's admin API").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&rogue_log).unwrap_or_default();
        let failures = text
            .lines()
            .filter(|l| l.contains("xDS stream to https://127.0.0.1:") && l.contains("retrying in"))
            .count();
        if failures >= 2 {
            // The refusal is named: the peer, the handshake, and the likely reason.
            assert!(
                text.contains(&format!("TLS handshake with 127.0.0.1:{ads_port} failed"))
                    && text.contains("client certificate"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempts logged:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = try_get(&format!("http://127.0.0.1:{rogue_admin}/ready"), &[])
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        server
            .find(|e| e["event"] == "stream_open" && e["stream"] == "sotw")
            .is_some()
    );
    let opened = server
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "stream_open")
        .count();
    assert_eq!(opened, 1, "only the trusted sidecar opened a stream");

    // The refused sidecar's files rotated to a trusted certificate: its next attempt reads them and connects
    // (the first sidecar stopped, so the listener's port is free for it).
    drop(trusted);
    for file in ["key.pem", "cert.pem"] {
        let temporary = rogue_dir.join(format!("{file}.new"));
        std::fs::copy(client_dir.join(file), &temporary).unwrap();
        std::fs::rename(&temporary, rogue_dir.join(file)).unwrap();
    }
    wait_until_served(fixture.listen, "backend-a", "1", &rogue_log).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_get(&format!("http://127.0.0.1:{rogue_admin}/ready"), &[])
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not used at the next attempt:\n{}",
            std::fs::read_to_string(&rogue_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
