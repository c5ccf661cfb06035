//! The docker-compose local mesh (deploy/compose) under a real Docker engine: the images built by
//! deploy/build-images.sh, `docker-compose up`, then the demo services calling each other through both sidecars
//! over mutual TLS with SPIFFE certificates from the control plane, a plaintext call bypassing a sidecar
//! refused, Prometheus (published on 127.0.0.1 only) scraping both sidecars, a stopped sidecar giving its caller
//! 503 `UF` and healing when started again, an edit in the control plane's folder reaching the sidecars, and
//! `docker-compose down -v` leaving no container, network, volume or host rule behind.
//!
//! Needs root, `docker`, `docker-compose`, `debootstrap` and a running engine (`deploy/dockerd.sh start`, which
//! .ci/run does); under CI=true a missing one fails the test. The mesh runs from a copy of deploy/compose (so the
//! edit does not touch the repository) as its own compose project, with images tagged `compose-test`; both are
//! removed when the test ends, also when it fails. The Debian base image (outrigger-base:bookworm) is kept: it
//! is the cache that spares the next run its debootstrap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROJECT: &str = "outrigger-compose-test";
const TAG: &str = "compose-test";
const IMAGES: [&str; 4] = [
    "outrigger",
    "outrigger-init",
    "outrigger-demo",
    "outrigger-prometheus",
];
/// The compose network's subnet (deploy/compose/docker-compose.yml).
const SUBNET: &str = "198.19.10.";
const WEB_ID: &str = "spiffe://cluster.local/ns/default/sa/web";
const GREETER_ID: &str = "spiffe://cluster.local/ns/default/sa/greeter";

/// Root, the Docker client and compose, and an engine that answers; `None` (a failure under CI) otherwise.
fn docker_ready() -> Option<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        assert!(
            !support::in_ci(),
            "tests/compose.rs needs root under CI=true"
        );
        eprintln!("note: NOT RUN: tests/compose.rs needs root (it is run in CI)");
        return None;
    }
    support::peer("docker")?;
    support::peer("docker-compose")?;
    support::peer("debootstrap")?;
    let engine = Command::new("docker")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !engine {
        assert!(
            !support::in_ci(),
            "no Docker engine answers under CI=true; .ci/run starts one with deploy/dockerd.sh start"
        );
        eprintln!(
            "note: NOT RUN: no Docker engine answers; start one with `deploy/dockerd.sh start` (as root)"
        );
        return None;
    }
    Some(())
}

/// Runs `command` to its end, killing it after `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let what = format!("{command:?}");
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let id = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match waited.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("{what} did not finish within {limit:?}")
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The images of this test (tag `compose-test`), removed when dropped.
struct Images;

impl Images {
    fn build() -> Images {
        let images = Images;
        let mut command = Command::new("bash");
        command
            .arg(support::repo_root().join("deploy/build-images.sh"))
            .env("OUTRIGGER_IMAGE_TAG", TAG);
        let started = Instant::now();
        let output = run_bounded(command, Duration::from_secs(45 * 60));
        assert!(
            output.status.success(),
            "deploy/build-images.sh failed:\n{}",
            text(&output)
        );
        eprintln!(
            "deploy/build-images.sh took {:?}:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&output.stdout)
        );
        images
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let names: Vec<String> = IMAGES.iter().map(|i| format!("{i}:{TAG}")).collect();
        let _ = Command::new("docker")
            .args(["image", "rm", "--force"])
            .args(&names)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The mesh: a copy of deploy/compose run as project `outrigger-compose-test`; dropping it runs
/// `docker-compose down -v` and removes the copy.
struct Mesh {
    dir: PathBuf,
    /// The host's port (on 127.0.0.1) where compose publishes Prometheus' 9090.
    prometheus_port: u16,
}

impl Mesh {
    fn up() -> Mesh {
        let dir = std::env::temp_dir().join(format!("outrigger-compose-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&support::repo_root().join("deploy/compose"), &dir);
        let mesh = Mesh {
            dir,
            prometheus_port: support::tcp::free_port(),
        };
        // A project left by an earlier run that was killed.
        mesh.compose(&["down", "-v", "--remove-orphans", "--timeout", "2"]);
        let output = mesh.compose(&["up", "-d"]);
        assert!(
            output.status.success(),
            "docker-compose up: {}",
            text(&output)
        );
        mesh
    }

    fn compose(&self, args: &[&str]) -> Output {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(&self.dir)
            .args(["--ansi", "never", "-p", PROJECT])
            .args(args)
            .env("OUTRIGGER_TAG", TAG)
            .env("PROMETHEUS_PORT", self.prometheus_port.to_string());
        run_bounded(command, Duration::from_secs(120))
    }

    /// Runs `args` in `service`'s container (its network namespace, so loopback reaches the app directly).
    fn exec(&self, service: &str, args: &[&str]) -> String {
        let mut all = vec!["exec", "-T", service];
        all.extend_from_slice(args);
        // The answer, or else why there is none.
        let output = self.compose(&all);
        match String::from_utf8_lossy(&output.stdout) {
            answer if !answer.is_empty() => answer.into_owned(),
            _ => String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// What `demo-web` answers, asked in its container, on `path`.
    fn web(&self, path: &str) -> String {
        self.exec(
            "web",
            &["/demo-web", "get", &format!("http://127.0.0.1:8080{path}")],
        )
    }

    /// What `demo-greeter` answers, asked in its container, to `method`.
    fn greeter(&self, method: &str) -> String {
        self.exec(
            "greeter",
            &["/demo-greeter", "call", "http://127.0.0.1:50051", method],
        )
    }

    /// The address of `service` on the compose network.
    fn address(&self, service: &str) -> String {
        let id = String::from_utf8_lossy(&self.compose(&["ps", "-q", service]).stdout).into_owned();
        let output = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                id.trim(),
            ])
            .output()
            .unwrap();
        let address = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(address.starts_with(SUBNET), "{service}: {address:?}");
        address
    }

    /// A sidecar's Prometheus statistics, scraped from the host on port 15090 (excluded from interception).
    fn stats(&self, service: &str) -> String {
        let address: SocketAddr = format!("{}:15090", self.address(service)).parse().unwrap();
        http_get(address, "/stats/prometheus").unwrap_or_else(|e| panic!("{service}: {e}"))
    }

    /// The samples of an instant query to Prometheus' HTTP API, on its published port, by their `app` label
    /// (deploy/compose/prometheus/prometheus.yml): `[(app, value)]`, or why there is no answer.
    fn prometheus(&self, query: &str) -> Result<Vec<(String, f64)>, String> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.prometheus_port));
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let answer = http_get(address, &path)?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .ok_or_else(|| format!("no HTTP body: {answer:?}"))?;
        let json: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("{e}: {answer:?}"))?;
        if json["status"] != "success" {
            return Err(format!("{query}: {json}"));
        }
        let samples = json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(samples
            .iter()
            .filter_map(|sample| {
                let app = sample["metric"]["app"].as_str()?.to_owned();
                let value = sample["value"][1].as_str()?.parse().ok()?;
                Some((app, value))
            })
            .collect())
    }

    fn logs(&self) -> String {
        text(&self.compose(&["logs", "--no-color", "--tail", "40"]))
    }

    fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; the mesh's logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "2"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A plaintext HTTP/1.1 GET; the whole answer, or why there was none.
fn http_get(address: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))
        .map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write {address}: {e}"))?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) if !answer.is_empty() => Ok(String::from_utf8_lossy(&answer).into_owned()),
        Ok(_) => Err(format!("{address} closed the connection without an answer")),
        Err(e) if !answer.is_empty() => Err(format!(
            "{address}: {e} after {:?}",
            String::from_utf8_lossy(&answer)
        )),
        Err(e) => Err(format!("{address}: {e}")),
    }
}

/// `text` as a URL query value: everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sum of the samples of `name` whose labels contain `label`.
fn metric(stats: &str, name: &str, label: &str) -> u64 {
    stats
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn compose_mesh_end_to_end() {
    if docker_ready().is_none() {
        return;
    }
    let images = Images::build();
    let mesh = Mesh::up();
    let network_id = String::from_utf8_lossy(
        &Command::new("docker")
            .args([
                "network",
                "inspect",
                "-f",
                "{{.Id}}",
                &format!("{PROJECT}_mesh"),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned();
    assert!(!network_id.is_empty(), "the mesh network {PROJECT}_mesh");

    // HTTP -> gRPC: web's app calls greeter:50051 in plaintext; web's sidecar carries it over mTLS to greeter's
    // sidecar, which tells greeter the caller's SPIFFE ID. The first answer waits for the sidecars to be
    // configured and to have their certificates.
    let expected = format!(
        "status 200: greeter answered: hello web from greeter; x-forwarded-client-cert: By={GREETER_ID};Hash="
    );
    let mut answer = String::new();
    mesh.wait_until(
        "web calls greeter through both sidecars",
        Duration::from_secs(90),
        || {
            answer = mesh.web("/call-greeter");
            answer.starts_with(&expected)
        },
    );
    assert!(
        answer.trim_end().ends_with(&format!(";URI={WEB_ID}")),
        "{answer}"
    );

    // gRPC -> HTTP: greeter's app calls web:8080; web's app sees greeter's SPIFFE ID.
    let answer = mesh.greeter("CallWeb");
    assert!(
        answer.starts_with(&format!(
            "web answered status 200: hello from web; x-forwarded-client-cert: By={WEB_ID};Hash="
        )) && answer.trim_end().ends_with(&format!(";URI={GREETER_ID}")),
        "{answer}"
    );

    // Both sidecars' statistics show both calls: out of the caller over its mesh cluster, TLS handshakes, and
    // into the callee's inbound connection manager.
    let web_stats = mesh.stats("web");
    let greeter_stats = mesh.stats("greeter");
    for (stats, out_cluster, who) in [
        (&web_stats, "outbound|50051||greeter", "web"),
        (&greeter_stats, "outbound|8080||web", "greeter"),
    ] {
        let sent = metric(
            stats,
            "envoy_cluster_upstream_rq_total",
            &format!("envoy_cluster_name=\"{out_cluster}\""),
        );
        assert!(
            sent >= 1,
            "{who}'s sidecar sent nothing to {out_cluster}:\n{stats}"
        );
        let tls = metric(
            stats,
            "envoy_cluster_ssl_handshake_total",
            &format!("envoy_cluster_name=\"{out_cluster}\""),
        );
        assert!(
            tls >= 1,
            "{who}'s sidecar made no TLS handshake to {out_cluster}"
        );
        let received = metric(
            stats,
            "envoy_http_downstream_rq_total",
            "envoy_http_conn_manager_prefix=\"inbound_http\"",
        );
        assert!(
            received >= 1,
            "{who}'s sidecar received no mesh request:\n{stats}"
        );
    }

    // Prometheus (deploy/compose/prometheus) scrapes both sidecars every 2 s through their apps' compose names
    // (15090 is not intercepted) and has their request counters; it runs as the package's user, not root.
    let ups = "up{job=\"sidecars\"}";
    let requests = "sum by (app) (envoy_http_downstream_rq_total{job=\"sidecars\",\
                    envoy_http_conn_manager_prefix=\"inbound_http\"})";
    let both = |samples: &Result<Vec<(String, f64)>, String>| {
        ["web", "greeter"].iter().all(|app| {
            samples
                .as_ref()
                .is_ok_and(|samples| samples.iter().any(|(a, v)| a == app && *v >= 1.0))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let seen = (mesh.prometheus(ups), mesh.prometheus(requests));
        if both(&seen.0) && both(&seen.1) {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has not scraped both sidecars within 30 s: {ups} = {:?}; {requests} = {:?}; \
             the mesh's logs:\n{}",
            seen.0,
            seen.1,
            mesh.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "Prometheus: {ups} = {:?}; {requests} = {:?}",
        seen.0, seen.1
    );
    let user = mesh.exec("prometheus", &["id", "-u"]);
    assert!(
        user.trim().parse::<u32>().is_ok_and(|uid| uid != 0),
        "Prometheus runs as {user:?}"
    );

    // A plaintext call from outside the mesh, bypassing the caller's sidecar, is refused: the callee's inbound
    // side only takes mutual TLS.
    for (service, port) in [("web", 8080), ("greeter", 50051)] {
        let address: SocketAddr = format!("{}:{port}", mesh.address(service)).parse().unwrap();
        let refused = http_get(address, "/hello");
        assert!(
            refused.is_err(),
            "plaintext to {service} answered: {refused:?}"
        );
    }

    // Web's sidecar stopped: greeter's sidecar cannot connect to web, and says so (503 UF); started again, it
    // heals (its rules stayed in web's namespace, its configuration and certificate come back from the control
    // plane).
    let stopped = mesh.compose(&["stop", "--timeout", "5", "web-sidecar"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let answer = mesh.greeter("CallWeb");
    assert!(
        answer.starts_with("web answered status 503 (x-outrigger-response-flags: UF)"),
        "{answer}"
    );
    let started = mesh.compose(&["start", "web-sidecar"]);
    assert!(started.status.success(), "{}", text(&started));
    mesh.wait_until("greeter reaches web again", Duration::from_secs(60), || {
        mesh.greeter("CallWeb")
            .starts_with("web answered status 200: hello from web")
    });

    // An edit in the control plane's folder reaches both sidecars: the callee's XFCC gains the Subject field.
    let file = mesh.dir.join("control-plane/mesh.yaml");
    let before = std::fs::read_to_string(&file).unwrap();
    let after = before.replace(
        "set_current_client_cert_details: {uri: true}",
        "set_current_client_cert_details: {uri: true, subject: true}",
    );
    assert_ne!(before, after, "control-plane/mesh.yaml changed shape");
    assert!(!mesh.web("/call-greeter").contains("Subject="));
    std::fs::write(&file, after).unwrap();
    mesh.wait_until(
        "the edit reaches greeter's sidecar",
        Duration::from_secs(30),
        || mesh.web("/call-greeter").contains(";Subject="),
    );
    mesh.wait_until(
        "the edit reaches web's sidecar",
        Duration::from_secs(30),
        || mesh.greeter("CallWeb").contains(";Subject="),
    );

    // `docker-compose down -v` leaves nothing behind: no container, network or volume of the project, no
    // address or iptables rule of its network on the host.
    let down = mesh.compose(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
    assert!(down.status.success(), "{}", text(&down));
    let label = format!("label=com.docker.compose.project={PROJECT}");
    for kind in ["container", "network", "volume"] {
        let mut list = vec![kind, "ls", "--quiet", "--filter", &label];
        if kind == "container" {
            list.push("--all");
        }
        let left = Command::new("docker").args(&list).output().unwrap();
        assert!(
            left.stdout.is_empty(),
            "{kind}s left by docker-compose down: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
    let bridge = format!("br-{}", &network_id[..12]);
    let addresses = Command::new("ip").args(["-o", "addr"]).output().unwrap();
    let addresses = String::from_utf8_lossy(&addresses.stdout);
    assert!(
        !addresses.contains(SUBNET) && !addresses.contains(&bridge),
        "{addresses}"
    );
    for table in ["filter", "nat"] {
        let rules = Command::new("iptables")
            .args(["-t", table, "-S"])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(
            !rules.contains(SUBNET) && !rules.contains(&bridge),
            "{table} rules left: {rules}"
        );
    }
    drop(mesh);
    drop(images);
}
