//! The two pods of the mesh tests: namespaces joined by a veth pair, pod B's apps, a sidecar per pod (configured
//! from files, or by `outrigger control-plane` over ADS), and the real `outrigger iptables install` rules.

use super::support;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::netns::Namespace;
use support::pki::{Pki, spiffe};

pub const A: &str = "198.18.0.1";
pub const B: &str = "198.18.0.2";
/// Where the control plane listens (in pod A), excluded from inbound capture in both pods.
pub const CONTROL_PLANE_PORT: u16 = 15010;

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

/// How the sidecars are configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sidecars {
    /// tests/configs/mesh/sidecar-mtls.yaml, with certificate files from `outrigger ca issue`.
    Files,
    /// A bootstrap (tests/configs/mesh/ads/bootstrap.yaml) naming `outrigger control-plane`, which runs in pod A
    /// and serves the listeners, the clusters and the certificates (SDS) over ADS from tests/configs/mesh/ads/.
    ControlPlane,
}

impl Sidecars {
    /// Names the namespaces, links and files, so that both kinds of mesh can run at once.
    fn tag(self) -> (&'static str, &'static str) {
        match self {
            Sidecars::Files => ("mesh", "v"),
            Sidecars::ControlPlane => ("mesh-ads", "w"),
        }
    }
}

pub struct Mesh {
    pub a: Namespace,
    pub b: Namespace,
    pub binary: String,
    pub apps: String,
    pub grpc: String,
    h2c_config: PathBuf,
    /// The CA (`ca/`), certificates, the sidecars' configs, the control plane's folder and the logs (removed
    /// when dropped).
    pub pki: Pki,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.h2c_config);
    }
}

/// Pod A's sidecar is node `pod-a` with identity `sa/pod-a`, pod B's `pod-b`; each one's config names the other.
pub fn names(a: bool) -> (&'static str, &'static str) {
    if a {
        ("pod-a", "pod-b")
    } else {
        ("pod-b", "pod-a")
    }
}

fn template(name: &str) -> String {
    std::fs::read_to_string(support::repo_root().join("tests/configs/mesh").join(name)).unwrap()
}

fn mesh_network() -> [(&'static str, String); 2] {
    [
        ("mesh_net", "198.18.0.0".to_string()),
        ("mesh_len", "24".to_string()),
    ]
}

/// The file-configured sidecar: its certificate from `outrigger ca issue`.
fn file_config(pki: &Pki, a: bool) {
    let (me, peer) = names(a);
    let identity = pki.issue(me, &spiffe(me));
    // The sidecar runs as UID 1337; its key is private to it.
    support::netns::run(&["chown", "-R", "1337:1337", identity.to_str().unwrap()]);
    let mut values = vec![
        ("identity", identity.display().to_string()),
        ("peer_id", spiffe(peer)),
        ("allowed_id", spiffe(peer)),
        ("pod", me.to_string()),
    ];
    values.extend(mesh_network());
    let config = support::proxy::fill(&template("sidecar-mtls.yaml"), &values);
    std::fs::write(pki.dir.join(format!("{me}.yaml")), config).unwrap();
}

/// The ADS sidecar's bootstrap: its node id, and the identity the control plane is to issue it.
fn ads_bootstrap(pki: &Pki, a: bool) {
    let (me, _) = names(a);
    let config = support::proxy::fill(
        &template("ads/bootstrap.yaml"),
        &[
            ("node", me.to_string()),
            ("namespace", "default".to_string()),
            ("service_account", me.to_string()),
            ("control_plane", A.to_string()),
            ("control_plane_port", CONTROL_PLANE_PORT.to_string()),
        ],
    );
    std::fs::write(pki.dir.join(format!("{me}.yaml")), config).unwrap();
}

impl Mesh {
    pub fn start(sidecars: Sidecars) -> Mesh {
        let id = std::process::id();
        let (tag, link) = sidecars.tag();
        let a = Namespace::create(format!("{tag}-a-{id}"));
        let b = Namespace::create(format!("{tag}-b-{id}"));
        let (veth_a, veth_b) = (format!("{link}a{id}"), format!("{link}b{id}"));
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
            h2c_config: std::env::temp_dir().join(format!("outrigger-{tag}-h2c-{id}.yaml")),
            pki: Pki::new(tag),
        };
        match sidecars {
            Sidecars::Files => {
                for a in [true, false] {
                    file_config(&mesh.pki, a);
                }
            }
            Sidecars::ControlPlane => mesh.start_control_plane(),
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
        // The rules first, as an init container installs them: a connection opened before them (the xDS stream
        // of B's sidecar) has no conntrack entry, and its next packet would be taken as new and redirected.
        // Port 9999 is excluded both ways: it must stay direct. The control plane's port is not captured.
        let mut inbound_excluded = "15090,15021,15020,9999".to_string();
        if sidecars == Sidecars::ControlPlane {
            inbound_excluded.push_str(&format!(",{CONTROL_PLANE_PORT}"));
        }
        for pod in [&mesh.a, &mesh.b] {
            pod.exec(&[
                &mesh.binary,
                "iptables",
                "install",
                "--exclude-outbound-ports",
                "9999",
                "--exclude-inbound-ports",
                &inbound_excluded,
            ]);
        }
        mesh.start_sidecar(true);
        mesh.start_sidecar(false);
        mesh
    }

    /// The control plane's folder: the shared clusters, and each node's own listeners and mesh clusters.
    pub fn folder(&self) -> PathBuf {
        self.pki.dir.join("xds")
    }

    /// `outrigger control-plane` in pod A, issuing certificates from the test's CA; the sidecars' bootstraps.
    fn start_control_plane(&mut self) {
        let folder = self.folder();
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("clusters.yaml"), template("ads/clusters.yaml")).unwrap();
        for a in [true, false] {
            let (me, peer) = names(a);
            self.write_node_resources(me, &spiffe(peer), &spiffe(peer));
            ads_bootstrap(&self.pki, a);
        }
        let binary = self.binary.clone();
        let listen = format!("{A}:{CONTROL_PLANE_PORT}");
        let ca = self.pki.dir.join("ca");
        let log = self.log_path("control-plane");
        self.a.spawn_logged(
            &[
                &binary,
                "control-plane",
                "--config-dir",
                folder.to_str().unwrap(),
                "--ca-dir",
                ca.to_str().unwrap(),
                "--listen",
                &listen,
            ],
            &log,
        );
        // Any HTTP/2 answer will do: it listens.
        let url = format!("http://{listen}/");
        self.wait_until("the control plane listens", || {
            self.a
                .command(&[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "1",
                    "--http2-prior-knowledge",
                    &url,
                ])
                .status()
                .unwrap()
                .success()
        });
    }

    /// Writes (atomically: the control plane never reads half a file) `node`'s listeners and mesh clusters:
    /// its outbound traffic must reach `peer_id`, its inbound side lets `allowed_id` in.
    pub fn write_node_resources(&self, node: &str, peer_id: &str, allowed_id: &str) {
        let mut values = vec![
            ("peer_id", peer_id.to_string()),
            ("allowed_id", allowed_id.to_string()),
        ];
        values.extend(mesh_network());
        let resources = support::proxy::fill(&template("ads/sidecar.yaml"), &values);
        let dir = self.folder().join(node);
        std::fs::create_dir_all(&dir).unwrap();
        // A hidden file, which the control plane skips, renamed into place.
        let staged = dir.join(".sidecar.yaml.new");
        std::fs::write(&staged, resources).unwrap();
        std::fs::rename(&staged, dir.join("sidecar.yaml")).unwrap();
    }

    pub fn pod(&self, a: bool) -> &Namespace {
        if a { &self.a } else { &self.b }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.pki.dir.join(format!("{name}.log"))
    }

    /// The end of the control plane's and the sidecars' logs, for a failure message.
    pub fn logs(&self) -> String {
        ["control-plane", "pod-a", "pod-b"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(3000)..];
                format!("--- {name}.log\n{tail}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Polls `check` for up to 20 s; on timeout fails with the logs.
    pub fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: not in 20 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn start_sidecar(&mut self, a: bool) {
        let binary = self.binary.clone();
        let (me, _) = names(a);
        let config = self.pki.dir.join(format!("{me}.yaml"));
        let log = self.log_path(me);
        let pod = if a { &mut self.a } else { &mut self.b };
        pod.spawn_logged(
            &[
                "setpriv",
                "--reuid=1337",
                "--regid=1337",
                "--clear-groups",
                &binary,
                "run",
                "-c",
                config.to_str().unwrap(),
            ],
            &log,
        );
        let pod = self.pod(a);
        self.wait_until(&format!("{me}'s sidecar is ready"), || {
            ready(pod, "http://127.0.0.1:15000/ready")
        });
    }

    /// One Envoy-named statistic of a pod's sidecar, 0 when it does not exist yet.
    pub fn stat(&self, a: bool, name: &str) -> u64 {
        self.stats(a)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// The sum of a Prometheus counter's series (from `/stats/prometheus`) whose labels hold `label`.
    pub fn counter(&self, a: bool, name: &str, label: &str) -> u64 {
        self.admin(a, "/stats/prometheus")
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.trim().parse::<f64>().unwrap() as u64)
            .sum()
    }

    pub fn stats(&self, a: bool) -> String {
        self.admin(a, "/stats")
    }

    pub fn admin(&self, a: bool, path: &str) -> String {
        self.pod(a).exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:15000{path}"),
        ])
    }

    pub fn curl_from_a(&self, args: &[&str]) -> String {
        let mut all = vec!["curl", "-sS", "--max-time", "10"];
        all.extend_from_slice(args);
        self.a.exec(&all)
    }

    /// What `curl` from pod A's app gets, or `None` when it fails (refused, reset, timed out).
    pub fn try_curl_from_a(&self, url: &str) -> Option<String> {
        let output = self
            .a
            .command(&["curl", "-sS", "--max-time", "5", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn ready(pod: &Namespace, url: &str) -> bool {
    pod.command(&["curl", "-sf", "--max-time", "1", url])
        .output()
        .unwrap()
        .status
        .success()
}

/// True when `path` holds no certificate or key files (PEM) outside `except`.
pub fn no_pem_files(path: &Path, except: &Path) -> bool {
    std::fs::read_dir(path).unwrap().all(|entry| {
        let path = entry.unwrap().path();
        if path == except {
            true
        } else if path.is_dir() {
            no_pem_files(&path, except)
        } else {
            path.extension().is_none_or(|e| e != "pem")
        }
    })
}
