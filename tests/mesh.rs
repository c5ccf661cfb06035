//! Two "pods" as network namespaces joined by a veth pair (198.18.0.1 and 198.18.0.2), each with plain apps,
//! an `outrigger run` sidecar (as UID 1337) and the rules of the real `outrigger iptables install`. The apps are
//! not told about the sidecars: the kernel redirects their traffic. Between the sidecars every connection is
//! mutual TLS with SPIFFE identities (tests/configs/mesh/sidecar-mtls.yaml, certificates from `outrigger ca`);
//! each pod's inbound side is STRICT and lets only the other pod's identity in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::netns::{Namespace, can_run};
use support::pki::{Pki, spiffe};

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.2";

/// Pod B's app that speaks h2c as well as HTTP/1.1 (Python's http.server only does HTTP/1.1): an Outrigger
/// listener with a direct response, standing in for any h2c-capable server.
const H2C_APP: &str = r#"
static_resources:
  listeners:
  - name: app
    address: {socket_address: {address: 0.0.0.0, port_value: 8081}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: app
          route_config: {virtual_hosts: [{name: app, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "pod-b h2c app\n"}}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
"#;

struct Mesh {
    a: Namespace,
    b: Namespace,
    binary: String,
    apps: String,
    grpc: String,
    h2c_config: std::path::PathBuf,
    /// Certificates and the sidecars' configs (removed when dropped).
    pki: Pki,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.h2c_config);
    }
}

/// Pod A's sidecar is `sa/pod-a`, pod B's `sa/pod-b`; each one's config names the other.
fn sidecar_config(pki: &Pki, a: bool) -> std::path::PathBuf {
    let (me, peer) = if a {
        ("pod-a", "pod-b")
    } else {
        ("pod-b", "pod-a")
    };
    let identity = pki.issue(me, &spiffe(me));
    // The sidecar runs as UID 1337; its key is private to it.
    support::netns::run(&["chown", "-R", "1337:1337", identity.to_str().unwrap()]);
    let template =
        std::fs::read_to_string(support::repo_root().join("tests/configs/mesh/sidecar-mtls.yaml"))
            .unwrap();
    let config = support::proxy::fill(
        &template,
        &[
            ("identity", identity.display().to_string()),
            ("mesh_net", "198.18.0.0".to_string()),
            ("mesh_len", "24".to_string()),
            ("peer_id", spiffe(peer)),
            ("allowed_id", spiffe(peer)),
        ],
    );
    let path = pki.dir.join(format!("{me}.yaml"));
    std::fs::write(&path, config).unwrap();
    path
}

impl Mesh {
    fn start() -> Mesh {
        let id = std::process::id();
        let a = Namespace::create(format!("mesh-a-{id}"));
        let b = Namespace::create(format!("mesh-b-{id}"));
        let (veth_a, veth_b) = (format!("va{id}"), format!("vb{id}"));
        a.exec(&[
            "ip", "link", "add", &veth_a, "type", "veth", "peer", "name", &veth_b, "netns", &b.name,
        ]);
        a.exec(&["ip", "addr", "add", &format!("{A}/24"), "dev", &veth_a]);
        a.exec(&["ip", "link", "set", &veth_a, "up"]);
        b.exec(&["ip", "addr", "add", &format!("{B}/24"), "dev", &veth_b]);
        b.exec(&["ip", "link", "set", &veth_b, "up"]);
        let root = support::repo_root();
        let mut mesh = Mesh {
            a,
            b,
            binary: env!("CARGO_BIN_EXE_outrigger").to_string(),
            apps: root.join("tests/peers/pod_apps.py").display().to_string(),
            grpc: root.join("tests/peers/grpc_peer.py").display().to_string(),
            h2c_config: std::env::temp_dir().join(format!("outrigger-mesh-h2c-{id}.yaml")),
            pki: Pki::new("mesh"),
        };
        for a in [true, false] {
            sidecar_config(&mesh.pki, a);
        }
        // Pod B's apps: HTTP, TCP echo, a server-speaks-first protocol on MySQL's port, gRPC.
        let apps = mesh.apps.clone();
        mesh.b.spawn(&["python3", &apps, "http", "8080"]);
        mesh.b.spawn(&["python3", &apps, "echo", "7000"]);
        mesh.b.spawn(&["python3", &apps, "greet", "3306"]);
        mesh.b.spawn(&["python3", &apps, "http", "9999"]);
        let grpc = mesh.grpc.clone();
        mesh.b.spawn(&["python3", &grpc, "serve", "0.0.0.0:9000"]);
        let h2c_config = mesh.h2c_config.clone();
        std::fs::write(&h2c_config, H2C_APP).unwrap();
        let binary = mesh.binary.clone();
        mesh.b
            .spawn(&[&binary, "run", "-c", h2c_config.to_str().unwrap()]);
        mesh.b.wait_for("http://127.0.0.1:8080/");
        mesh.start_sidecar(true);
        mesh.start_sidecar(false);
        for pod in [&mesh.a, &mesh.b] {
            // Port 9999 is excluded both ways: it must stay direct.
            pod.exec(&[
                &mesh.binary,
                "iptables",
                "install",
                "--exclude-outbound-ports",
                "9999",
                "--exclude-inbound-ports",
                "15090,15021,15020,9999",
            ]);
        }
        mesh
    }

    fn pod(&self, a: bool) -> &Namespace {
        if a { &self.a } else { &self.b }
    }

    fn start_sidecar(&mut self, a: bool) {
        let binary = self.binary.clone();
        let config = self
            .pki
            .dir
            .join(if a { "pod-a.yaml" } else { "pod-b.yaml" });
        let pod = if a { &mut self.a } else { &mut self.b };
        pod.spawn(&[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            &binary,
            "run",
            "-c",
            config.to_str().unwrap(),
        ]);
        pod.wait_for("http://127.0.0.1:15000/ready");
    }

    /// One Envoy-named statistic of a pod's sidecar, 0 when it does not exist yet.
    fn stat(&self, a: bool, name: &str) -> u64 {
        let stats = self.pod(a).exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:15000/stats",
        ]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }

    fn curl_from_a(&self, args: &[&str]) -> String {
        let mut all = vec!["curl", "-sS", "--max-time", "10"];
        all.extend_from_slice(args);
        self.a.exec(&all)
    }
}

const OUT_HTTP: &str = "http.outbound_http.downstream_rq_total";
const IN_HTTP: &str = "http.inbound_http.downstream_rq_total";
const OUT_TCP: &str = "tcp.outbound_mesh_tcp.downstream_cx_total";
const IN_TCP: &str = "tcp.inbound_mesh_tcp.downstream_cx_total";
/// mTLS handshakes B's inbound listener completed.
const IN_TLS: &str = "listener.0.0.0.0_15006.ssl_handshake";

#[test]
fn apps_talk_through_both_sidecars_without_knowing() {
    if !can_run() {
        return;
    }
    let mut mesh = Mesh::start();
    let url = format!("http://{B}:8080/hello");

    // HTTP/1.1 and h2c from the app in A; the sidecars in A (outbound) and B (inbound) both see them, and
    // carry them over mTLS: B's app learns A's SPIFFE ID.
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    let whoami = mesh.curl_from_a(&[&format!("http://{B}:8080/whoami")]);
    assert!(
        whoami.starts_with(&format!("By={};Hash=", spiffe("pod-b")))
            && whoami
                .trim_end()
                .ends_with(&format!("URI={}", spiffe("pod-a"))),
        "{whoami}"
    );
    assert!(mesh.stat(false, IN_TLS) >= 1, "B's sidecar terminated mTLS");
    let h2c_url = format!("http://{B}:8081/");
    let h2 = mesh.curl_from_a(&["--http2-prior-knowledge", "-w", "%{http_version}", &h2c_url]);
    assert_eq!(h2, "pod-b h2c app\n2");
    assert!(
        mesh.stat(true, OUT_HTTP) >= 2,
        "A's outbound sidecar saw the requests"
    );
    assert!(
        mesh.stat(false, IN_HTTP) >= 2,
        "B's inbound sidecar saw the requests"
    );

    // gRPC unary and server streaming, from a grpcio client in A.
    let http_before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    let grpc = mesh.grpc.clone();
    let summary = mesh
        .a
        .exec(&["python3", &grpc, "call", &format!("{B}:9000")]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["unary"], "SERVING");
    assert_eq!(summary["stream"].as_array().unwrap().len(), 3, "{summary}");
    let http_after = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert!(
        http_after.0 > http_before.0 && http_after.1 > http_before.1,
        "gRPC went through both sidecars"
    );

    // Opaque TCP, and a server-speaks-first protocol on a port the default config keeps opaque.
    let apps = mesh.apps.clone();
    let echoed = mesh
        .a
        .exec(&["python3", &apps, "say", B, "7000", "opaque bytes"]);
    assert_eq!(echoed, "opaque bytes");
    let started = Instant::now();
    let greeting = mesh.a.exec(&["python3", &apps, "ask", B, "3306"]);
    assert_eq!(greeting, "220 pod-b ready\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the server-first protocol waited for detection"
    );
    assert!(mesh.stat(true, OUT_TCP) >= 2 && mesh.stat(false, IN_TCP) >= 2);

    // STRICT: a plaintext connection to B's app that bypasses A's sidecar (UID 1337 is not redirected) is
    // refused by B's sidecar; B's inbound counts it.
    let bypass = mesh
        .a
        .command(&[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!bypass.status.success(), "plaintext reached a STRICT pod");
    assert_eq!(
        mesh.stat(false, "listener.0.0.0.0_15006.no_filter_chain_match"),
        1
    );

    // Not captured: app to app over localhost, and the excluded port.
    let before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert_eq!(
        mesh.b.exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:8080/local"
        ]),
        "pod-b says hi: /local\n"
    );
    assert_eq!(
        mesh.curl_from_a(&[&format!("http://{B}:9999/excluded")]),
        "pod-b says hi: /excluded\n"
    );
    assert_eq!(
        (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP)),
        before
    );

    // A connection straight to the capture port has the proxy itself as destination: refused, not recursed.
    let code = mesh.curl_from_a(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:15001/",
    ]);
    assert_eq!(code, "503");

    // A restarted sidecar takes the traffic again (pod A runs nothing but its sidecar).
    mesh.a.stop_all();
    mesh.start_sidecar(true);
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    assert_eq!(mesh.stat(true, OUT_HTTP), 1, "the new sidecar carried it");

    // After uninstall the apps talk directly.
    for a in [true, false] {
        let binary = mesh.binary.clone();
        mesh.pod(a).exec(&[&binary, "iptables", "uninstall"]);
    }
    let before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    assert_eq!(
        (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP)),
        before
    );
}
