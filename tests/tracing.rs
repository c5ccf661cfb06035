//! Distributed tracing (the HCM `tracing` block) with real collectors and real Envoy 1.40:
//! - spans as Envoy names and tags them, their kinds and parents, read back exactly from our OTLP receiver;
//! - one trace across Envoy (in front, its OpenTelemetry tracer) and Outrigger behind it, W3C and B3 (Envoy's
//!   Zipkin tracer), the backend seeing Outrigger's span as its parent; Envoy's span and ours carry the same
//!   tag names;
//! - sampling at 0 %: the same requests through Envoy and Outrigger trace the same ones and propagate the same
//!   decision;
//! - a collector that is down costs no request, and spans still queued at SIGTERM are exported before exit;
//! - the Datadog tracer beside Envoy 1.40 (`tracing/datadog.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tracing/datadog.rs"]
mod datadog;
#[path = "tracing/receivers.rs"]
mod receivers;
#[path = "tracing/skywalking.rs"]
mod skywalking;
mod support;

use receivers::{OtlpReceiver, Span, ZipkinReceiver};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::get;
use support::envoy::Envoy;
use support::sidecar::Sidecar;
use support::tcp::free_port;

/// Our exporter's flush interval in these tests (Envoy's: its runtime keys, in `ENVOY_RUNTIME`).
const FAST_FLUSH: (&str, &str) = ("OUTRIGGER_TRACING_FLUSH_INTERVAL_MS", "100");

/// Envoy flushes spans every 5 s or at 5 spans by default; its runtime makes it flush at once.
const ENVOY_RUNTIME: &str = r#"
layered_runtime:
  layers:
  - name: static
    static_layer:
      tracing.opentelemetry.flush_interval_ms: 100
      tracing.opentelemetry.min_flush_spans: 1
      tracing.zipkin.flush_interval_ms: 100
      tracing.zipkin.min_flush_spans: 1
"#;

/// One listener with a connection manager whose `tracing` block is `{tracing}`, routing everything to the
/// cluster `next`; `otel` and `zipkin` are the collectors.
const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
node: {id: {node}, cluster: {node}-cluster, locality: {zone: zone-1}}
static_resources:
  listeners:
  - name: {direction}
    address: {socket_address: {address: 127.0.0.1, port_value: {port}}}
    traffic_direction: {direction}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: traced
          tracing: {tracing}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              # Retried (`x-retry` set): the backend's `/status/503` every time, a per-try timeout on `/slow/`,
              # and a cluster nothing listens on.
              - {match: {prefix: /status/, headers: [{name: x-retry, present_match: true}]}, route: {cluster: next, retry_policy: {retry_on: 5xx, num_retries: 2}}}
              - {match: {prefix: /slow/, headers: [{name: x-retry, present_match: true}]}, route: {cluster: next, retry_policy: {retry_on: 5xx, num_retries: 1, per_try_timeout: 0.1s}}}
              - {match: {prefix: /dead}, route: {cluster: dead, retry_policy: {retry_on: connect-failure, num_retries: 2}}}
              - {match: {prefix: /decorated}, route: {cluster: next}, decorator: {operation: decorated-op}}
              - {match: {prefix: /quiet}, route: {cluster: next}, decorator: {operation: quiet-op, propagate: false}}
              - {match: {prefix: /}, route: {cluster: next}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: next
    connect_timeout: 1s
    load_assignment: {cluster_name: next, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {next}}}}}]}]}
  - name: dead
    connect_timeout: 1s
    load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
  - name: otel
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: otel, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {otel}}}}}]}]}
  - name: zipkin
    connect_timeout: 1s
    load_assignment: {cluster_name: zipkin, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {zipkin}}}}}]}]}
"#;

fn otel_tracing(service: &str, extra: &str) -> String {
    format!(
        "{{{extra} provider: {{name: envoy.tracers.opentelemetry, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, grpc_service: {{envoy_grpc: \
         {{cluster_name: otel}}}}, service_name: {service}}}}}}}"
    )
}

fn zipkin_tracing(extra: &str, zipkin_extra: &str) -> String {
    format!(
        "{{{extra} provider: {{name: envoy.tracers.zipkin, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: zipkin, \
         collector_endpoint: /api/v2/spans, collector_endpoint_version: HTTP_JSON{zipkin_extra}}}}}}}"
    )
}

struct Listener {
    admin: u16,
    port: u16,
}

fn listener() -> Listener {
    Listener {
        admin: free_port(),
        port: free_port(),
    }
}

#[allow(clippy::too_many_arguments)]
fn config(
    l: &Listener,
    node: &str,
    direction: &str,
    tracing: &str,
    next: u16,
    otel: u16,
    zipkin: u16,
) -> String {
    CONFIG
        .replace("{admin}", &l.admin.to_string())
        .replace("{port}", &l.port.to_string())
        .replace("{node}", node)
        .replace("{direction}", direction)
        .replace("{tracing}", tracing)
        .replace("{next}", &next.to_string())
        .replace("{otel}", &otel.to_string())
        .replace("{zipkin}", &zipkin.to_string())
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outrigger-tracing-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start_envoy(envoy: &Path, dir: &Path, config: &str, port: u16) -> Envoy {
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, format!("{config}{ENVOY_RUNTIME}")).unwrap();
    let mut envoy = Envoy::start(envoy, &path);
    envoy.wait_for_port(port);
    envoy
}

fn url(l: &Listener, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", l.port)
}

/// The headers the backend received, from its JSON answer.
fn seen(reply: &support::client::Reply, name: &str) -> Option<String> {
    reply.json()["headers"][name].as_str().map(String::from)
}

/// `00-<trace>-<parent>-<flags>` -> (trace, parent, flags).
fn traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn one<'a>(spans: &'a [Span], what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "{what}: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_named_tagged_and_parented_like_envoys() {
    let backend = Backend::start("b").await;
    let receiver = OtlpReceiver::start().await;
    let dir = dir("tags");
    let tags = "max_path_tag_length: 12, custom_tags: [{tag: team, literal: {value: payments}}, \
                {tag: from-env, environment: {name: OUTRIGGER_TRACING_TEST_UNSET, default_value: none}}, \
                {tag: set-env, environment: {name: OUTRIGGER_TRACING_TEST_SET}}, \
                {tag: tenant, request_header: {name: x-tenant, default_value: unknown}}],";
    let ingress = listener();
    let _ingress = Sidecar::start_with_env(
        &dir,
        "ingress",
        &config(
            &ingress,
            "node-a",
            "INBOUND",
            &otel_tracing("outrigger-in", tags),
            backend.address.port(),
            receiver.address.port(),
            1,
        ),
        ingress.admin,
        &[FAST_FLUSH, ("OUTRIGGER_TRACING_TEST_SET", "from-process")],
    );
    assert!(
        !_ingress.log_text().contains("WARN"),
        "no warning for tracing:\n{}",
        _ingress.log_text()
    );
    let egress = listener();
    let _egress = Sidecar::start_with_env(
        &dir,
        "egress",
        &config(
            &egress,
            "node-b",
            "OUTBOUND",
            &otel_tracing("outrigger-out", "spawn_upstream_span: true,"),
            backend.address.port(),
            receiver.address.port(),
            1,
        ),
        egress.admin,
        &[FAST_FLUSH],
    );

    // An incoming sampled context: our span continues it, and the backend sees our span as its parent.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let reply = get(
        &url(&ingress, "/ok/a/long/path?q=1"),
        &[
            ("traceparent", &format!("00-{trace}-{caller}-01")),
            ("tracestate", "vendor=x"),
            ("x-tenant", "acme"),
            ("host", "svc.test"),
            ("x-request-id", "0000270f-aaaa-4bbb-8ccc-000000000001"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    let (seen_trace, seen_parent, flags) = traceparent(&seen(&reply, "traceparent").unwrap());
    assert_eq!((seen_trace.as_str(), flags.as_str()), (trace, "01"));
    assert_eq!(seen(&reply, "tracestate").as_deref(), Some("vendor=x"));
    // The decision (100 % random sampling) is packed into the request id the backend sees.
    assert_eq!(
        seen(&reply, "x-request-id").as_deref(),
        Some("0000270f-aaaa-9bbb-8ccc-000000000001")
    );
    // A 5xx marks the span as an error.
    let failed = get(&url(&ingress, "/status/503"), &[("host", "svc.test")]).await;
    assert_eq!(failed.status, 503);
    // Egress with spawn_upstream_span: a CLIENT span for the request, and a CLIENT child for the upstream call
    // whose id the backend sees.
    let out = get(&url(&egress, "/out"), &[("host", "svc.test")]).await;
    assert_eq!(out.status, 200);
    let (out_trace, out_parent, _) = traceparent(&seen(&out, "traceparent").unwrap());

    let spans = receiver.wait_for(4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    // Counted once the collector has answered (`tracing.opentelemetry.spans_sent`).
    let sent = |s: &Sidecar| s.metric("envoy_tracing_opentelemetry_spans_sent_total", &[]);
    let started = Instant::now();
    while (sent(&_ingress), sent(&_egress)) != (2, 2) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "spans_sent: {}, {}",
            sent(&_ingress),
            sent(&_egress)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ok = one(&spans, "the /ok span", |s| {
        s.attributes
            .get("http.url")
            .is_some_and(|u| u.contains("/ok"))
    });
    assert_eq!(ok.service, "outrigger-in");
    assert_eq!(ok.name, "ingress");
    assert_eq!(ok.kind, 2, "SERVER");
    assert_eq!(ok.trace_id, trace);
    assert_eq!(ok.parent_id, caller);
    assert_eq!(ok.span_id, seen_parent);
    let a = &ok.attributes;
    let expect = [
        ("component", "proxy"),
        ("node_id", "node-a"),
        ("zone", "zone-1"),
        ("http.method", "GET"),
        // max_path_tag_length: 12 characters of the path.
        ("http.url", "http://svc.test/ok/a/long/p"),
        ("http.protocol", "HTTP/1.1"),
        ("http.status_code", "200"),
        ("upstream_cluster", "next"),
        ("response_flags", "-"),
        ("peer.address", "127.0.0.1"),
        ("guid:x-request-id", "0000270f-aaaa-9bbb-8ccc-000000000001"),
        ("team", "payments"),
        ("from-env", "none"),
        ("set-env", "from-process"),
        ("tenant", "acme"),
    ];
    for (k, v) in expect {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k} in {a:#?}");
    }
    assert!(!a.contains_key("error") && !ok.error_status);
    let failed = one(&spans, "the 503 span", |s| {
        s.attributes.get("http.status_code").map(String::as_str) == Some("503")
    });
    assert_eq!(
        failed.attributes.get("error").map(String::as_str),
        Some("true")
    );
    assert!(failed.error_status);
    // No x-tenant header: the tag's default.
    assert_eq!(
        failed.attributes.get("tenant").map(String::as_str),
        Some("unknown")
    );
    assert!(failed.parent_id.is_empty(), "a new trace has no parent");

    let request = one(&spans, "the egress span", |s| s.name == "egress svc.test");
    assert_eq!(
        request.kind, 2,
        "with an upstream span of its own, the hop's span is SERVER"
    );
    let upstream = one(&spans, "the upstream span", |s| {
        s.name == "router next egress"
    });
    assert_eq!(upstream.kind, 3);
    assert_eq!(upstream.parent_id, request.span_id);
    assert_eq!(upstream.trace_id, out_trace);
    assert_eq!(
        upstream.span_id, out_parent,
        "the backend's parent is the upstream span"
    );
    assert_eq!(upstream.service, "outrigger-out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_w3c_trace_across_envoy_and_outrigger() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let receiver = OtlpReceiver::start().await;
    let dir = dir("w3c");
    let ours = listener();
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &config(
            &ours,
            "ours",
            "INBOUND",
            &otel_tracing("outrigger", ""),
            backend.address.port(),
            receiver.address.port(),
            1,
        ),
        ours.admin,
        &[FAST_FLUSH],
    );
    let front = listener();
    let _envoy = start_envoy(
        &envoy,
        &dir,
        &config(
            &front,
            "front",
            "INBOUND",
            &otel_tracing("envoy", ""),
            ours.port,
            receiver.address.port(),
            1,
        ),
        front.port,
    );
    let reply = get(&url(&front, "/through"), &[("host", "svc.test")]).await;
    assert_eq!(reply.status, 200);
    let spans = receiver.wait_for(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let theirs = one(&spans, "Envoy's span", |s| s.service == "envoy");
    let mine = one(&spans, "Outrigger's span", |s| s.service == "outrigger");
    assert_eq!(mine.trace_id, theirs.trace_id, "one trace");
    assert_eq!(
        mine.parent_id, theirs.span_id,
        "Outrigger's span is a child of Envoy's"
    );
    let (trace, parent, flags) = traceparent(&seen(&reply, "traceparent").unwrap());
    assert_eq!(
        (trace, parent, flags),
        (
            mine.trace_id.clone(),
            mine.span_id.clone(),
            "01".to_string()
        )
    );
    // The same name, kind and tag names as Envoy's span for the same kind of listener.
    assert_eq!(mine.name, theirs.name);
    assert_eq!(mine.kind, theirs.kind);
    let keys = |s: &Span| s.attributes.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        keys(mine),
        keys(theirs),
        "\nours: {mine:#?}\nEnvoy's: {theirs:#?}"
    );
    for same in [
        "component",
        "http.method",
        "http.protocol",
        "http.status_code",
        "upstream_cluster",
        "response_flags",
        "zone",
    ] {
        assert_eq!(
            mine.attributes.get(same),
            theirs.attributes.get(same),
            "{same}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_b3_trace_across_envoy_and_outrigger() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let collector = ZipkinReceiver::start().await;
    let dir = dir("b3");
    let ours = listener();
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &config(
            &ours,
            "ours",
            "INBOUND",
            &zipkin_tracing("", ", shared_span_context: false"),
            backend.address.port(),
            1,
            collector.address.port(),
        ),
        ours.admin,
        &[FAST_FLUSH],
    );
    let front = listener();
    let _envoy = start_envoy(
        &envoy,
        &dir,
        &config(
            &front,
            "front",
            "INBOUND",
            &zipkin_tracing("", ""),
            ours.port,
            1,
            collector.address.port(),
        ),
        front.port,
    );
    let reply = get(&url(&front, "/through"), &[("host", "svc.test")]).await;
    assert_eq!(reply.status, 200);
    let spans = collector.wait_for(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let service = |s: &serde_json::Value| {
        s["localEndpoint"]["serviceName"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let theirs = spans
        .iter()
        .find(|s| service(s) == "front-cluster")
        .expect("Envoy's span");
    let mine = spans
        .iter()
        .find(|s| service(s) == "ours-cluster")
        .expect("our span");
    assert_eq!(mine["traceId"], theirs["traceId"], "one trace: {spans:#?}");
    assert_eq!(
        mine["parentId"], theirs["id"],
        "ours is a child of Envoy's: {spans:#?}"
    );
    assert_eq!(mine["kind"], "SERVER");
    assert_eq!(
        seen(&reply, "x-b3-traceid").as_deref(),
        mine["traceId"].as_str()
    );
    assert_eq!(seen(&reply, "x-b3-spanid").as_deref(), mine["id"].as_str());
    assert_eq!(
        seen(&reply, "x-b3-parentspanid").as_deref(),
        theirs["id"].as_str()
    );
    assert_eq!(seen(&reply, "x-b3-sampled").as_deref(), Some("1"));
}

/// The request ids of the sampling comparison: the random draw (first 8 hex digits) is irrelevant at 0 %.
const SAMPLING_CASES: &[(&str, &[(&str, &str)])] = &[
    ("00000001-0000-4000-8000-000000000001", &[]),
    (
        "00000002-0000-4000-8000-000000000002",
        &[("x-envoy-force-trace", "true")],
    ),
    (
        "00000003-0000-4000-8000-000000000003",
        &[("x-client-trace-id", "client-3")],
    ),
    (
        "00000004-0000-4000-8000-000000000004",
        &[(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )],
    ),
    (
        "00000005-0000-4000-8000-000000000005",
        &[(
            "traceparent",
            "00-33333333333333333333333333333333-4444444444444444-00",
        )],
    ),
    // A request id that already carries a decision (`9`: sampled by a hop before).
    ("00000006-0000-9000-8000-000000000006", &[]),
    // Sampled by the request id, not by the caller's traceparent.
    (
        "00000007-0000-9000-8000-000000000007",
        &[(
            "traceparent",
            "00-55555555555555555555555555555555-6666666666666666-00",
        )],
    ),
];

/// For each case: (span exported, the traceparent flags and request id the backend saw).
async fn sampling_outcome(l: &Listener, receiver: &OtlpReceiver) -> Vec<(bool, String, String)> {
    let mut seen_by_backend = Vec::new();
    for (id, extra) in SAMPLING_CASES {
        let mut headers = vec![("x-request-id", *id), ("host", "svc.test")];
        headers.extend(extra.iter().copied());
        let reply = get(&url(l, "/s"), &headers).await;
        assert_eq!(reply.status, 200);
        let flags = seen(&reply, "traceparent")
            .map(|t| traceparent(&t).2)
            .unwrap_or_default();
        seen_by_backend.push((flags, seen(&reply, "x-request-id").unwrap_or_default()));
    }
    // Let both flush (100 ms intervals), then read what arrived.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans = receiver.spans();
    SAMPLING_CASES
        .iter()
        .zip(seen_by_backend)
        .map(|((id, _), (flags, rid))| {
            let prefix = &id[..8];
            let exported = spans.iter().any(|s| {
                s.attributes
                    .get("guid:x-request-id")
                    .is_some_and(|g| g.starts_with(prefix))
            });
            (exported, flags, rid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_at_zero_traces_what_envoy_traces() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let (theirs_rx, ours_rx) = (OtlpReceiver::start().await, OtlpReceiver::start().await);
    let dir = dir("sampling");
    let tracing = otel_tracing("s", "random_sampling: {value: 0},");
    let theirs = listener();
    let _envoy = start_envoy(
        &envoy,
        &dir,
        &config(
            &theirs,
            "node-s",
            "INBOUND",
            &tracing,
            backend.address.port(),
            theirs_rx.address.port(),
            1,
        ),
        theirs.port,
    );
    let ours = listener();
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &config(
            &ours,
            "node-s",
            "INBOUND",
            &tracing,
            backend.address.port(),
            ours_rx.address.port(),
            1,
        ),
        ours.admin,
        &[FAST_FLUSH],
    );
    let envoy_outcome = sampling_outcome(&theirs, &theirs_rx).await;
    let our_outcome = sampling_outcome(&ours, &ours_rx).await;
    for ((case, _), (a, b)) in SAMPLING_CASES
        .iter()
        .zip(envoy_outcome.iter().zip(&our_outcome))
    {
        assert_eq!(
            b, a,
            "request {case}: outrigger {b:?}, Envoy {a:?}\nEnvoy: {envoy_outcome:#?}\nours: {our_outcome:#?}"
        );
    }
    // What Envoy does, spelled out: x-client-trace-id (client_sampling 100 %) and a decision already in the
    // request id trace; x-envoy-force-trace from an external client does not (it is removed first), and a
    // caller's traceparent neither forces a trace (flag 01) nor is overridden when it declines (flag 00).
    let exported: Vec<bool> = our_outcome.iter().map(|o| o.0).collect();
    assert_eq!(exported, [false, false, true, false, false, true, false]);
    // The connection manager's decision statistics agree with Envoy's (`http.traced.tracing.*`).
    async fn decisions(admin: u16) -> Vec<String> {
        let text = get(&format!("http://127.0.0.1:{admin}/stats"), &[])
            .await
            .body;
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("http.traced.tracing.") && !l.contains(".health_check"))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    }
    let (theirs_stats, ours_stats) = (decisions(theirs.admin).await, decisions(ours.admin).await);
    assert_eq!(theirs_stats.len(), 4, "{theirs_stats:?}");
    assert_eq!(ours_stats, theirs_stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_no_request_and_spans_queued_at_sigterm_are_exported() {
    let backend = Backend::start("b").await;
    let collector_port = free_port();
    let dir = dir("drain");
    let l = listener();
    // A long flush interval: spans leave in batches of 5 or at exit.
    let mut ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &config(
            &l,
            "node-d",
            "INBOUND",
            &otel_tracing("drain", ""),
            backend.address.port(),
            collector_port,
            1,
        ),
        l.admin,
        &[("OUTRIGGER_TRACING_FLUSH_INTERVAL_MS", "600000")],
    );
    // Nothing listens on the collector's port: every request is served, none waits on the exporter.
    let started = Instant::now();
    for i in 0..40 {
        let reply = get(&url(&l, &format!("/down/{i}")), &[]).await;
        assert_eq!(reply.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "40 requests took {:?} with the collector down",
        started.elapsed()
    );
    // Their spans are lost, and counted (`tracing.opentelemetry.spans_failed`).
    let started = Instant::now();
    while ours.metric("envoy_tracing_opentelemetry_spans_failed_total", &[]) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failed export counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The collector comes up; two more requests stay queued (fewer than a batch, long interval).
    let receiver = OtlpReceiver::start_on(collector_port).await;
    for path in ["/queued/1", "/queued/2"] {
        assert_eq!(get(&url(&l, path), &[]).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queued = |spans: &[Span]| {
        spans
            .iter()
            .filter_map(|s| s.attributes.get("http.url"))
            .filter(|u| u.contains("/queued/"))
            .count()
    };
    assert_eq!(queued(&receiver.spans()), 0, "not exported before exit");
    assert!(
        ours.terminate_and_wait(Duration::from_secs(15)),
        "outrigger did not exit after SIGTERM"
    );
    assert_eq!(
        queued(&receiver.spans()),
        2,
        "the queued spans are exported at exit:\n{}",
        ours.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_http_with_the_environment_resource_detector() {
    let backend = Backend::start("b").await;
    let collector = ZipkinReceiver::start().await;
    let dir = dir("otlp-http");
    let l = listener();
    let tracing = format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, service_name: over-http, http_service: \
         {{http_uri: {{uri: \"http://127.0.0.1:{}/v1/traces\", cluster: zipkin, timeout: 2s}}}}, resource_detectors: [{{name: \
         envoy.tracers.opentelemetry.resource_detectors.environment, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig}}}}]}}}}}}",
        collector.address.port()
    );
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &config(
            &l,
            "node-h",
            "INBOUND",
            &tracing,
            backend.address.port(),
            1,
            collector.address.port(),
        ),
        l.admin,
        &[
            FAST_FLUSH,
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=test,team=mesh",
            ),
        ],
    );
    assert_eq!(
        get(&url(&l, "/h"), &[("host", "svc.test")]).await.status,
        200
    );
    let spans = collector.wait_for_otlp(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.service, "over-http");
    assert_eq!(span.name, "ingress");
    assert_eq!(
        span.resource
            .get("deployment.environment")
            .map(String::as_str),
        Some("test")
    );
    assert_eq!(span.resource.get("team").map(String::as_str), Some("mesh"));
}

/// An OUTBOUND listener through Envoy and through Outrigger, `spawn_upstream_span` as given: for each, the
/// request span's (name, kind, tag names) and, when spawned, the upstream span's, whose id the backend must see
/// as its parent.
type Shape = (String, i32, BTreeSet<String>);

async fn egress_shapes(envoy: &Path, spawn: bool, child: bool) -> [(Shape, Option<Shape>); 2] {
    let backend = Backend::start("b").await;
    let (theirs_rx, ours_rx) = (OtlpReceiver::start().await, OtlpReceiver::start().await);
    let dir = dir(&format!("egress-{spawn}-{child}"));
    let tracing = otel_tracing("s", &format!("spawn_upstream_span: {spawn},"));
    // The router's `start_child_span`.
    let router = |yaml: String| {
        if child {
            yaml.replace(".Router}", ".Router, start_child_span: true}")
        } else {
            yaml
        }
    };
    let theirs = listener();
    let _envoy = start_envoy(
        envoy,
        &dir,
        &router(config(
            &theirs,
            "node-e",
            "OUTBOUND",
            &tracing,
            backend.address.port(),
            theirs_rx.address.port(),
            1,
        )),
        theirs.port,
    );
    let ours = listener();
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &router(config(
            &ours,
            "node-e",
            "OUTBOUND",
            &tracing,
            backend.address.port(),
            ours_rx.address.port(),
            1,
        )),
        ours.admin,
        &[FAST_FLUSH],
    );
    let want = if spawn || child { 2 } else { 1 };
    let mut shapes = Vec::new();
    for (l, rx) in [(&theirs, &theirs_rx), (&ours, &ours_rx)] {
        let reply = get(&url(l, "/e"), &[("host", "svc.test")]).await;
        assert_eq!(reply.status, 200);
        let parent_seen = traceparent(&seen(&reply, "traceparent").unwrap()).1;
        let spans = rx.wait_for(want).await;
        assert_eq!(spans.len(), want, "{spans:#?}");
        let keys = |s: &Span| s.attributes.keys().cloned().collect::<BTreeSet<_>>();
        let root = one(&spans, "the request span", |s| s.parent_id.is_empty());
        let child = spans.iter().find(|s| !s.parent_id.is_empty());
        match child {
            Some(child) => {
                assert_eq!(child.parent_id, root.span_id);
                assert_eq!(
                    child.span_id, parent_seen,
                    "the backend's parent is the upstream span"
                );
            }
            None => assert_eq!(root.span_id, parent_seen),
        }
        shapes.push((
            (root.name.clone(), root.kind, keys(root)),
            child.map(|c| (c.name.clone(), c.kind, keys(c))),
        ));
    }
    [shapes.remove(0), shapes.remove(0)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_spans_and_spawned_upstream_spans_match_envoy() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    for spawn in [false, true] {
        let [theirs, ours] = egress_shapes(&envoy, spawn, false).await;
        assert_eq!(ours, theirs, "spawn_upstream_span: {spawn}");
    }
}

/// The router's deprecated `start_child_span` makes the same upstream span as `spawn_upstream_span` (name
/// `router <cluster> egress`, CLIENT, its context sent upstream), but the egress request span stays CLIENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_child_span_spans_match_envoy() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let [theirs, ours] = egress_shapes(&envoy, false, true).await;
    assert!(theirs.1.is_some(), "Envoy made no child span: {theirs:?}");
    assert_eq!(ours, theirs);
}

/// One traced request's spans, each as (name, kind, whether its parent is the request span, tags); the
/// request span first, then its upstream spans by start time. Tags that cannot agree (ids, sizes) are masked.
type Attempts = Vec<(String, i32, bool, BTreeMap<String, String>)>;

async fn attempt_spans(l: &Listener, rx: &OtlpReceiver, path: &str, have: usize) -> Attempts {
    let reply = get(&url(l, path), &[("host", "svc.test"), ("x-retry", "1")]).await;
    // Every span of the request has arrived once the request span has (it ends last).
    let started = Instant::now();
    let spans = loop {
        let spans = rx.spans();
        if spans[have.min(spans.len())..]
            .iter()
            .any(|s| s.parent_id.is_empty())
            || started.elapsed() > Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
            break rx.spans()[have..].to_vec();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let root = one(&spans, path, |s| s.parent_id.is_empty());
    let mut children: Vec<&Span> = spans.iter().filter(|s| !s.parent_id.is_empty()).collect();
    children.sort_by_key(|s| s.start_unix_nano);
    let mask = |s: &Span| {
        let mut tags = s.attributes.clone();
        for (k, v) in tags.iter_mut() {
            if matches!(
                k.as_str(),
                "guid:x-request-id" | "request_size" | "response_size"
            ) {
                *v = "*".into();
            }
        }
        tags
    };
    let mut out = vec![(root.name.clone(), root.kind, false, mask(root))];
    for c in children {
        assert_eq!(c.trace_id, root.trace_id);
        out.push((c.name.clone(), c.kind, c.parent_id == root.span_id, mask(c)));
    }
    assert!(reply.status > 0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_attempt_has_its_span_like_envoys() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let (theirs_rx, ours_rx) = (OtlpReceiver::start().await, OtlpReceiver::start().await);
    let dir = dir("attempts");
    let tracing = otel_tracing("s", "spawn_upstream_span: true,");
    let yaml = |l: &Listener, rx: &OtlpReceiver| {
        config(
            l,
            "node-a",
            "OUTBOUND",
            &tracing,
            backend.address.port(),
            rx.address.port(),
            1,
        )
    };
    let theirs = listener();
    let _envoy = start_envoy(&envoy, &dir, &yaml(&theirs, &theirs_rx), theirs.port);
    let ours = listener();
    let _ours = Sidecar::start_with_env(
        &dir,
        "outrigger",
        &yaml(&ours, &ours_rx),
        ours.admin,
        &[FAST_FLUSH],
    );
    // 5xx retried twice (two canceled attempts, then the 503 kept), connection failures, per-try timeouts.
    for (path, attempts) in [("/status/503", 3), ("/dead", 3), ("/slow/400", 2)] {
        let mut both = Vec::new();
        for (l, rx) in [(&theirs, &theirs_rx), (&ours, &ours_rx)] {
            let have = rx.spans().len();
            both.push(attempt_spans(l, rx, path, have).await);
        }
        let (ours, theirs) = (both.pop().unwrap(), both.pop().unwrap());
        assert_eq!(
            theirs.len(),
            attempts + 1,
            "Envoy's spans of {path}: {theirs:#?}"
        );
        assert_eq!(ours, theirs, "{path}");
    }
}

/// A route's `decorator` through Envoy and through Outrigger, INBOUND and OUTBOUND: the span's name, the
/// `x-envoy-decorator-operation` the backend and the client see, with and without `propagate` and with the
/// client's own header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_decorators_act_like_envoys() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let dir = dir("decorator");
    let mut outcomes = Vec::new();
    for direction in ["INBOUND", "OUTBOUND"] {
        let (theirs_rx, ours_rx) = (OtlpReceiver::start().await, OtlpReceiver::start().await);
        let tracing = otel_tracing("s", "");
        let yaml = |l: &Listener, rx: &OtlpReceiver| {
            config(
                l,
                "node-d",
                direction,
                &tracing,
                backend.address.port(),
                rx.address.port(),
                1,
            )
        };
        let theirs = listener();
        let _envoy = start_envoy(&envoy, &dir, &yaml(&theirs, &theirs_rx), theirs.port);
        let ours = listener();
        let _ours = Sidecar::start_with_env(
            &dir,
            "outrigger",
            &yaml(&ours, &ours_rx),
            ours.admin,
            &[FAST_FLUSH],
        );
        let header = "x-envoy-decorator-operation";
        let requests: [(&str, &[(&str, &str)]); 4] = [
            ("/decorated", &[]),
            ("/quiet", &[]),
            ("/decorated", &[(header, "callers-op")]),
            ("/plain", &[(header, "callers-op")]),
        ];
        let mut per_proxy = Vec::new();
        for (l, rx) in [(&theirs, &theirs_rx), (&ours, &ours_rx)] {
            let mut seen_by = Vec::new();
            for (path, extra) in requests {
                let mut headers = vec![("host", "svc.test")];
                headers.extend_from_slice(extra);
                let reply = get(&url(l, path), &headers).await;
                assert_eq!(reply.status, 200);
                let to_client = reply
                    .headers
                    .get(header)
                    .map(|v| v.to_str().unwrap().to_string());
                seen_by.push((seen(&reply, header), to_client));
            }
            let spans = rx.wait_for(requests.len()).await;
            assert_eq!(spans.len(), requests.len(), "{spans:#?}");
            let mut names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
            names.sort();
            per_proxy.push((seen_by, names));
        }
        let (ours, theirs) = (per_proxy.pop().unwrap(), per_proxy.pop().unwrap());
        assert_eq!(ours, theirs, "{direction}");
        outcomes.push(theirs);
    }
    // The decorator acts: a decorated span name in each direction, the header upstream on egress only.
    assert!(outcomes[0].1.contains(&"decorated-op".to_string()));
    assert!(outcomes[1].1.contains(&"decorated-op".to_string()));
    assert_eq!(outcomes[0].0[0].1.as_deref(), Some("decorated-op"));
    assert_eq!(outcomes[1].0[0].0.as_deref(), Some("decorated-op"));
}

/// Arize Phoenix, a real OTLP backend (`tests/peers/phoenix_loopback.py`): the Python of the virtual environment
/// `.ci/run` installs it in (`$PHOENIX_PYTHON`, else /opt/outrigger-phoenix/bin/python), or `None` (a failure
/// under CI).
fn phoenix_python() -> Option<PathBuf> {
    let python = std::env::var_os("PHOENIX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/outrigger-phoenix/bin/python"));
    let has_phoenix = std::process::Command::new(&python)
        .args(["-c", "import phoenix.server.main"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_phoenix {
        assert!(
            !support::in_ci(),
            "Arize Phoenix is required under CI=true ({}); .ci/run installs it",
            python.display()
        );
        eprintln!("note: Arize Phoenix is not installed; its test is not run (it is in CI)");
        return None;
    }
    Some(python)
}

/// Phoenix's spans of the default project, as its REST API lists them.
async fn phoenix_spans(http_port: u16, want: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let url = format!("http://127.0.0.1:{http_port}/v1/projects/default/spans?limit=100");
        let spans = match support::client::try_get(&url, &[]).await {
            Ok(reply) if reply.status == 200 => {
                reply.json()["data"].as_array().cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        };
        if spans.len() >= want || started.elapsed() > Duration::from_secs(30) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One Phoenix for both transports (it takes about 20 s to start): a span over OTLP/gRPC and one over
/// OTLP/HTTP arrive, named and tagged as in our own receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_receives_spans_over_grpc_and_http() {
    let Some(python) = phoenix_python() else {
        return;
    };
    let backend = Backend::start("b").await;
    let dir = dir("phoenix");
    let (http_port, grpc_port) = (free_port(), free_port());
    let _phoenix = support::ChildGuard(
        std::process::Command::new(python)
            .arg(support::repo_root().join("tests/peers/phoenix_loopback.py"))
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", http_port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
            .env("PHOENIX_WORKING_DIR", dir.join("phoenix"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("phoenix.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while support::client::try_get(&format!("http://127.0.0.1:{http_port}/healthz"), &[])
        .await
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "Phoenix did not start in 150 s:\n{}",
            std::fs::read_to_string(dir.join("phoenix.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (over_grpc, over_http) = (listener(), listener());
    let http_tracing = format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, service_name: over-http, http_service: \
         {{http_uri: {{uri: \"http://127.0.0.1:{http_port}/v1/traces\", cluster: zipkin, timeout: 5s}}}}}}}}}}"
    );
    let _grpc = Sidecar::start_with_env(
        &dir,
        "grpc",
        &config(
            &over_grpc,
            "node-g",
            "INBOUND",
            &otel_tracing("over-grpc", ""),
            backend.address.port(),
            grpc_port,
            1,
        ),
        over_grpc.admin,
        &[FAST_FLUSH],
    );
    let _http = Sidecar::start_with_env(
        &dir,
        "http",
        &config(
            &over_http,
            "node-h",
            "INBOUND",
            &http_tracing,
            backend.address.port(),
            1,
            http_port,
        ),
        over_http.admin,
        &[FAST_FLUSH],
    );
    let ids = [
        (&over_grpc, "00000001-0000-4000-8000-00000000000a"),
        (&over_http, "00000002-0000-4000-8000-00000000000b"),
    ];
    for (l, id) in ids {
        let reply = get(
            &url(l, "/phoenix"),
            &[("x-request-id", id), ("host", "svc.test")],
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let spans = phoenix_spans(http_port, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for (_, id) in ids {
        // The decision (100 %) is in the id Phoenix shows.
        let traced = id.replacen("-4000-", "-9000-", 1);
        let span = spans
            .iter()
            .find(|s| s["attributes"]["guid:x-request-id"] == traced.as_str())
            .unwrap_or_else(|| panic!("no span for {traced}: {spans:#?}"));
        assert_eq!(span["name"], "ingress", "{span:#?}");
        assert_eq!(span["attributes"]["http.status_code"], "200", "{span:#?}");
        assert_eq!(span["attributes"]["component"], "proxy", "{span:#?}");
    }
}

/// An unknown collector cluster: Envoy 1.40 starts and still propagates the context; so do we, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_collector_cluster_still_propagates() {
    let backend = Backend::start("b").await;
    let dir = dir("unknown-collector");
    let l = listener();
    let tracing = otel_tracing("s", "").replace("cluster_name: otel", "cluster_name: nowhere");
    let ours = Sidecar::start(
        &dir,
        "outrigger",
        &config(
            &l,
            "node-u",
            "INBOUND",
            &tracing,
            backend.address.port(),
            1,
            1,
        ),
        l.admin,
    );
    assert!(
        ours.log_text().contains("\"nowhere\" is unknown"),
        "{}",
        ours.log_text()
    );
    let reply = get(&url(&l, "/u"), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(traceparent(&seen(&reply, "traceparent").unwrap()).2, "01");
}

/// Stops the process when the test ends, also on failure.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// README's "See a trace and an access log": `deploy/local/observability.yaml` as shipped (only its ports
/// moved) writes one access-log line per request on stdout and sends one span per request to the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_logs_and_traces_each_request() {
    let receiver = OtlpReceiver::start().await;
    let (admin, port) = (free_port(), free_port());
    let config = std::fs::read_to_string("deploy/local/observability.yaml")
        .unwrap()
        .replace("port_value: 15000", &format!("port_value: {admin}"))
        .replace("port_value: 10000", &format!("port_value: {port}"))
        .replace(
            "port_value: 4317",
            &format!("port_value: {}", receiver.address.port()),
        );
    let dir = dir("readme");
    let path = dir.join("observability.yaml");
    std::fs::write(&path, config).unwrap();
    let stdout = dir.join("stdout.log");
    let child = support::outrigger()
        .args(["run", "--concurrency", "1", "-c"])
        .arg(&path)
        .env(FAST_FLUSH.0, FAST_FLUSH.1)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let _running = Killed(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err()
        || get(&format!("http://127.0.0.1:{admin}/ready"), &[])
            .await
            .status
            != 200
    {
        assert!(started.elapsed() < Duration::from_secs(20), "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in ["/hello", "/again"] {
        let reply = get(&format!("http://127.0.0.1:{port}{path}"), &[]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "hello from outrigger\n")
        );
    }
    let spans = receiver.wait_for(2).await;
    let urls: BTreeSet<String> = spans
        .iter()
        .filter_map(|s| s.attributes.get("http.url").cloned())
        .collect();
    assert_eq!(urls.len(), 2, "{spans:?}");
    assert!(urls.iter().any(|u| u.ends_with("/hello")), "{urls:?}");
    // Envoy's default format, one line per request.
    let started = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&stdout).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"GET /") && l.contains(" HTTP/1.1\" 200 - 0 21 "))
            .map(str::to_string)
            .collect();
        if lines.len() >= 2 || started.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"GET /hello HTTP/1.1\""), "{lines:?}");
}

fn skywalking_tracing() -> String {
    "{provider: {name: envoy.tracers.skywalking, typed_config: {\"@type\": \
     type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig, grpc_service: {envoy_grpc: {cluster_name: \
     otel}, timeout: 0.25s}, client_config: {instance_name: inst-1, backend_token: tok-1}}}}"
        .to_string()
}

/// A segment as compared: service, instance, then each span (ids, type, layer, component, operation, peer,
/// error, tags, refs) with what cannot agree masked: request ids, the listener's port, sizes.
fn segment_shape(
    segment: &outrigger_proxy::trace::skywalking::SegmentObject,
    port: u16,
) -> Vec<String> {
    let mut shape = vec![segment.service.clone(), segment.service_instance.clone()];
    for span in &segment.spans {
        assert!(
            span.end_time >= span.start_time && span.start_time > 0,
            "{span:?}"
        );
        let tags: Vec<(String, String)> = span
            .tags
            .iter()
            .map(|t| {
                let value = match t.key.as_str() {
                    "guid:x-request-id" => "<id>".to_string(),
                    "request_size" | "response_size" => "<n>".to_string(),
                    _ => t.value.replace(&port.to_string(), "<port>"),
                };
                (t.key.clone(), value)
            })
            .collect();
        let refs: Vec<String> = span.refs.iter().map(|r| format!("{r:?}")).collect();
        shape.push(format!(
            "span {} parent {} type {} layer {} component {} op {:?} peer {:?} error {} tags {tags:?} refs {refs:?}",
            span.span_id,
            span.parent_span_id,
            span.span_type,
            span.span_layer,
            span.component_id,
            span.operation_name,
            span.peer,
            span.is_error,
        ));
    }
    shape
}

/// The same INBOUND listener (SkyWalking tracer, the router's `start_child_span`) through Envoy 1.40 and
/// through Outrigger: for each request, the segment the collector received and the `sw8` the backend saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skywalking_segments_and_sw8_match_envoys() {
    use outrigger_proxy::trace::sw8::Context;
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let dir = dir("skywalking");
    let incoming = Context {
        sampled: false,
        trace_id: "trace-in".into(),
        segment_id: "segment-in".into(),
        span_id: 3,
        service: "caller".into(),
        instance: "caller-1".into(),
        endpoint: "/caller".into(),
        target: "10.0.0.1:80".into(),
    }
    .encode();
    // The 503 is retried twice (`x-retry`): three exit spans, the first two canceled.
    let requests: [(&str, Vec<(&str, &str)>); 4] = [
        ("/sw/plain?x=1", vec![]),
        ("/status/503", vec![("x-retry", "1")]),
        ("/sw/continued", vec![("sw8", &incoming)]),
        ("/sw/malformed", vec![("sw8", "1-bm90-YmFzZTY0")]),
    ];
    let mut outcomes = Vec::new();
    for ours in [false, true] {
        let rx = skywalking::SkyWalkingReceiver::start().await;
        let l = listener();
        let yaml = config(
            &l,
            "node-sw",
            "INBOUND",
            &skywalking_tracing(),
            backend.address.port(),
            rx.address.port(),
            1,
        )
        .replace(".Router}", ".Router, start_child_span: true}");
        let _envoy = (!ours).then(|| start_envoy(&envoy, &dir, &yaml, l.port));
        let _ours =
            ours.then(|| Sidecar::start_with_env(&dir, "outrigger", &yaml, l.admin, &[FAST_FLUSH]));
        let mut seen_sw8 = Vec::new();
        for (path, headers) in &requests {
            let reply = get(&url(&l, path), headers).await;
            let header = seen(&reply, "sw8").expect("the backend got an sw8");
            seen_sw8.push((reply.status, Context::decode(&header).expect("a valid sw8")));
        }
        let segments = rx.wait_for(requests.len()).await;
        assert_eq!(
            segments.len(),
            requests.len(),
            "ours: {ours}: {segments:#?}"
        );
        let mut outcome = Vec::new();
        for ((path, _), (status, sent)) in requests.iter().zip(seen_sw8) {
            let (token, segment) = segments
                .iter()
                .find(|(_, s)| s.spans.first().is_some_and(|e| e.operation_name == *path))
                .unwrap_or_else(|| panic!("no segment for {path}: {segments:#?}"));
            assert_eq!(token.as_deref(), Some("tok-1"), "the backend_token");
            // The upstream continues this segment's exit span.
            assert_eq!(sent.trace_id, segment.trace_id, "{path}");
            assert_eq!(sent.segment_id, segment.trace_segment_id, "{path}");
            if *path == "/sw/continued" {
                assert_eq!(segment.trace_id, "trace-in");
            } else {
                assert_ne!(segment.trace_id, "trace-in");
            }
            outcome.push((
                status,
                (sent.sampled, sent.span_id, sent.service, sent.instance),
                (sent.endpoint, sent.target),
                segment_shape(segment, l.port),
            ));
        }
        outcomes.push(outcome);
    }
    let ours = outcomes.pop().unwrap();
    let theirs = outcomes.pop().unwrap();
    assert_eq!(theirs[1].0, 503);
    assert_eq!(
        theirs[1].3.len(),
        2 + 4,
        "Envoy's entry span and three exit spans"
    );
    assert!(
        theirs[2].3[2].contains("caller-1"),
        "Envoy kept the reference: {theirs:#?}"
    );
    for (theirs, ours) in theirs.iter().zip(&ours) {
        assert_eq!(ours, theirs);
    }
}

/// SkyWalking's `max_cache_size`: while the collector is away, the oldest segments wait (up to the cache's
/// size) and newer ones are dropped and counted in `tracing.skywalking.segments_dropped`; the waiting ones reach
/// the collector once it is up (`cache_flushed`, `segments_flushed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skywalking_segments_wait_in_a_bounded_cache_for_the_collector() {
    let backend = Backend::start("b").await;
    let dir = dir("skywalking-cache");
    let collector = free_port();
    let l = listener();
    let tracing = skywalking_tracing().replace("backend_token: tok-1", "max_cache_size: 1");
    let yaml = config(
        &l,
        "node-c",
        "INBOUND",
        &tracing,
        backend.address.port(),
        collector,
        1,
    );
    let ours = Sidecar::start_with_env(&dir, "outrigger", &yaml, l.admin, &[FAST_FLUSH]);
    for path in ["/first", "/second", "/third"] {
        assert_eq!(get(&url(&l, path), &[]).await.status, 200);
        // Each gets its own failed export.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(ours.stat("tracing.skywalking.segments_dropped"), 2);
    let rx = skywalking::SkyWalkingReceiver::start_on(collector).await;
    rx.wait_for(1).await;
    // Nothing else comes after the cached one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let segments: Vec<String> = rx
        .segments()
        .iter()
        .map(|(_, s)| s.spans[0].operation_name.clone())
        .collect();
    assert_eq!(segments, ["/first"]);
    assert_eq!(ours.stat("tracing.skywalking.segments_sent"), 1);
    assert_eq!(ours.stat("tracing.skywalking.cache_flushed"), 1);
    assert_eq!(ours.stat("tracing.skywalking.segments_flushed"), 1);
}
