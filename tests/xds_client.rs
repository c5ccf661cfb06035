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
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The state of one client's server for the TTL test: listener `ingress` (RDS `routes` -> cluster `a`), an
/// API listener `grpc-target` (for proxyless gRPC clients), static clusters `a` and `t` (both to `backend`),
/// a cluster `tls` whose client certificate is the SDS secret `client-cert`; `t` and `routes` have a TTL of
/// 3 s, refreshed every second while `heartbeats`. The secret holds `tests/configs/certs/<cert>.pem`.
fn ttl_state(
    version: u32,
    listen: u16,
    backend: u16,
    heartbeats: bool,
    cert: &str,
) -> serde_json::Value {
    use serde_json::json;
    let router = json!([{"name": "envoy.filters.http.router", "typed_config":
        {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]);
    let rds = |name: &str| json!({"route_config_name": name, "config_source": {"ads": {}, "resource_api_version": "V3"}});
    let cluster = |name: &str| {
        json!({"@type": CLUSTER, "name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                {"socket_address": {"address": "127.0.0.1", "port_value": backend}}}}]}]}})
    };
    let mut tls = cluster("tls");
    tls["transport_socket"] = json!({"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {"tls_certificate_sds_secret_configs": [
            {"name": "client-cert", "sds_config": {"ads": {}, "resource_api_version": "V3"}}]}}});
    let certs = repo_root().join("tests/configs/certs");
    json!({
        "version": version.to_string(),
        "heartbeat_seconds": if heartbeats { 1 } else { 0 },
        "ttls": {CLUSTER: {"t": 3}, ROUTES: {"routes": 3}},
        "resources": {
            LISTENER: [
                {"@type": LISTENER, "name": "ingress",
                 "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                 "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {"@type": HCM, "stat_prefix": "ingress", "rds": rds("routes"),
                                     "http_filters": router}}]}]},
                {"@type": LISTENER, "name": "grpc-target", "api_listener": {"api_listener":
                    {"@type": HCM, "stat_prefix": "grpc", "rds": rds("grpc-routes"), "http_filters": router}}}],
            ROUTES: [{"@type": ROUTES, "name": "routes", "virtual_hosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]}],
            CLUSTER: [cluster("a"), cluster("t"), tls],
            SECRET: [{"@type": SECRET, "name": "client-cert", "tls_certificate": {
                "certificate_chain": {"filename": certs.join(format!("{cert}.pem"))},
                "private_key": {"filename": certs.join(format!("{cert}-key.pem"))}}}],
        }
    })
}

fn write_json(path: &Path, value: &serde_json::Value) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, value.to_string()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// One client of the TTL test and its own server.
struct TtlClient {
    name: &'static str,
    dir: PathBuf,
    listen: u16,
    admin: u16,
    server: AdsServer,
}

impl TtlClient {
    fn start(python: &Path, name: &'static str, root: &Path, backend: u16) -> TtlClient {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (listen, ads, admin) = (free_port(), free_port(), free_port());
        write_json(
            &dir.join("state.json"),
            &ttl_state(1, listen, backend, true, "app"),
        );
        let server = AdsServer::start(python, ads, &dir.join("state.json"));
        let api_type = if name.ends_with("sotw") {
            "GRPC"
        } else {
            "DELTA_GRPC"
        };
        let bootstrap = BOOTSTRAP
            .replace("{node}", name)
            .replace("{admin}", &admin.to_string())
            .replace("{api_type}", api_type)
            .replace("{ads}", &ads.to_string());
        std::fs::write(dir.join("bootstrap.yaml"), bootstrap).unwrap();
        TtlClient {
            name,
            dir,
            listen,
            admin,
            server,
        }
    }

    fn write(&self, version: u32, backend: u16, heartbeats: bool, cert: &str) {
        write_json(
            &self.dir.join("state.json"),
            &ttl_state(version, self.listen, backend, heartbeats, cert),
        );
    }

    async fn has_cluster(&self, cluster: &str) -> bool {
        let prefix = format!("{cluster}::");
        admin_text(self.admin, "/clusters")
            .await
            .lines()
            .any(|l| l.starts_with(&prefix))
    }

    /// `/stats/prometheus` as series -> value, each series as `name{labels}` with the labels sorted, `{}` left
    /// out, and a counter's `_total` dropped (Outrigger's counters end in `_total` as OpenMetrics asks; Envoy
    /// 1.40's do not): what must agree is the name and the labels.
    async fn prometheus(&self) -> std::collections::BTreeMap<String, String> {
        admin_text(self.admin, "/stats/prometheus")
            .await
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(series, value)| {
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let mut labels: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .collect();
                labels.sort_unstable();
                let name = name.strip_suffix("_total").unwrap_or(name);
                let series = if labels.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}{{{}}}", labels.join(","))
                };
                (series, value.to_string())
            })
            .collect()
    }

    /// `/stats` as name -> value.
    async fn stats(&self) -> std::collections::BTreeMap<String, String> {
        admin_text(self.admin, "/stats")
            .await
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// These statistics must have the same names and values in Envoy and Outrigger after the same pushes.
const SAME_STATS: [&str; 24] = [
    "control_plane.connected_state",
    "control_plane.pending_requests",
    "control_plane.rate_limit_enforced",
    "listener_manager.lds.update_attempt",
    "listener_manager.lds.update_success",
    "listener_manager.lds.update_rejected",
    "listener_manager.lds.version",
    "listener_manager.total_listeners_active",
    "listener_manager.total_listeners_warming",
    "listener_manager.total_listeners_draining",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "cluster_manager.active_clusters",
    "cluster_manager.warming_clusters",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "cluster_manager.cds.update_rejected",
    "http.ingress.rds.routes.update_rejected",
    "sds.client-cert.update_attempt",
    "sds.client-cert.update_success",
    "sds.client-cert.update_rejected",
    "sds.client-cert.version",
];

async fn assert_same_stats(envoy: &TtlClient, outrigger: &TtlClient, extra: &[&str]) {
    let (theirs, ours) = (envoy.stats().await, outrigger.stats().await);
    let differ: Vec<String> = SAME_STATS
        .iter()
        .chain(extra)
        .filter(|name| !theirs.contains_key(**name) || theirs.get(**name) != ours.get(**name))
        .map(|name| {
            format!(
                "{name}: Envoy {:?}, Outrigger {:?}",
                theirs.get(*name),
                ours.get(*name)
            )
        })
        .collect();
    // The same statistics in Prometheus form: Envoy's series (by name and labels) are ours, with its values.
    let (theirs, ours) = (envoy.prometheus().await, outrigger.prometheus().await);
    let wanted: Vec<String> = SAME_STATS
        .iter()
        .chain(extra)
        .map(|stat| {
            let parts: Vec<&str> = stat.split('.').collect();
            match parts.as_slice() {
                ["http", _, "rds", _, rest] => format!("envoy_http_rds_{rest}"),
                ["sds", _, rest] => format!("envoy_sds_{rest}"),
                _ => format!("envoy_{}", stat.replace('.', "_")),
            }
        })
        .collect();
    let mut compared = 0;
    let mut differ_prometheus = Vec::new();
    for (series, value) in &theirs {
        let name = series.split('{').next().unwrap_or_default();
        if !wanted.iter().any(|w| w == name) {
            continue;
        }
        compared += 1;
        if ours.get(series) != Some(value) {
            differ_prometheus.push(format!(
                "{series}: Envoy {value}, Outrigger {:?}",
                ours.get(series)
            ));
        }
    }
    assert!(
        differ_prometheus.is_empty() && compared >= SAME_STATS.len() - 3,
        "Prometheus series differ ({compared} compared):\n{}",
        differ_prometheus.join("\n")
    );
    let listeners = |c: &TtlClient| -> Vec<serde_json::Value> {
        let events = c.server.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["type"] == "Listener")
            .cloned()
            .collect()
    };
    assert!(
        differ.is_empty(),
        "statistics differ:\n{}\nthe servers' LDS lines:\n{:#?}\n{:#?}",
        differ.join("\n"),
        listeners(envoy),
        listeners(outrigger)
    );
}

/// Resources with a TTL, an API listener among the listeners of an LDS response, and the xDS and manager
/// statistics, in Outrigger and in real Envoy 1.40 (delta: Envoy 1.40's state-of-the-world client crashes
/// when a TTL passes, so over SotW only Outrigger runs, to the same expectations).
/// - Cluster `t` and route configuration `routes` have a 3 s TTL, refreshed by heartbeats every second: after
///   4.5 s both are still there. Heartbeats stop: `t` is removed as if the server had removed it; `routes`
///   stays and keeps routing (Envoy ignores the removal of a route configuration).
/// - The API listener `grpc-target` is ACKed and left out, with a warning naming it; `ingress` serves.
/// - `SAME_STATS` (and after the expiry the RDS statistics) have the same names and values in both, also
///   after a rotated secret (version 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_resources_api_listeners_and_xds_statistics_as_in_envoy() {
    let (Some(python), Some(envoy_bin)) = (python_with_xds_protos(), peer("envoy")) else {
        return;
    };
    let root = std::env::temp_dir().join(format!("outrigger-xds-ttl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let backend = Backend::start("backend-a").await;
    let port = backend.address.port();
    let envoy = TtlClient::start(&python, "envoy-delta", &root, port);
    let delta = TtlClient::start(&python, "outrigger-delta", &root, port);
    let sotw = TtlClient::start(&python, "outrigger-sotw", &root, port);
    let mut envoy_process =
        support::envoy::Envoy::start(&envoy_bin, &envoy.dir.join("bootstrap.yaml"));
    let mut guards = Vec::new();
    for client in [&delta, &sotw] {
        guards.push(ChildGuard(
            support::outrigger()
                .args(["run", "-c"])
                .arg(client.dir.join("bootstrap.yaml"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(client.dir.join("outrigger.log")).unwrap())
                .spawn()
                .unwrap(),
        ));
    }
    envoy_process.wait_for_port(envoy.listen);
    let clients = [&envoy, &delta, &sotw];
    for client in clients {
        support::tcp::wait_until_listening(client.listen, client.name).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(client.has_cluster("t").await && client.has_cluster("tls").await) {
            assert!(
                Instant::now() < deadline,
                "{}: clusters t and tls never arrived",
                client.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The LDS response with the API listener is ACKed, never NACKed.
        client.server.wait_for(
            |e| e["event"] == "ack" && e["type"] == "Listener" && e["version"] == "1",
            &format!("{}: ACK of the listeners", client.name),
        );
        assert!(
            client.server.find(|e| e["event"] == "nack").is_none(),
            "{}: {:#?}",
            client.name,
            client.server.events.lock().unwrap()
        );
    }
    for client in [&delta, &sotw] {
        let log = std::fs::read_to_string(client.dir.join("outrigger.log")).unwrap();
        assert!(
            log.contains("listener \"grpc-target\" has an api_listener and is not added"),
            "{}: {log}",
            client.name
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = try_get(&format!("http://127.0.0.1:{}/ready", client.admin), &[])
                .await
                .unwrap();
            if ready.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {}\n{log}",
                client.name,
                ready.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Heartbeats keep `t` (TTL 3 s) for 4.5 s.
    let until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < until {
        for client in clients {
            assert!(
                client.has_cluster("t").await,
                "{}: t expired despite heartbeats",
                client.name
            );
            assert_eq!(
                probe(client.listen).await.map(|p| p.0),
                Ok(200),
                "{}",
                client.name
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for client in clients {
        client.server.wait_for(
            |e| e["event"] == "heartbeat" && e["type"] == "Cluster",
            &format!("{}: heartbeats", client.name),
        );
    }
    assert_same_stats(&envoy, &delta, &[]).await;

    // No more heartbeats: `t` goes within its TTL (plus the poll); `routes` stays and routes.
    for client in clients {
        client.write(2, port, false, "app");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for client in clients {
        while client.has_cluster("t").await {
            assert!(
                Instant::now() < deadline,
                "{}: t never expired",
                client.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            client.has_cluster("a").await && client.has_cluster("tls").await,
            "{}",
            client.name
        );
    }
    // The route configuration's TTL passed too (same 3 s, the same heartbeats).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in clients {
        assert_eq!(
            probe(client.listen).await.map(|p| p.0),
            Ok(200),
            "{}: routes",
            client.name
        );
    }
    assert_same_stats(
        &envoy,
        &delta,
        &[
            "http.ingress.rds.routes.update_attempt",
            "http.ingress.rds.routes.update_success",
            "http.ingress.rds.routes.version",
            // The expiry was the last CDS update: version "" in both.
            "cluster_manager.cds.version",
        ],
    )
    .await;

    // A rotated secret (version 3): counted on `sds.client-cert.*` alike.
    for client in clients {
        client.write(3, port, false, "app-rsa");
    }
    for client in clients {
        client.server.wait_for(
            |e| e["event"] == "ack" && e["type"] == "Secret" && e["version"] == "3",
            &format!("{}: ACK of the rotated secret", client.name),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_same_stats(&envoy, &delta, &[]).await;
    let ours = delta.stats().await;
    assert_eq!(
        ours.get("sds.client-cert.update_success")
            .map(String::as_str),
        Some("2")
    );
    let sotw_stats = sotw.stats().await;
    assert_eq!(
        sotw_stats
            .get("sds.client-cert.update_success")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        sotw_stats
            .get("cluster_manager.cluster_removed")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        sotw_stats
            .get("cluster_manager.active_clusters")
            .map(String::as_str),
        Some("3")
    );
    drop(guards);
    drop(envoy_process);
    let _ = std::fs::remove_dir_all(&root);
}

/// Who follows the ADS server in the warming test.
enum Follower {
    Outrigger,
    Envoy(PathBuf),
}

/// `/w` or `/` as the warming test compares it: the status, then the backend that answered (200) or the body.
async fn answer(port: u16, path: &str) -> String {
    match try_get(&format!("http://127.0.0.1:{port}{path}"), &[]).await {
        Ok(r) if r.status == 200 => format!("200 {}", r.header("x-backend").unwrap_or_default()),
        Ok(r) => format!("{} {:?}", r.status, r.body),
        Err(e) => format!("error {e}"),
    }
}

/// `cluster_manager.warming_clusters` and `listener_manager.total_listeners_warming` from `/stats`.
async fn warming_stats(admin: u16) -> String {
    let stats = admin_text(admin, "/stats").await;
    let value = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or("absent")
            .to_string()
    };
    format!(
        "warming_clusters {} listeners_warming {}",
        value("cluster_manager.warming_clusters"),
        value("listener_manager.total_listeners_warming")
    )
}

/// Runs the warming fixtures (`tests/peers/ads/warming-*.json`, each dependency's initial_fetch_timeout 2 s)
/// through one follower and writes down what a client sees at each step.
async fn warming_sequence(python: &Path, follower: &Follower) -> Vec<String> {
    let name = match follower {
        Follower::Outrigger => "outrigger",
        Follower::Envoy(_) => "envoy",
    };
    let dir = std::env::temp_dir().join(format!(
        "outrigger-xds-warming-{}-{name}",
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
    let config = dir.join("bootstrap.yaml");
    std::fs::write(
        &config,
        BOOTSTRAP
            .replace("{node}", name)
            .replace("{admin}", &admin.to_string())
            .replace("{api_type}", "GRPC")
            .replace("{ads}", &ads_port.to_string()),
    )
    .unwrap();
    let log = dir.join("follower.log");
    // Version 2 first: cluster `w` never gets endpoints, so the initial warming lasts its 2 s timeout.
    fixture.write_state("warming-2.json", 2);
    let server = AdsServer::start(python, ads_port, &fixture.state());
    let _follower: Box<dyn std::any::Any> = match follower {
        Follower::Outrigger => Box::new(ChildGuard(
            support::outrigger()
                .args(["run", "-c"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        )),
        Follower::Envoy(envoy) => Box::new(support::envoy::Envoy::start(envoy, &config)),
    };
    let mut seen = Vec::new();
    let sent = |kind: &str, version: u32| {
        let version = version.to_string();
        server.wait_for(
            |e| e["event"] == "response" && e["type"] == kind && e["version"] == version,
            &format!("{kind} version {version} sent"),
        );
        Instant::now()
    };
    let ready = || async {
        try_get(&format!("http://127.0.0.1:{admin}/ready"), &[])
            .await
            .map(|r| r.status)
            .unwrap_or(0)
    };
    // Envoy holds the CDS ACK back while a cluster warms (once the initial clusters are in place), so a control
    // plane can wait for it before sending routes that use the cluster.
    let cds_acked = |version: u32| {
        let version = version.to_string();
        let acked = server
            .find(|e| e["event"] == "ack" && e["type"] == "Cluster" && e["version"] == version)
            .is_some();
        format!("  CDS {version} ACKed: {acked}")
    };
    let at = |since: Instant, after: Duration| tokio::time::sleep_until((since + after).into());
    let during = Duration::from_millis(600);
    let after = Duration::from_millis(2700);

    let since = sent("Cluster", 2);
    at(since, during).await;
    seen.push(format!("initial, w warming: ready {}", ready().await));
    seen.push(cds_acked(2));
    // No listener serves before the initial configuration is in place (Envoy starts its workers then). Envoy
    // refuses the connection (its socket is bound but not yet listening); Outrigger's listens and leaves it in
    // the backlog until then (README, known gaps): both are "not served".
    let early = tokio::time::timeout(Duration::from_millis(400), answer(fixture.listen, "/")).await;
    seen.push(match early {
        Ok(answer) if !answer.starts_with("error") => format!("  / {answer}"),
        _ => "  / not served".to_string(),
    });
    at(since, after).await;
    seen.push(format!("initial, w timed out: ready {}", ready().await));
    seen.push(format!("  /w {}", answer(fixture.listen, "/w").await));

    // Version 1 drops `w`; version 3 brings it back without endpoints: not in force while it warms (NC).
    fixture.write_state("warming-1.json", 1);
    sent("Cluster", 1);
    wait_until_answer(fixture.listen, "/w", "503 \"\"", &log).await;
    fixture.write_state("warming-2.json", 3);
    let since = sent("Cluster", 3);
    at(since, during).await;
    seen.push(format!(
        "new cluster warming: /w {}",
        answer(fixture.listen, "/w").await
    ));
    seen.push(format!("  / {}", answer(fixture.listen, "/").await));
    seen.push(format!("  {}", warming_stats(admin).await));
    seen.push(cds_acked(3));
    if let Follower::Outrigger = follower {
        // `/config_dump` lists the warming cluster apart, with the version that warms.
        let dump: serde_json::Value =
            serde_json::from_str(&admin_text(admin, "/config_dump").await).unwrap();
        let state = &dump["dynamic_resources_state"];
        assert_eq!(
            state["warming_clusters"],
            serde_json::json!({"w": "3"}),
            "{dump:#}"
        );
        assert_eq!(
            state["warming_listeners"],
            serde_json::json!({}),
            "{dump:#}"
        );
    }
    at(since, after).await;
    seen.push(format!(
        "new cluster timed out: /w {}",
        answer(fixture.listen, "/w").await
    ));
    seen.push(format!("  {}", warming_stats(admin).await));
    seen.push(cds_acked(3));

    // Its endpoints arrive.
    fixture.write_state("warming-3.json", 4);
    wait_until_answer(fixture.listen, "/w", "200 backend-b", &log).await;

    // The listener changes to routes that are not sent: the version before serves while it warms.
    fixture.write_state("warming-4.json", 5);
    let since = sent("Listener", 5);
    at(since, during).await;
    seen.push(format!(
        "changed listener warming: / {}",
        answer(fixture.listen, "/").await
    ));
    seen.push(format!("  {}", warming_stats(admin).await));
    at(since, after).await;
    seen.push(format!(
        "changed listener timed out: / {}",
        answer(fixture.listen, "/").await
    ));
    seen.push(format!("  {}", warming_stats(admin).await));
    fixture.write_state("warming-5.json", 6);
    wait_until_answer(fixture.listen, "/", "200 backend-a", &log).await;

    // Cluster `a` changes to an EDS service that is not sent: the version before serves while it warms.
    fixture.write_state("warming-6.json", 7);
    let since = sent("Cluster", 7);
    at(since, during).await;
    seen.push(format!(
        "changed cluster warming: / {}",
        answer(fixture.listen, "/").await
    ));
    seen.push(format!("  {}", warming_stats(admin).await));
    seen.push(cds_acked(7));
    at(since, after).await;
    seen.push(format!(
        "changed cluster timed out: / {}",
        answer(fixture.listen, "/").await
    ));
    seen.push(cds_acked(7));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{name}: {seen:#?}");
    seen
}

async fn wait_until_answer(port: u16, path: &str, wanted: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = answer(port, path).await;
        if seen == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {wanted} not seen; last {seen}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Warming, compared with real Envoy 1.40 given the same ADS responses: a new cluster is not in force before
/// its endpoints (503 NC) and after its initial_fetch_timeout has none (503 UH); a changed listener or cluster
/// keeps its version before in force while the new one warms, and after the timeout goes without its routes
/// (404 NR) or endpoints; `/ready` waits for the initial warming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_matches_envoy() {
    let Some(python) = python_with_xds_protos() else {
        return;
    };
    let outrigger = warming_sequence(&python, &Follower::Outrigger).await;
    let expected = [
        "initial, w warming: ready 503",
        "  CDS 2 ACKed: true",
        "  / not served",
        "initial, w timed out: ready 200",
        "  /w 503 \"no healthy upstream\"",
        "new cluster warming: /w 503 \"\"",
        "  / 200 backend-a",
        "  warming_clusters 1 listeners_warming 0",
        "  CDS 3 ACKed: false",
        "new cluster timed out: /w 503 \"no healthy upstream\"",
        "  warming_clusters 0 listeners_warming 0",
        "  CDS 3 ACKed: true",
        "changed listener warming: / 200 backend-a",
        "  warming_clusters 0 listeners_warming 1",
        "changed listener timed out: / 404 \"\"",
        "  warming_clusters 0 listeners_warming 0",
        "changed cluster warming: / 200 backend-a",
        "  warming_clusters 1 listeners_warming 0",
        "  CDS 7 ACKed: false",
        "changed cluster timed out: / 503 \"no healthy upstream\"",
        "  CDS 7 ACKed: true",
    ];
    assert_eq!(outrigger, expected, "Outrigger");
    let Some(envoy) = peer("envoy") else {
        return;
    };
    let envoy = warming_sequence(&python, &Follower::Envoy(envoy)).await;
    assert_eq!(envoy, outrigger, "Envoy 1.40 and Outrigger differ");
}
