//! Inputs for the micro-benchmarks, made here so each benchmark says how large its input is: Envoy v3 bootstraps
//! with big route tables or many listeners and clusters, and a TLS ClientHello.

use std::fmt::Write;

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// The route of `big.bench` number `i`: odd ones match an exact path, even ones a prefix, and every tenth also
/// needs an `x-tenant` header.
fn route(out: &mut String, i: usize) {
    let path = if !i.is_multiple_of(2) {
        format!("path: \"/svc{i}/exact\"")
    } else {
        format!("prefix: \"/svc{i}/\"")
    };
    let headers = if i.is_multiple_of(10) {
        format!(", headers: [{{name: x-tenant, string_match: {{exact: tenant{i}}}}}]")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "              - match: {{{path}{headers}}}\n                route: {{cluster: backend}}"
    );
}

/// One HTTP listener whose route table has `small_hosts` virtual hosts of 10 routes each (domains
/// `svcN.bench` and `*.svcN.example`), then the virtual host `big.bench` with `routes` routes (see [`route`]),
/// then a catch-all `*`.
pub fn route_table(small_hosts: usize, routes: usize) -> String {
    let mut out = format!(
        "static_resources:\n  listeners:\n  - name: routes\n    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": {HCM}\n          stat_prefix: routes\n          http_filters: [{{name: envoy.filters.http.router, typed_config: {{\"@type\": {ROUTER}}}}}]\n          route_config:\n            name: big\n            virtual_hosts:\n"
    );
    for host in 0..small_hosts {
        let _ = writeln!(
            out,
            "            - name: svc{host}\n              domains: [svc{host}.bench, \"*.svc{host}.example\"]\n              routes:"
        );
        for r in 0..10 {
            let _ = writeln!(
                out,
                "              - match: {{prefix: \"/svc{host}/r{r}/\"}}\n                route: {{cluster: backend}}"
            );
        }
    }
    out.push_str(
        "            - name: big\n              domains: [big.bench]\n              routes:\n",
    );
    for i in 0..routes {
        route(&mut out, i);
    }
    out.push_str(
        "            - name: fallback\n              domains: [\"*\"]\n              routes:\n              - match: {prefix: /}\n                direct_response: {status: 404}\n",
    );
    out.push_str(&cluster("backend", 8080));
    out
}

fn cluster(name: &str, port: u32) -> String {
    format!(
        "  clusters:\n  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
    )
}

/// A large snapshot: `services` HTTP listeners (each with a route table of 5 routes and a retry policy) and
/// `services` clusters of 3 endpoints each, plus one TCP listener per 10 services.
pub fn large_snapshot(services: usize) -> String {
    let mut out = String::from(
        "node: {id: bench, cluster: bench}\nadmin: {address: {socket_address: {address: 127.0.0.1, port_value: 15000}}}\nstatic_resources:\n  listeners:\n",
    );
    for s in 0..services {
        let port = 20000 + s;
        let _ = write!(
            out,
            "  - name: http-{s}\n    address: {{socket_address: {{address: 0.0.0.0, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": {HCM}\n          stat_prefix: http_{s}\n          common_http_protocol_options: {{idle_timeout: 60s}}\n          http_filters: [{{name: envoy.filters.http.router, typed_config: {{\"@type\": {ROUTER}}}}}]\n          route_config:\n            name: routes-{s}\n            virtual_hosts:\n            - name: svc{s}\n              domains: [\"svc{s}.ns.svc.cluster.local\", \"svc{s}\", \"svc{s}.ns\"]\n              retry_policy: {{retry_on: \"5xx,connect-failure\", num_retries: 2}}\n              routes:\n"
        );
        for r in 0..5 {
            let _ = write!(
                out,
                "              - match: {{prefix: \"/api/v{r}/\", headers: [{{name: x-version, present_match: true}}]}}\n                route: {{cluster: svc-{s}, timeout: 15s}}\n"
            );
        }
        if s.is_multiple_of(10) {
            let _ = write!(
                out,
                "  - name: tcp-{s}\n    address: {{socket_address: {{address: 0.0.0.0, port_value: {}}}}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: tcp_{s}\n          cluster: svc-{s}\n",
                30000 + s
            );
        }
    }
    out.push_str("  clusters:\n");
    for s in 0..services {
        let _ = write!(
            out,
            "  - name: svc-{s}\n    type: STATIC\n    connect_timeout: 1s\n    lb_policy: LEAST_REQUEST\n    circuit_breakers: {{thresholds: [{{max_connections: 1024, max_pending_requests: 1024}}]}}\n    load_assignment:\n      cluster_name: svc-{s}\n      endpoints:\n      - lb_endpoints:\n"
        );
        for e in 0..3 {
            let _ = writeln!(
                out,
                "        - endpoint: {{address: {{socket_address: {{address: 10.{}.{}.{e}, port_value: 8080}}}}}}",
                s / 250,
                s % 250
            );
        }
    }
    out
}

fn u16_be(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
}

/// A TLS 1.3-style ClientHello record with SNI, ALPN, supported_versions and padding to about 512 bytes, the
/// size of a browser's or Envoy's.
pub fn client_hello(server_name: &str, alpn: &[&str]) -> Vec<u8> {
    let mut extensions = Vec::new();
    // server_name: list of one host_name.
    let name = server_name.as_bytes();
    extensions.extend_from_slice(&[0x00, 0x00]);
    u16_be(&mut extensions, name.len() + 5);
    u16_be(&mut extensions, name.len() + 3);
    extensions.push(0);
    u16_be(&mut extensions, name.len());
    extensions.extend_from_slice(name);
    // application_layer_protocol_negotiation.
    let list: Vec<u8> = alpn
        .iter()
        .flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes()))
        .collect();
    extensions.extend_from_slice(&[0x00, 0x10]);
    u16_be(&mut extensions, list.len() + 2);
    u16_be(&mut extensions, list.len());
    extensions.extend_from_slice(&list);
    // supported_versions: TLS 1.3, 1.2.
    extensions.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|i| i.wrapping_mul(7)));
    body.push(32);
    body.extend((0..32u8).map(|i| i.wrapping_mul(13)));
    let suites: [u16; 5] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f];
    u16_be(&mut body, suites.len() * 2);
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    // padding (RFC 7685) so the hello is about 512 bytes.
    let so_far = body.len() + 2 + extensions.len() + 4;
    let pad = 508usize.saturating_sub(so_far + 4);
    extensions.extend_from_slice(&[0x00, 0x15]);
    u16_be(&mut extensions, pad);
    extensions.extend(std::iter::repeat_n(0u8, pad));
    u16_be(&mut body, extensions.len());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    u16_be(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    record
}
