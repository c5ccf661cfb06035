//! ORIGINAL_DST passthrough with a real iptables REDIRECT, inside a network namespace this test creates:
//! the client calls 198.18.0.10:8080, the kernel sends it to the proxy on 15001, and the proxy (running as
//! UID 1337, which the rule exempts) forwards it to the destination the client asked for. A call to port 8081
//! is handed by `use_original_dst` to the `bind_to_port: false` listener for 0.0.0.0:8081, as Envoy does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use support::netns::{Namespace, can_run, run};

const APP_IP: &str = "198.18.0.10";

const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15000}}}
static_resources:
  listeners:
  - name: virtualOutbound
    address: {socket_address: {address: 0.0.0.0, port_value: 15001}}
    use_original_dst: true
    listener_filters:
    - {name: envoy.filters.listener.original_dst, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst}}
    - {name: envoy.filters.listener.http_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}}
    listener_filters_timeout: 1s
    continue_on_listener_filters_timeout: true
    filter_chains:
    - filter_chain_match: {application_protocols: ["http/1.1", "h2c"]}
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_http
          route_config: {virtual_hosts: [{name: any, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: PassthroughCluster, timeout: 0s}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
    default_filter_chain:
      filters:
      - name: tcp
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: passthrough_tcp, cluster: PassthroughCluster}
  - name: handedOver
    address: {socket_address: {address: 0.0.0.0, port_value: 8081}}
    bind_to_port: false
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: handed_over
          route_config: {virtual_hosts: [{name: any, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "handed over\n"}}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - {name: PassthroughCluster, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}
"#;

#[test]
fn original_destination_passthrough_through_a_real_redirect() {
    if !can_run() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("outrigger-odst-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/marker.txt"), "served by the app\n").unwrap();
    std::fs::write(dir.join("proxy.yaml"), CONFIG).unwrap();
    // The proxy runs as UID 1337: it must be able to read its config and binary.
    run(&["chmod", "-R", "a+rX", dir.to_str().unwrap()]);

    let mut ns = Namespace::create(format!("orig-dst-{}", std::process::id()));
    ns.exec(&["ip", "addr", "add", &format!("{APP_IP}/32"), "dev", "lo"]);
    let www = dir.join("www");
    ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        APP_IP,
        "--directory",
        www.to_str().unwrap(),
    ]);
    let binary = Path::new(env!("CARGO_BIN_EXE_outrigger"));
    let config = dir.join("proxy.yaml");
    ns.spawn(&[
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        binary.to_str().unwrap(),
        "run",
        "-c",
        config.to_str().unwrap(),
    ]);
    ns.wait_for("http://127.0.0.1:15000/ready");
    ns.wait_for(&format!("http://{APP_IP}:8080/marker.txt"));
    // The app's traffic to its destination goes to the proxy; the proxy's own (UID 1337) does not.
    for port in ["8080", "8081"] {
        ns.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            APP_IP,
            "--dport",
            port,
            "-m",
            "owner",
            "!",
            "--uid-owner",
            "1337",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15001",
        ]);
    }

    let body = ns.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        &format!("http://{APP_IP}:8080/marker.txt"),
    ]);
    assert_eq!(body, "served by the app\n");
    // Nothing listens on 8081: only the hand-over to the `bind_to_port: false` listener answers.
    let handed = ns.exec(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        &format!("http://{APP_IP}:8081/"),
    ]);
    assert_eq!(handed, "handed over\n");
    let stats = ns.exec(&["curl", "-sS", "http://127.0.0.1:15000/stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l == "cluster.PassthroughCluster.upstream_rq_total: 1"),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .any(|l| l == "http.outbound_http.downstream_rq_2xx: 1"),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .any(|l| l == "http.handed_over.downstream_rq_2xx: 1"),
        "{stats}"
    );
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
