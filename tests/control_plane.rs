//! `outrigger control-plane` with real Envoy 1.40 as its xDS client, state-of-the-world and delta: Envoy routes
//! through the listener, route configuration, cluster and endpoints the folder holds; an edited file reaches
//! Envoy; a file that fails Outrigger's checks is refused with its path and never sent (Envoy keeps serving the
//! last good version and rejects nothing); a node's own folder overrides a shared resource; a removed cluster is
//! removed from the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::try_get;
use support::control_plane::ControlPlane;
use support::envoy::Envoy;
use support::tcp::free_port;
use support::{ChildGuard, peer, proxy::fill};

/// The folder's shared resources: a listener whose routes come by RDS, the routes (a direct response naming
/// the version, and everything else to `app`), the EDS cluster `app` and its endpoints.
const MESH: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: web
  address: {socket_address: {address: 127.0.0.1, port_value: {listen}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: web
        rds: {route_config_name: web-routes, config_source: {ads: {}, resource_api_version: V3}}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: web-routes
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: /version}
      direct_response: {status: 200, body: {inline_string: "{version}"}}
    - match: {prefix: /}
      route: {cluster: app}
"#;

const APP: &str = r#"resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: app
  type: EDS
  connect_timeout: 1s
  eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
  {extra}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: app
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {app}}}}}]}]
"#;

/// An Envoy bootstrap that takes everything from the control plane over ADS.
const BOOTSTRAP: &str = r#"node: {id: {node}, cluster: tests}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
dynamic_resources:
  ads_config:
    api_type: {api_type}
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
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {xds}}}}}]}]
"#;

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GETs `path` until the answer satisfies `wanted` (at most 10 s); returns the last answer as "status body".
async fn eventually(port: u16, path: &str, wanted: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let seen = match try_get(&format!("http://127.0.0.1:{port}{path}"), &[]).await {
            Ok(reply) => format!("{} {}", reply.status, reply.body),
            Err(e) => format!("error {e}"),
        };
        if wanted(&seen) || started.elapsed() > Duration::from_secs(10) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Envoy's counter `name` from its admin `/stats` (0 when absent).
async fn envoy_stat(admin: u16, name: &str) -> u64 {
    let Ok(reply) = try_get(
        &format!("http://127.0.0.1:{admin}/stats?filter=^{name}$"),
        &[],
    )
    .await
    else {
        return 0;
    };
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One Envoy on the control plane, with its listener port and admin port.
struct Client {
    _envoy: Envoy,
    listen: u16,
    admin: u16,
}

fn start_envoy(
    envoy: &Path,
    dir: &Path,
    node: &str,
    api_type: &str,
    xds: u16,
    listen: u16,
) -> Client {
    let admin = free_port();
    let config = dir.join(format!("envoy-{node}.yaml"));
    let bootstrap = fill(
        BOOTSTRAP,
        &[
            ("node", node.to_string()),
            ("admin", admin.to_string()),
            ("api_type", api_type.to_string()),
            ("xds", xds.to_string()),
        ],
    );
    std::fs::write(&config, bootstrap).unwrap();
    let mut process = Envoy::start(envoy, &config);
    process.wait_for_port(admin);
    Client {
        _envoy: process,
        listen,
        admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_takes_its_configuration_from_the_control_plane() {
    let Some(envoy) = peer("envoy") else {
        return;
    };
    let root = std::env::temp_dir().join(format!("outrigger-control-plane-{}", std::process::id()));
    let dir = root.join("resources");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(dir.join("delta-node")).unwrap();
    let app = Backend::start("app").await;
    // The shared listener is the SotW client's; the delta client's node folder replaces the listener (another
    // port) and the routes (another body) with resources of the same names.
    let sotw_port = free_port();
    let delta_port = free_port();
    let mesh = |version: &str, port: u16| {
        fill(
            MESH,
            &[
                ("listen", port.to_string()),
                ("version", version.to_string()),
            ],
        )
    };
    let cluster = |extra: &str| {
        fill(
            APP,
            &[
                ("app", app.address.port().to_string()),
                ("extra", extra.to_string()),
            ],
        )
    };
    std::fs::write(dir.join("mesh.yaml"), mesh("one", sotw_port)).unwrap();
    std::fs::write(dir.join("app.yaml"), cluster("")).unwrap();
    // The delta client's own listener and routes (same names: they replace the shared ones for that node).
    std::fs::write(
        dir.join("delta-node/mesh.yaml"),
        mesh("delta one", delta_port),
    )
    .unwrap();
    let control_plane = ControlPlane::start(&dir);
    let sotw = start_envoy(
        &envoy,
        &root,
        "sotw-node",
        "GRPC",
        control_plane.port,
        sotw_port,
    );
    let delta = start_envoy(
        &envoy,
        &root,
        "delta-node",
        "DELTA_GRPC",
        control_plane.port,
        delta_port,
    );
    let log = || control_plane.log_text();

    // Everything delivered: the direct response and the EDS cluster to the backend.
    for (client, version) in [(&sotw, "one"), (&delta, "delta one")] {
        let seen = eventually(client.listen, "/version", |s| s == format!("200 {version}")).await;
        assert_eq!(seen, format!("200 {version}"), "{}", log());
        let seen = eventually(client.listen, "/app", |s| s.starts_with("200")).await;
        assert!(
            seen.starts_with("200") && seen.contains("\"backend\":\"app\""),
            "{seen}\n{}",
            log()
        );
    }

    // An edit reaches the clients within a second or so.
    std::fs::write(dir.join("mesh.yaml"), mesh("two", sotw_port)).unwrap();
    std::fs::write(
        dir.join("delta-node/mesh.yaml"),
        mesh("delta two", delta_port),
    )
    .unwrap();
    for (client, version) in [(&sotw, "two"), (&delta, "delta two")] {
        let seen = eventually(client.listen, "/version", |s| s == format!("200 {version}")).await;
        assert_eq!(seen, format!("200 {version}"), "{}", log());
    }

    // A cluster Outrigger refuses (a ring hashed with MURMUR_HASH_2) is reported with its file and field and
    // not sent: both Envoys keep the last good cluster and have rejected nothing.
    std::fs::write(
        dir.join("app.yaml"),
        cluster("lb_policy: RING_HASH\n  ring_hash_lb_config: {hash_function: MURMUR_HASH_2}"),
    )
    .unwrap();
    let app_file = dir.join("app.yaml").display().to_string();
    wait_for(
        || {
            log().contains(&format!(
                "{app_file}: error: resources[0] Cluster \"app\".ring_hash_lb_config.hash_function: MURMUR_HASH_2"
            ))
        },
        "the control plane reports the refused file",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in [&sotw, &delta] {
        let seen = eventually(client.listen, "/app", |s| s.starts_with("200")).await;
        assert!(seen.starts_with("200"), "{seen}");
        assert_eq!(
            envoy_stat(client.admin, "cluster_manager.cds.update_rejected").await,
            0
        );
        assert!(envoy_stat(client.admin, "cluster_manager.cds.update_success").await >= 1);
    }

    // The cluster removed: the clients drop it (503, no cluster), the routes stay.
    std::fs::remove_file(dir.join("app.yaml")).unwrap();
    for client in [&sotw, &delta] {
        let seen = eventually(client.listen, "/app", |s| s.starts_with("503")).await;
        assert!(seen.starts_with("503"), "{seen}\n{}", log());
        let seen = eventually(client.listen, "/version", |s| s.starts_with("200")).await;
        assert!(seen.starts_with("200"), "{seen}");
    }
    assert!(!log().contains("NACK"), "{}", log());
    drop((sotw, delta, control_plane));
    let _ = std::fs::remove_dir_all(&root);
}

/// README's recipe (`deploy/local/`): `outrigger control-plane` over the example folder and `outrigger run` on the
/// example ADS bootstrap, ports moved to free ones. Outrigger serves the delivered listener, routes and EDS
/// cluster, follows an edit over SotW and over delta, and refuses nothing our own control plane sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outrigger_runs_the_readme_example_from_the_control_plane() {
    let root = std::env::temp_dir().join(format!("outrigger-local-example-{}", std::process::id()));
    let dir = root.join("control-plane");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap();
    let app = Backend::start("app").await;
    let repo = support::repo_root().join("deploy/local");
    let listen = free_port();
    let example = std::fs::read_to_string(repo.join("control-plane/web.yaml"))
        .unwrap()
        .replace("port_value: 10000", &format!("port_value: {listen}"))
        .replace(
            "port_value: 8080",
            &format!("port_value: {}", app.address.port()),
        );
    std::fs::write(dir.join("web.yaml"), &example).unwrap();
    let control_plane = ControlPlane::start(&dir);
    let bootstrap = std::fs::read_to_string(repo.join("sidecar-ads.yaml")).unwrap();
    let mut sidecars = Vec::new();
    for api_type in ["GRPC", "DELTA_GRPC"] {
        let admin = free_port();
        let config = root.join(format!("sidecar-{api_type}.yaml"));
        let text = bootstrap
            .replace("port_value: 15000", &format!("port_value: {admin}"))
            .replace(
                "port_value: 15010",
                &format!("port_value: {}", control_plane.port),
            )
            .replace("api_type: GRPC ", &format!("api_type: {api_type} "))
            .replace("id: local-sidecar", &format!("id: sidecar-{api_type}"));
        std::fs::write(&config, text).unwrap();
        let log = root.join(format!("sidecar-{api_type}.log"));
        let child = support::outrigger()
            .args(["run", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        sidecars.push((ChildGuard(child), admin, log));
        // Both sidecars receive the same listener address: one at a time.
        let seen = eventually(listen, "/hello", |s| s.starts_with("200")).await;
        assert_eq!(
            seen,
            "200 hello from the control plane\n",
            "{api_type}: {}",
            std::fs::read_to_string(&sidecars.last().unwrap().2).unwrap_or_default()
        );
        let seen = eventually(listen, "/anything", |s| s.starts_with("200")).await;
        assert!(seen.contains("\"backend\":\"app\""), "{seen}");
        // Ready once the initial fetch is complete (just after the first request works).
        let ready = eventually(admin, "/ready", |s| s.starts_with("200")).await;
        assert_eq!(ready, "200 LIVE\n");

        // An edit reaches the sidecar.
        let edited = example.replace(
            "hello from the control plane",
            &format!("hello over {api_type}"),
        );
        std::fs::write(dir.join("web.yaml"), &edited).unwrap();
        let seen = eventually(listen, "/hello", |s| s.contains(api_type)).await;
        assert_eq!(seen, format!("200 hello over {api_type}\n"));
        std::fs::write(dir.join("web.yaml"), &example).unwrap();
        let seen = eventually(listen, "/hello", |s| s.contains("from the control plane")).await;
        assert_eq!(seen, "200 hello from the control plane\n");
        let sidecar_log = std::fs::read_to_string(&sidecars.last().unwrap().2).unwrap_or_default();
        assert!(!sidecar_log.contains("NACK"), "{sidecar_log}");
        assert!(!sidecar_log.contains("not enforced"), "{sidecar_log}");
        // Stop this one before the next binds the same listener address.
        sidecars.pop();
    }
    assert!(
        !control_plane.log_text().contains("NACK"),
        "{}",
        control_plane.log_text()
    );
    drop(control_plane);
    let _ = std::fs::remove_dir_all(&root);
}

/// `outrigger control-plane --tls-cert --tls-key --client-ca`: real Envoy 1.40 and Outrigger both take their
/// configuration over mutual TLS (each checks the server's SPIFFE ID; the server requires their
/// certificates), and serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_outrigger_take_the_control_plane_over_mtls() {
    let Some(envoy) = peer("envoy") else {
        return;
    };
    let pki = support::pki::Pki::new("control-plane-mtls");
    let server_id = support::pki::spiffe("control-plane");
    let server = pki.issue("server", &server_id);
    let client = pki.issue("client", &support::pki::spiffe("sidecar"));
    let ca = pki.dir.join("ca/ca.pem");
    let dir = pki.dir.join("resources");
    let app = Backend::start("app").await;
    let (envoy_port, outrigger_port) = (free_port(), free_port());
    for (node, port) in [
        ("envoy-mtls", envoy_port),
        ("outrigger-mtls", outrigger_port),
    ] {
        std::fs::create_dir_all(dir.join(node)).unwrap();
        std::fs::write(
            dir.join(node).join("mesh.yaml"),
            fill(
                MESH,
                &[
                    ("listen", port.to_string()),
                    ("version", format!("{node} one")),
                ],
            ),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("app.yaml"),
        fill(
            APP,
            &[
                ("app", app.address.port().to_string()),
                ("extra", String::new()),
            ],
        ),
    )
    .unwrap();
    let control_plane = ControlPlane::start_with(
        &dir,
        &[
            "--tls-cert".as_ref(),
            server.join("cert.pem").as_os_str(),
            "--tls-key".as_ref(),
            server.join("key.pem").as_os_str(),
            "--client-ca".as_ref(),
            ca.as_os_str(),
        ],
    );
    let bootstrap = |node: &str, admin: u16| {
        fill(
            BOOTSTRAP,
            &[
                ("node", node.to_string()),
                ("admin", admin.to_string()),
                ("api_type", "GRPC".to_string()),
                ("xds", control_plane.port.to_string()),
            ],
        ) + &format!(
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificates: [{{certificate_chain: {{filename: "{cert}"}}, private_key: {{filename: "{key}"}}}}]
          validation_context:
            trusted_ca: {{filename: "{ca}"}}
            match_typed_subject_alt_names: [{{san_type: URI, matcher: {{exact: "{server_id}"}}}}]
"#,
            cert = client.join("cert.pem").display(),
            key = client.join("key.pem").display(),
            ca = ca.display(),
        )
    };

    let envoy_admin = free_port();
    let envoy_config = pki.dir.join("envoy-mtls.yaml");
    std::fs::write(&envoy_config, bootstrap("envoy-mtls", envoy_admin)).unwrap();
    let mut envoy_process = Envoy::start(&envoy, &envoy_config);
    envoy_process.wait_for_port(envoy_admin);
    let seen = eventually(envoy_port, "/version", |s| s == "200 envoy-mtls one").await;
    assert_eq!(
        seen,
        "200 envoy-mtls one",
        "Envoy over mTLS\n{}",
        control_plane.log_text()
    );
    let seen = eventually(envoy_port, "/", |s| s.starts_with("200")).await;
    assert!(seen.starts_with("200"), "{seen}");

    let outrigger_admin = free_port();
    let outrigger_config = pki.dir.join("outrigger-mtls.yaml");
    std::fs::write(
        &outrigger_config,
        bootstrap("outrigger-mtls", outrigger_admin),
    )
    .unwrap();
    let log = pki.dir.join("outrigger-mtls.log");
    let _outrigger = ChildGuard(
        support::outrigger()
            .args(["run", "--concurrency", "1", "-c"])
            .arg(&outrigger_config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let seen = eventually(outrigger_port, "/version", |s| {
        s == "200 outrigger-mtls one"
    })
    .await;
    assert_eq!(
        seen,
        "200 outrigger-mtls one",
        "Outrigger over mTLS\n{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        control_plane.log_text()
    );
    let ready = eventually(outrigger_admin, "/ready", |s| s.starts_with("200")).await;
    assert!(ready.starts_with("200"), "{ready}");
}
