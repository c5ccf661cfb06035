//! The processes of the proxyless tests: `outrigger control-plane` on a folder, grpcio health servers, and the
//! two proxyless gRPC clients (`tests/peers/xds_grpcio_client.py`, `tests/peers/xds_grpc_js_client.js`), each
//! asked one Check per line on its stdin. Every process is stopped when its value drops.

use crate::support::tcp::free_port;
use crate::support::{self, ChildGuard, in_ci, peer, python_with_grpcio, repo_root};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one wait of these tests may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct ControlPlane {
    _guard: ChildGuard,
    log: PathBuf,
    pub port: u16,
}

impl ControlPlane {
    /// `outrigger control-plane` on `dir`, its log in `dir.log`; returns once it accepts connections.
    pub fn start(dir: &Path) -> ControlPlane {
        let port = free_port();
        let log = dir.with_extension("log");
        let child = support::outrigger()
            .args(["control-plane", "--config-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let control_plane = ControlPlane {
            _guard: ChildGuard(child),
            log,
            port,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "the control plane does not listen:\n{}",
                control_plane.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        control_plane
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line holding every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no log line with {needles:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The gRPC bootstrap a proxyless client reads (`GRPC_XDS_BOOTSTRAP`): our control plane, and the node id it
/// logs.
pub fn write_bootstrap(path: &Path, xds_port: u16, node: &str) {
    let bootstrap = serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("127.0.0.1:{xds_port}"),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {"id": node, "locality": {"zone": "z1"}},
    });
    std::fs::write(path, bootstrap.to_string()).unwrap();
}

/// A grpcio health server (`grpc_peer.py serve-as NAME`) on a free port: the service NAME is SERVING there, so a
/// client can tell which server answered.
pub fn health_server(python: &Path, name: &str) -> support::GrpcioServer {
    let mut guard = ChildGuard(
        Command::new(python)
            .arg(support::grpc_peer_script())
            .args(["serve-as", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = line.trim().parse().expect("the peer prints its port");
    support::GrpcioServer {
        guard,
        port,
        stdout,
    }
}

/// Which proxyless client library.
#[derive(Clone, Copy, Debug)]
pub enum Library {
    /// Python grpcio 1.85 (gRPC core).
    Grpcio,
    /// Node `@grpc/grpc-js` 1.14 with `@grpc/grpc-js-xds` 1.14.1.
    GrpcJs,
}

/// One proxyless client process holding one channel to an `xds:///` target.
pub struct XdsClient {
    guard: ChildGuard,
    answers: mpsc::Receiver<String>,
    pub library: Library,
}

impl XdsClient {
    /// Starts `library`'s client on `target` with the bootstrap at `bootstrap`; `None` (a failure under CI) when
    /// its runtime or packages are missing.
    pub fn start(library: Library, bootstrap: &Path, target: &str) -> Option<XdsClient> {
        let peers = repo_root().join("tests/peers");
        let mut command = match library {
            Library::Grpcio => {
                let mut c = Command::new(python_with_grpcio()?);
                c.arg(peers.join("xds_grpcio_client.py"));
                c
            }
            Library::GrpcJs => {
                let mut c = Command::new(node_with_grpc_js_xds()?);
                c.arg(peers.join("xds_grpc_js_client.js"));
                c
            }
        };
        let mut child = command
            .arg(target)
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Some(XdsClient {
            guard: ChildGuard(child),
            answers,
            library,
        })
    }

    /// One health Check of `service` on the client's channel: the status name, or the error code and details.
    pub fn check(&mut self, service: &str) -> String {
        let stdin = self.guard.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{service}").unwrap();
        stdin.flush().unwrap();
        // The client's own deadline is 3 s; a process that does not answer in 10 s is stuck.
        self.answers
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the {:?} client did not answer: {e}", self.library))
    }

    /// Checks `service` until the answer is `wanted`; returns every answer seen (the last one is `wanted`).
    pub fn check_until(
        &mut self,
        service: &str,
        wanted: &str,
        log: impl Fn() -> String,
    ) -> Vec<String> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let answer = self.check(service);
            let done = answer == wanted;
            seen.push(answer);
            if done {
                return seen;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the {:?} client never got {wanted} for {service:?}; answers: {seen:?}\ncontrol plane log:\n{}",
                self.library,
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `node`, when `tests/peers/node_modules` holds `@grpc/grpc-js-xds` (`.ci/run` installs it with `npm ci`);
/// otherwise `None`, a failure under CI.
fn node_with_grpc_js_xds() -> Option<PathBuf> {
    let node = peer("node")?;
    let package = repo_root().join("tests/peers/node_modules/@grpc/grpc-js-xds/package.json");
    if !package.is_file() {
        assert!(
            !in_ci(),
            "{} is missing under CI=true; .ci/run installs it (npm ci --prefix tests/peers)",
            package.display()
        );
        eprintln!(
            "note: @grpc/grpc-js-xds is not installed (npm ci --prefix tests/peers); the grpc-js part is not run \
             (it is in CI)"
        );
        return None;
    }
    Some(node)
}
