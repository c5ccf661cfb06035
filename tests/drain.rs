//! Shutdown as a platform sees it: SIGTERM during a slow request lets it finish, refuses new connections, and
//! the process exits by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::tcp::free_port;

/// Kills the child if the test fails half way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(listen: u16, admin: u16, backend: u16) -> String {
    format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]}}]}}
          http_filters: [{{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
  clusters:
  - {{name: backend, load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}}}}}]}}]}}}}
"#
    )
}

async fn get(url: &str) -> Result<(u16, String), String> {
    support::client::try_get(url, &[])
        .await
        .map(|r| (r.status, r.body))
}

/// Polls the admin API's `/stats` every 10 ms (at most 10 s) until `wanted` holds.
async fn wait_for(admin: u16, what: &str, wanted: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        if let Ok((200, stats)) = get(&format!("http://127.0.0.1:{admin}/stats")).await
            && wanted(&stats)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not seen: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits() {
    let backend = Backend::start("slow").await;
    let (listen, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("outrigger-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("drain.yaml");
    std::fs::write(&file, config(listen, admin, backend.address.port())).unwrap();
    let child = support::outrigger()
        .args(["run", "--drain-time-s", "10", "-c"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);

    let ready = Instant::now();
    while get(&format!("http://127.0.0.1:{admin}/ready")).await != Ok((200, "LIVE\n".into())) {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "the proxy did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let level =
        support::client::post(&format!("http://127.0.0.1:{admin}/logging?level=debug")).await;
    assert_eq!(level.status, 200, "{}", level.body);

    let slow = tokio::spawn(async move {
        support::client::try_get(&format!("http://127.0.0.1:{listen}/slow/1500"), &[]).await
    });
    // Observable state instead of a sleep: the request is open in the proxy.
    wait_for(admin, "one request in flight", |stats| {
        stats
            .lines()
            .any(|l| l == "http.ingress.downstream_rq_active: 1")
    })
    .await;
    let pid = running.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The drain has started once /ready says so; the listener's socket closes right after.
    let draining = Instant::now();
    while get(&format!("http://127.0.0.1:{admin}/ready")).await != Ok((503, "DRAINING\n".into())) {
        assert!(draining.elapsed() < Duration::from_secs(5), "no drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while tokio::net::TcpStream::connect(("127.0.0.1", listen))
        .await
        .is_ok()
    {
        assert!(
            draining.elapsed() < Duration::from_secs(2),
            "new connections were still accepted 2 s into the drain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", listen)).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "a new connection while draining"
    );
    assert!(
        !slow.is_finished(),
        "the slow request ended before the drain was checked"
    );

    let reply = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200, "{}", reply.body);
    // HTTP/1: the response that finishes during the drain tells the client to close.
    assert_eq!(reply.header("connection").as_deref(), Some("close"));

    let exited = Instant::now();
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(10),
            "the proxy did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
