//! `envoy.tracers.datadog` beside real Envoy 1.40: the same configuration and requests through both, each with
//! a fake agent of its own (`datadog_agent.rs`) and a backend that echoes the headers it got. Compared: the
//! propagation headers the backend receives (ids masked), a Datadog or W3C context continued, the sampling
//! priority (Envoy's decision, then the agent's rates), and the spans the agent receives.

use super::support::backend::Backend;
use super::support::client::get;
use super::support::envoy::Envoy;
use super::support::sidecar::Sidecar;
use super::support::tcp::free_port;
use super::{dir, seen};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[path = "datadog_agent.rs"]
mod agent;

use agent::{Agent, DdSpan, Upload};

/// The agent's answer: traces of the service `dd-zero` are kept at rate 0, the others at 1.
const RATES: &str = r#"{"rate_by_service":{"service:dd-zero,env:":0,"service:,env:":1}}"#;

/// The headers a Datadog tracer reads and writes.
const PROPAGATION: [&str; 7] = [
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-datadog-origin",
    "x-datadog-tags",
    "traceparent",
    "tracestate",
];

/// Meta whose values differ by nature between two proxies (tracer identity, request ids, time in the id, the
/// size of the backend's echo of them).
const VOLATILE_META: [&str; 6] = [
    "response_size",
    "guid:x-request-id",
    "runtime-id",
    "version",
    "language",
    "_dd.p.tid",
];

struct Ports {
    admin: u16,
    /// Egress, 100 %; ingress at `random_sampling` 0; egress for the service `dd-zero`.
    traced: u16,
    unsampled: u16,
    zero: u16,
}

fn listener(name: &str, port: u16, direction: &str, service: &str, extra: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    traffic_direction: {direction}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          generate_request_id: true
          tracing:
            {extra}
            provider:
              name: envoy.tracers.datadog
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.DatadogConfig
                collector_cluster: datadog_agent
                service_name: {service}
                collector_hostname: agent.example:8126
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {{match: {{prefix: /}}, route: {{cluster: next}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}"#
    )
}

fn config(p: &Ports, next: u16, agent: u16) -> String {
    format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
node: {{id: dd-node, cluster: dd-cluster}}
static_resources:
  listeners:{l1}{l2}{l3}
  clusters:
  - name: next
    connect_timeout: 1s
    load_assignment: {{cluster_name: next, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {next}}}}}}}}}]}}]}}
  - name: datadog_agent
    connect_timeout: 1s
    load_assignment: {{cluster_name: datadog_agent, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {agent}}}}}}}}}]}}]}}
"#,
        admin = p.admin,
        l1 = listener("traced", p.traced, "OUTBOUND", "dd-demo", ""),
        l2 = listener(
            "unsampled",
            p.unsampled,
            "INBOUND",
            "dd-demo",
            "random_sampling: {value: 0}"
        ),
        l3 = listener("zero", p.zero, "OUTBOUND", "dd-zero", ""),
    )
}

/// What one proxy did: per request path, the propagation headers the backend saw and the request's span.
struct Outcome {
    headers: BTreeMap<String, BTreeMap<String, String>>,
    spans: BTreeMap<String, DdSpan>,
    uploads: Vec<Upload>,
    /// `tracing.datadog.reports_sent` once every span has arrived.
    reports_sent: u64,
}

/// A request: the listener it goes to, its path, the headers sent.
type Request = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The requests, by listener.
fn requests() -> Vec<Request> {
    vec![
        ("traced", "/fresh", vec![]),
        ("traced", "/status/500", vec![]),
        (
            "traced",
            "/continued",
            vec![
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-parent-id", "5678"),
                ("x-datadog-sampling-priority", "1"),
                ("x-datadog-origin", "synthetics"),
                ("x-datadog-tags", "_dd.p.dm=-4"),
            ],
        ),
        (
            "traced",
            "/w3c",
            vec![
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("tracestate", "dd=s:2;o:rum;t.dm:-3,congo=t61rcWkgMzE"),
            ],
        ),
        (
            "traced",
            "/dropped",
            vec![
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-parent-id", "5678"),
                ("x-datadog-sampling-priority", "0"),
            ],
        ),
        // Unusable Datadog headers start a new trace, a W3C context beside them or not; a trace id without a
        // parent is continued only with an origin.
        (
            "traced",
            "/invalid",
            vec![
                ("x-datadog-trace-id", "abc"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            ],
        ),
        (
            "traced",
            "/no-parent",
            vec![
                ("x-datadog-trace-id", "99"),
                ("x-datadog-sampling-priority", "2"),
            ],
        ),
        (
            "traced",
            "/origin-only",
            vec![
                ("x-datadog-trace-id", "99"),
                ("x-datadog-origin", "synthetics"),
            ],
        ),
        ("unsampled", "/unsampled", vec![]),
        // The caller's priority stands even where Envoy's own decision does not trace.
        (
            "unsampled",
            "/unsampled-continued",
            vec![
                ("x-datadog-trace-id", "1234"),
                ("x-datadog-parent-id", "5678"),
                ("x-datadog-sampling-priority", "1"),
            ],
        ),
        ("zero", "/zero-first", vec![]),
    ]
}

async fn run(envoy: Option<&Path>, name: &str) -> Outcome {
    let backend = Backend::start("dd").await;
    let agent = Agent::start(RATES).await;
    let p = Ports {
        admin: free_port(),
        traced: free_port(),
        unsampled: free_port(),
        zero: free_port(),
    };
    let yaml = config(&p, backend.address.port(), agent.address.port());
    let dir = dir(&format!("datadog-{name}"));
    let (_envoy, _outrigger) = match envoy {
        Some(binary) => {
            let path = dir.join("envoy.yaml");
            std::fs::write(&path, &yaml).unwrap();
            let mut envoy = Envoy::start(binary, &path);
            for port in [p.traced, p.unsampled, p.zero] {
                envoy.wait_for_port(port);
            }
            (Some(envoy), None)
        }
        None => (
            None,
            Some(Sidecar::start(&dir, "outrigger", &yaml, p.admin)),
        ),
    };
    let port = |listener: &str| match listener {
        "traced" => p.traced,
        "unsampled" => p.unsampled,
        _ => p.zero,
    };
    let mut headers = BTreeMap::new();
    let mut record = |path: &str, reply: &super::support::client::Reply| {
        let seen: BTreeMap<String, String> = PROPAGATION
            .iter()
            .filter_map(|h| seen(reply, h).map(|v| (h.to_string(), v)))
            .collect();
        headers.insert(path.to_string(), seen);
    };
    for (listener, path, sent) in requests() {
        let url = format!("http://127.0.0.1:{}{path}", port(listener));
        let reply = get(&url, &sent).await;
        record(path, &reply);
    }
    // The agent's rates reach the tracer with the answer to its first upload; the next trace of `dd-zero`
    // is decided by them.
    let first = agent.wait_for(requests().len()).await;
    assert_eq!(first.len(), requests().len(), "{name}: {first:#?}");
    // The agent keeps a body before it answers; give the tracer a moment to read the answer.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let url = format!("http://127.0.0.1:{}/zero-after", p.zero);
    let reply = get(&url, &[]).await;
    record("/zero-after", &reply);
    let all = agent.wait_for(requests().len() + 1).await;
    // The listeners' ports differ between the two runs: written `:<port>` where they appear.
    let ports = [p.traced, p.unsampled, p.zero].map(|port| format!(":{port}"));
    let unport = |text: &mut String| {
        for port in &ports {
            *text = text.replace(port.as_str(), ":<port>");
        }
    };
    let spans: BTreeMap<String, DdSpan> = all
        .into_iter()
        .map(|mut s| {
            unport(&mut s.resource);
            s.meta.values_mut().for_each(unport);
            let url = s.meta.get("http.url").cloned().unwrap_or_default();
            let path = url.splitn(4, '/').nth(3).unwrap_or("");
            (format!("/{path}"), s)
        })
        .collect();
    // Counted once the tracer has read the agent's answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    Outcome {
        headers,
        spans,
        uploads: agent.uploads(),
        reports_sent: super::support::sidecar::stat(p.admin, "tracing.datadog.reports_sent"),
    }
}

/// Ids masked: a run of 16 or more hex digits is `<hex>`, of 6 or more decimal digits `<id>`.
fn mask(value: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.len() >= 16 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("<hex>");
        } else if token.len() >= 6 && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("<id>");
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in value.chars() {
        if "-,;:=".contains(c) {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

fn masked(h: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    h.iter().map(|(k, v)| (k.clone(), mask(v))).collect()
}

/// What must hold for either proxy, from the ids it wrote and sent.
fn check_relations(name: &str, o: &Outcome) {
    let h = |path: &str, header: &str| -> String {
        o.headers[path]
            .get(header)
            .unwrap_or_else(|| panic!("{name} {path}: no {header}: {:?}", o.headers[path]))
            .clone()
    };
    let span = |path: &str| {
        o.spans
            .get(path)
            .unwrap_or_else(|| panic!("{name}: no span for {path}: {:#?}", o.spans))
    };
    // A new trace: the root span's id is the trace id's low half, and what the backend sees as its parent.
    let fresh = span("/fresh");
    assert_eq!(
        h("/fresh", "x-datadog-trace-id"),
        fresh.trace_id.to_string()
    );
    assert_eq!(
        h("/fresh", "x-datadog-parent-id"),
        fresh.span_id.to_string()
    );
    assert_eq!(fresh.trace_id, fresh.span_id, "{name}");
    assert_eq!(fresh.parent_id, 0, "{name}");
    let traceparent = h("/fresh", "traceparent");
    assert!(
        traceparent.contains(&format!(
            "{:016x}-{:016x}-01",
            fresh.trace_id, fresh.span_id
        )),
        "{name}: {traceparent}"
    );
    // A Datadog context continued: same trace, the caller's span as parent, ours passed on.
    let continued = span("/continued");
    assert_eq!(
        (continued.trace_id, continued.parent_id),
        (1234, 5678),
        "{name}"
    );
    assert_eq!(
        h("/continued", "x-datadog-parent-id"),
        continued.span_id.to_string()
    );
    let origin_only = span("/origin-only");
    assert_eq!(
        (origin_only.trace_id, origin_only.parent_id),
        (99, 0),
        "{name}"
    );
    for path in ["/invalid", "/no-parent"] {
        let s = span(path);
        assert_eq!((s.trace_id, s.parent_id), (s.span_id, 0), "{name} {path}");
    }
    // A W3C context continued.
    let w3c = span("/w3c");
    assert_eq!(w3c.trace_id, 0x8448eb211c80319c, "{name}");
    assert_eq!(w3c.parent_id, 0xb7ad6b7169203331, "{name}");
    assert_eq!(h("/w3c", "x-datadog-parent-id"), w3c.span_id.to_string());
    // Errors: a 5xx is an error span.
    for (path, s) in &o.spans {
        let want = i64::from(path.starts_with("/status/500"));
        assert_eq!(s.error, want, "{name} {path}");
    }
    assert_eq!(o.reports_sent, o.uploads.len() as u64, "{name}");
    // Every upload: POST /v0.4/traces, msgpack, the Host asked for, a count of the chunks it holds.
    for u in &o.uploads {
        assert_eq!(
            (u.method.as_str(), u.path.as_str()),
            ("POST", "/v0.4/traces")
        );
        assert_eq!(u.headers["content-type"], "application/msgpack", "{name}");
        assert_eq!(u.headers["host"], "agent.example:8126", "{name}");
        assert_eq!(
            u.headers["x-datadog-trace-count"],
            u.chunks.to_string(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_tracer_like_envoy() {
    let Some(envoy) = super::support::peer("envoy") else {
        return;
    };
    let (theirs, ours) = tokio::join!(run(Some(&envoy), "envoy"), run(None, "outrigger"));
    for (name, o) in [("envoy", &theirs), ("outrigger", &ours)] {
        check_relations(name, o);
    }
    // The headers the backend saw, ids masked: the same set and shapes.
    for (path, seen) in &theirs.headers {
        assert_eq!(
            masked(&ours.headers[path]),
            masked(seen),
            "{path}: Outrigger {:?}, Envoy {seen:?}",
            ours.headers[path]
        );
    }
    // Priorities as Envoy decides them: its own decision (-1 at 0 % random sampling), the caller's, the
    // agent's rate (1 before the first upload is answered, then 0 for `dd-zero`).
    let priorities: BTreeMap<&str, &str> = ours
        .headers
        .iter()
        .map(|(p, h)| (p.as_str(), h["x-datadog-sampling-priority"].as_str()))
        .collect();
    assert_eq!(
        priorities,
        BTreeMap::from([
            ("/continued", "1"),
            ("/dropped", "0"),
            ("/fresh", "1"),
            ("/invalid", "1"),
            ("/no-parent", "1"),
            ("/origin-only", "1"),
            ("/status/500", "1"),
            ("/unsampled", "-1"),
            ("/unsampled-continued", "1"),
            ("/w3c", "2"),
            ("/zero-after", "0"),
            ("/zero-first", "1"),
        ])
    );
    // The spans: one per request whatever its priority, named, typed and tagged alike.
    assert_eq!(
        ours.spans.keys().collect::<Vec<_>>(),
        theirs.spans.keys().collect::<Vec<_>>()
    );
    for (path, t) in &theirs.spans {
        let o = &ours.spans[path];
        let what = format!("{path}: Outrigger {o:#?}\nEnvoy {t:#?}");
        assert_eq!(
            (&o.service, &o.name, &o.resource, &o.kind, o.error),
            (&t.service, &t.name, &t.resource, &t.kind, t.error),
            "{what}"
        );
        assert_eq!(
            o.meta.keys().collect::<BTreeSet<_>>(),
            t.meta.keys().collect::<BTreeSet<_>>(),
            "{what}"
        );
        for (k, v) in &t.meta {
            if !VOLATILE_META.contains(&k.as_str()) {
                assert_eq!(&o.meta[k], v, "meta {k}: {what}");
            }
        }
        assert_eq!(
            o.metrics.keys().collect::<BTreeSet<_>>(),
            t.metrics.keys().collect::<BTreeSet<_>>(),
            "{what}"
        );
        for (k, v) in &t.metrics {
            if k != "process_id" {
                assert_eq!(o.metrics[k], *v, "metric {k}: {what}");
            }
        }
        assert!(o.duration > 0 && o.start > 0, "{what}");
    }
}

/// Spans still queued when SIGTERM comes are sent to the agent before the process exits (Envoy's tracer flushes
/// on shutdown too); the 2 s upload period has not come by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_spans_queued_at_sigterm_are_sent() {
    let backend = Backend::start("dd").await;
    let agent = Agent::start(RATES).await;
    let p = Ports {
        admin: free_port(),
        traced: free_port(),
        unsampled: free_port(),
        zero: free_port(),
    };
    let yaml = config(&p, backend.address.port(), agent.address.port());
    let mut outrigger = Sidecar::start(&dir("datadog-sigterm"), "outrigger", &yaml, p.admin);
    let reply = get(&format!("http://127.0.0.1:{}/last", p.traced), &[]).await;
    assert_eq!(reply.status, 200);
    outrigger.terminate();
    assert!(
        outrigger
            .wait_exit(std::time::Duration::from_secs(10))
            .is_some(),
        "outrigger did not exit"
    );
    assert!(agent.uploads().len() == 1, "{:?}", agent.uploads());
    let spans = agent.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert!(spans[0].meta["http.url"].ends_with("/last"), "{spans:#?}");
}
