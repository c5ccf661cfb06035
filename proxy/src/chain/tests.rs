use super::*;
use outrigger_config::{Format, load_bytes};

fn listener(chains: &str) -> Listener {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 0.0.0.0, port_value: 15001}}}}
    filter_chains: {chains}
    default_filter_chain: {{name: default, filters: []}}
"#
    );
    load_bytes(yaml.as_bytes(), Format::Yaml)
        .unwrap()
        .snapshot
        .listeners
        .remove(0)
}

fn facts(destination: &str, sni: Option<&str>, alpn: &[&str]) -> ConnectionFacts {
    ConnectionFacts {
        source: Some("198.18.0.2:40000".parse().unwrap()),
        destination: Some(destination.parse().unwrap()),
        transport_protocol: if sni.is_some() {
            "tls".into()
        } else {
            "raw_buffer".into()
        },
        server_name: sni.map(str::to_string),
        application_protocols: alpn.iter().map(|s| s.to_string()).collect(),
    }
}

fn chosen(l: &Listener, f: &ConnectionFacts) -> String {
    select(l, f).map(|c| c.name.clone()).unwrap_or_default()
}

#[test]
fn port_beats_protocol_and_default_catches_the_rest() {
    let l = listener(
        r#"[
      {name: mysql, filter_chain_match: {destination_port: 3306}, filters: []},
      {name: http, filter_chain_match: {application_protocols: ["http/1.1", "h2c"]}, filters: []}]"#,
    );
    assert_eq!(
        chosen(&l, &facts("198.18.0.9:3306", None, &["http/1.1"])),
        "mysql"
    );
    assert_eq!(
        chosen(&l, &facts("198.18.0.9:8080", None, &["h2c"])),
        "http"
    );
    assert_eq!(chosen(&l, &facts("198.18.0.9:8080", None, &[])), "default");
    assert!(!needs_detection(
        &l,
        Some("198.18.0.9:3306".parse().unwrap())
    ));
    assert!(needs_detection(
        &l,
        Some("198.18.0.9:8080".parse().unwrap())
    ));
}

#[test]
fn longest_prefix_and_exact_server_name_win() {
    let l = listener(
        r#"[
      {name: wide, filter_chain_match: {prefix_ranges: [{address_prefix: 198.18.0.0, prefix_len: 15}]}, filters: []},
      {name: narrow, filter_chain_match: {prefix_ranges: [{address_prefix: 198.18.0.0, prefix_len: 24}]}, filters: []}]"#,
    );
    assert_eq!(chosen(&l, &facts("198.18.0.9:80", None, &[])), "narrow");
    assert_eq!(chosen(&l, &facts("198.19.0.9:80", None, &[])), "wide");
    let l = listener(
        r#"[
      {name: wildcard, filter_chain_match: {server_names: ["*.svc.cluster.local"], transport_protocol: tls}, filters: []},
      {name: exact, filter_chain_match: {server_names: ["api.svc.cluster.local"], transport_protocol: tls}, filters: []}]"#,
    );
    assert_eq!(
        chosen(
            &l,
            &facts("198.18.0.9:443", Some("api.svc.cluster.local"), &[])
        ),
        "exact"
    );
    assert_eq!(
        chosen(
            &l,
            &facts("198.18.0.9:443", Some("web.svc.cluster.local"), &[])
        ),
        "wildcard"
    );
    assert_eq!(
        chosen(&l, &facts("198.18.0.9:443", Some("example.com"), &[])),
        "default"
    );
}
