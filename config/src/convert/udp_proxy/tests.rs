//! UDP listeners and `udp_proxy` read from YAML into the model, and what is refused by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::model::udp_proxy::{GRO_READ_SIZE, UdpListener};
use crate::{Format, load_bytes};
use std::time::Duration;

const PROXY: &str =
    "\"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig";
const ROUTE: &str =
    "\"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route";

/// A UDP listener with `listener` (extra listener fields, indented) and a udp_proxy whose config is `proxy`.
fn config(listener: &str, proxy: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: dns
    address: {{socket_address: {{protocol: UDP, address: 127.0.0.1, port_value: 10053}}}}
{listener}
    listener_filters:
    - name: envoy.filters.udp_listener.udp_proxy
      typed_config:
        {PROXY}
        stat_prefix: dns
{proxy}
  clusters:
  - name: resolvers
    load_assignment: {{cluster_name: resolvers, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 53}}}}}}}}]}}]}}
"#
    )
}

fn udp(listener: &str, proxy: &str) -> UdpListener {
    match load_bytes(config(listener, proxy).as_bytes(), Format::Yaml) {
        Ok(loaded) => loaded.snapshot.listeners[0]
            .udp
            .clone()
            .expect("a UDP listener"),
        Err(problems) => panic!("refused: {problems:#?}"),
    }
}

fn refusal(listener: &str, proxy: &str) -> String {
    match load_bytes(config(listener, proxy).as_bytes(), Format::Yaml) {
        Ok(_) => panic!("accepted:\n{}", config(listener, proxy)),
        Err(problems) => format!("{problems:?}"),
    }
}

#[test]
fn udp_listener_and_proxy_are_read_as_envoy_reads_them() {
    // Envoy's defaults: 60s, 1500 bytes from clients, GRO (64 KiB) from upstreams, a session keeps its host.
    let on_no_match = format!(
        "        matcher: {{on_no_match: {{action: {{name: route, typed_config: {{{ROUTE}, cluster: resolvers}}}}}}}}"
    );
    let l = udp("", &on_no_match);
    assert_eq!(l.max_rx_datagram_size, 1500);
    assert_eq!(l.proxy.stat_prefix, "dns");
    assert_eq!(l.proxy.cluster.as_deref(), Some("resolvers"));
    assert_eq!(l.proxy.idle_timeout, Duration::from_secs(60));
    assert!(!l.proxy.per_packet_load_balancing);
    assert_eq!(l.proxy.upstream_max_rx_datagram_size, GRO_READ_SIZE);

    // Every field set: the deprecated `cluster`, sizes without GRO, GRO on the listener.
    let l = udp(
        "    udp_listener_config: {downstream_socket_config: {max_rx_datagram_size: 9000}}",
        "        cluster: resolvers\n        idle_timeout: 2.5s\n        use_per_packet_load_balancing: true\n        \
         upstream_socket_config: {max_rx_datagram_size: 700, prefer_gro: false}",
    );
    assert_eq!(l.max_rx_datagram_size, 9000);
    assert_eq!(l.proxy.cluster.as_deref(), Some("resolvers"));
    assert_eq!(l.proxy.idle_timeout, Duration::from_millis(2500));
    assert!(l.proxy.per_packet_load_balancing);
    assert_eq!(l.proxy.upstream_max_rx_datagram_size, 700);
    let l = udp(
        "    udp_listener_config: {downstream_socket_config: {prefer_gro: true}}",
        "        cluster: resolvers\n        upstream_socket_config: {max_rx_datagram_size: 700}",
    );
    assert_eq!(l.max_rx_datagram_size, GRO_READ_SIZE);
    assert_eq!(l.proxy.upstream_max_rx_datagram_size, GRO_READ_SIZE);

    // A matcher with no action: no route (Envoy counts downstream_sess_no_route and drops the datagrams).
    assert_eq!(udp("", "        matcher: {}").proxy.cluster, None);
}

#[test]
fn what_is_not_run_like_envoy_is_refused_by_name() {
    let cases = [
        (
            "",
            "        cluster: resolvers\n        idle_timeout: 0s",
            "idle_timeout",
        ),
        (
            "",
            "        matcher: {matcher_list: {matchers: []}}",
            "matcher.matcher_list",
        ),
        (
            "",
            "        cluster: resolvers\n        use_original_src_ip: true",
            "use_original_src_ip",
        ),
        (
            "",
            "        cluster: resolvers\n        hash_policies: [{source_ip: true}]",
            "hash_policies",
        ),
        ("", "", "cluster, matcher"),
        (
            "    udp_listener_config: {quic_options: {}}",
            "        cluster: resolvers",
            "quic_options",
        ),
        (
            "    bind_to_port: false",
            "        cluster: resolvers",
            "bind_to_port",
        ),
        (
            "    access_log: [{name: a, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}}]",
            "        cluster: resolvers",
            "access_log",
        ),
        (
            "    filter_chains: [{filters: []}]",
            "        cluster: resolvers",
            "filter_chains",
        ),
    ];
    for (listener, proxy, named) in cases {
        let problems = refusal(listener, proxy);
        assert!(problems.contains(named), "{named} not named in {problems}");
    }
    // A UDP listener without udp_proxy (Envoy would drop every datagram).
    let none = r#"
static_resources:
  listeners:
  - name: dns
    address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: 10053}}
"#;
    let problems = format!(
        "{:?}",
        load_bytes(none.as_bytes(), Format::Yaml).err().unwrap()
    );
    assert!(problems.contains("udp_proxy"), "{problems}");
    // UDP stays a listener's alone.
    let cluster = r#"
static_resources:
  clusters:
  - name: c
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {protocol: UDP, address: 127.0.0.1, port_value: 53}}}}]}]}
"#;
    let problems = format!(
        "{:?}",
        load_bytes(cluster.as_bytes(), Format::Yaml).err().unwrap()
    );
    assert!(problems.contains("protocol"), "{problems}");
}
