//! Access log entries read from YAML into the model, and the problems Envoy's users would meet.

use crate::model::access_log::{Command, ComparisonOp, Filter, Format, JsonValue, Piece, Sink};
use crate::model::listener::NetworkFilter;
use crate::{Format as Input, load_bytes};

/// A listener whose connection manager has `logs` as its `access_log` (YAML flow sequence).
fn config(logs: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          access_log: {logs}
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: c}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: c
    load_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]}}
"#
    )
}

fn logs(yaml_logs: &str) -> Vec<crate::model::access_log::AccessLog> {
    let loaded = match load_bytes(config(yaml_logs).as_bytes(), Input::Yaml) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("refused: {problems:#?}"),
    };
    assert!(
        loaded.warnings.is_empty(),
        "no warning for access logs: {:?}",
        loaded.warnings
    );
    let listener = &loaded.snapshot.listeners[0];
    match &listener.filter_chains[0].filters[0] {
        NetworkFilter::HttpConnectionManager(hcm) => hcm.access_log.clone(),
        other => panic!("{other:?}"),
    }
}

fn refused(yaml_logs: &str) -> String {
    match load_bytes(config(yaml_logs).as_bytes(), Input::Yaml) {
        Ok(_) => panic!("accepted: {yaml_logs}"),
        Err(problems) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

const FILE: &str = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

#[test]
fn formats_and_filters_are_read_like_envoy() {
    let read = logs(&format!(
        r#"[
        {{name: envoy.access_loggers.file, typed_config: {{"@type": "{FILE}", path: /tmp/a.log}}}},
        {{name: legacy, typed_config: {{"@type": "{FILE}", path: /tmp/b.log, format: "%PROTOCOL% %REQ(:PATH):3%\n"}}}},
        {{name: old_text, typed_config: {{"@type": "{FILE}", path: /tmp/c.log, log_format: {{text_format: "%RESPONSE_CODE%"}}}}}},
        {{name: json, typed_config: {{"@type": "{FILE}", path: /tmp/d.log,
          log_format: {{json_format: {{code: "%RESPONSE_CODE%", text: "c=%RESPONSE_CODE%", n: 5, inner: {{p: "%PROTOCOL%"}}}}}}}}}},
        {{name: filtered, typed_config: {{"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"}},
          filter: {{or_filter: {{filters: [
            {{duration_filter: {{comparison: {{op: GE, value: {{default_value: 100, runtime_key: k}}}}}}}},
            {{runtime_filter: {{runtime_key: r, percent_sampled: {{numerator: 5, denominator: TEN_THOUSAND}}, use_independent_randomness: true}}}}
          ]}}}}}}
    ]"#
    ));
    assert_eq!(read.len(), 5);
    assert_eq!(read[0].sink, Sink::File("/tmp/a.log".into()));
    // No format: Envoy's default, ending in a newline.
    let Format::Text(default) = &read[0].format else {
        panic!("{:?}", read[0].format)
    };
    assert_eq!(default.len(), 31);
    assert_eq!(default.last(), Some(&Piece::Text("\"\n".into())));
    let Format::Text(legacy) = &read[1].format else {
        panic!()
    };
    assert!(
        matches!(&legacy[2], Piece::Operator(o) if o.max_length == Some(3)
        && o.command == Command::Req { name: ":path".into(), alternative: None })
    );
    assert!(matches!(&read[2].format, Format::Text(p) if p.len() == 1));
    let Format::Json(json) = &read[3].format else {
        panic!()
    };
    let keys: Vec<&str> = json.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["code", "inner", "n", "text"]);
    assert!(matches!(&json[1].1, JsonValue::Object(inner) if inner.len() == 1));
    assert!(matches!(&json[2].1, JsonValue::Literal(n) if n.as_f64() == Some(5.0)));
    assert_eq!(read[4].sink, Sink::Stderr);
    let Some(Filter::Or(filters)) = &read[4].filter else {
        panic!("{:?}", read[4].filter)
    };
    assert!(
        matches!(&filters[0], Filter::Duration(c) if c.op == ComparisonOp::Ge && c.value == 100)
    );
    assert_eq!(
        filters[1],
        Filter::Runtime {
            numerator: 5,
            denominator: 10_000,
            independent: true
        }
    );
}

#[test]
fn operators_outrigger_lacks_are_refused_with_their_path() {
    let e = refused(&format!(
        r#"[{{name: f, typed_config: {{"@type": "{FILE}", path: /tmp/a.log, log_format: {{text_format_source: {{inline_string: "%FILTER_STATE(x)%"}}}}}}}}]"#
    ));
    assert!(e.contains("%FILTER_STATE%"), "{e}");
    assert!(
        e.contains("access_log[0].typed_config.log_format.text_format_source.inline_string"),
        "{e}"
    );
    let e = refused(&format!(
        r#"[{{name: f, typed_config: {{"@type": "{FILE}", path: /tmp/a.log}}, filter: {{header_filter: {{header: {{name: x}}}}}}}}]"#
    ));
    assert!(e.contains("header_filter"), "{e}");
}

/// An operator filled only in part is said at load time, never silently `-`; `%UPSTREAM_LOCAL_ADDRESS%` is
/// filled everywhere.
#[test]
fn operators_not_filled_yet_are_warned() {
    let yaml = config(
        r#"[{name: envoy.access_loggers.stdout, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog, log_format: {json_format: {local: "%UPSTREAM_LOCAL_ADDRESS%", why: "%UPSTREAM_TRANSPORT_FAILURE_REASON%", host: "%UPSTREAM_HOST%"}}}}]"#,
    );
    let loaded = match load_bytes(yaml.as_bytes(), Input::Yaml) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("refused: {problems:#?}"),
    };
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("json_format.why")
            && warnings[0].contains("%UPSTREAM_TRANSPORT_FAILURE_REASON%")
            && warnings[0].contains("TLS handshake"),
        "{warnings:#?}"
    );
}
