//! The Zipkin provider's settings, as the headers a request carries upstream show them.

use super::Tracer;
use http::HeaderMap;
use http::header::HeaderValue;
use outrigger_config::model::tracing::{Provider, Tracing, Zipkin};

fn zipkin(trace_id_128bit: bool, shared_span_context: bool, w3c: bool) -> Tracer {
    Tracer::for_test(
        Tracing {
            provider: Provider::Zipkin(Zipkin {
                collector_cluster: "z".into(),
                collector_endpoint: "/api/v2/spans".into(),
                collector_hostname: "z".into(),
                trace_id_128bit,
                shared_span_context,
                w3c,
            }),
            client_sampling: 10_000,
            random_sampling: 10_000,
            overall_sampling: 10_000,
            max_path_tag_length: 256,
            custom_tags: vec![],
            spawn_upstream_span: false,
            start_child_span: false,
        },
        false,
    )
}

fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-request-id",
        HeaderValue::from_static("00000001-0000-4000-8000-000000000001"),
    );
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn zipkin_settings_shape_the_propagated_context() {
    // A new trace: 64-bit ids unless trace_id_128bit; no traceparent unless USE_B3_WITH_W3C_PROPAGATION.
    let mut h = request(&[]);
    let active = zipkin(false, true, false)
        .start(&mut h, None, None, "/")
        .unwrap();
    assert_eq!(h["x-b3-traceid"].len(), 16);
    assert_eq!(active.trace_id >> 64, 0);
    assert!(!h.contains_key("traceparent") && !h.contains_key("x-b3-parentspanid"));
    assert_eq!(h["x-b3-sampled"], "1");

    let mut h = request(&[]);
    zipkin(true, true, true)
        .start(&mut h, None, None, "/")
        .unwrap();
    assert_eq!(h["x-b3-traceid"].len(), 32);
    let traceparent = h["traceparent"].to_str().unwrap().to_string();
    assert!(
        traceparent.contains(h["x-b3-traceid"].to_str().unwrap()),
        "{traceparent}"
    );
    assert!(
        traceparent.contains(h["x-b3-spanid"].to_str().unwrap()),
        "{traceparent}"
    );

    // Continuing a caller's span: shared (Envoy's default) keeps its id, else ours is a child of it.
    let caller = [
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-parentspanid", "0020000000000001"),
    ];
    let mut h = request(&caller);
    let shared = zipkin(false, true, false)
        .start(&mut h, None, None, "/")
        .unwrap();
    assert_eq!(shared.span_id, 0xa2fb4a1d1a96d312);
    assert_eq!(shared.parent_id, Some(0x0020000000000001));
    assert_eq!(h["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124");
    let mut h = request(&caller);
    let child = zipkin(false, false, false)
        .start(&mut h, None, None, "/")
        .unwrap();
    assert_ne!(child.span_id, 0xa2fb4a1d1a96d312);
    assert_eq!(child.parent_id, Some(0xa2fb4a1d1a96d312));
    assert_eq!(h["x-b3-parentspanid"], "a2fb4a1d1a96d312");

    // The caller's decision wins with B3: `x-b3-sampled: 0` is not traced, and is propagated.
    let mut h = request(&[("b3", "0")]);
    assert!(
        zipkin(false, true, false)
            .start(&mut h, None, None, "/")
            .is_none()
    );
    assert_eq!(h["x-b3-sampled"], "0");
    // With the W3C option, a traceparent is read when no B3 header came.
    let mut h = request(&[(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )]);
    let w3c = zipkin(false, false, true)
        .start(&mut h, None, None, "/")
        .unwrap();
    assert_eq!(w3c.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(w3c.parent_id, Some(0xb7ad6b7169203331));
}

/// A SkyWalking tracer sampling nothing by itself (`random_sampling: 0`), with exit spans.
fn skywalking() -> Tracer {
    use outrigger_config::model::tracing::SkyWalking;
    let mut tracer = Tracer::for_test(
        Tracing {
            provider: Provider::SkyWalking(SkyWalking {
                cluster: "sw".into(),
                timeout: None,
                service_name: None,
                instance_name: None,
                backend_token: None,
                max_cache_size: 1024,
            }),
            client_sampling: 10_000,
            random_sampling: 0,
            overall_sampling: 10_000,
            max_path_tag_length: 256,
            custom_tags: vec![],
            spawn_upstream_span: false,
            start_child_span: true,
        },
        false,
    );
    tracer.skywalking_names = Some(("svc".into(), "inst".into()));
    tracer
}

#[test]
fn skywalking_continues_a_valid_sw8_whatever_the_sampling() {
    // Checked with Envoy 1.40 at random_sampling 0: no sw8, no segment; a valid sw8 (sample flag 0 or 1) is
    // continued, reported, and the upstream gets our exit span's sw8 with the flag set; a malformed one is
    // ignored (no segment, the header passes through untouched).
    let tracer = skywalking();
    let mut h = request(&[]);
    assert!(tracer.start(&mut h, None, None, "/a").is_none());
    let mut h = request(&[("sw8", "garbage")]);
    assert!(tracer.start(&mut h, None, None, "/a").is_none());
    assert_eq!(h.get("sw8").unwrap(), "garbage");
    let mut h = request(&[(
        "sw8",
        "0-dHJhY2UtYWJj-c2Vn-3-Y2FsbGVy-aQ==-L2NhbGxlcg==-MTAuMC4wLjE6ODA=",
    )]);
    let mut active = tracer
        .start(&mut h, None, None, "/a?b=1")
        .expect("a valid sw8 is continued");
    let host = "127.0.0.1:8080".parse().unwrap();
    assert_eq!(active.begin_attempt(&mut h, host), Some(0));
    let sent = super::sw8::Context::decode(h.get("sw8").unwrap().to_str().unwrap()).unwrap();
    assert!(sent.sampled);
    assert_eq!(sent.trace_id, "trace-abc");
    assert_ne!(sent.segment_id, "seg");
    assert_eq!(sent.span_id, 1);
    assert_eq!(
        (sent.service.as_str(), sent.instance.as_str()),
        ("svc", "inst")
    );
    assert_eq!(
        (sent.endpoint.as_str(), sent.target.as_str()),
        ("/a?b=1", "127.0.0.1:8080")
    );
    // A retry is the segment's next exit span.
    assert_eq!(active.begin_attempt(&mut h, host), Some(1));
    let retry = super::sw8::Context::decode(h.get("sw8").unwrap().to_str().unwrap()).unwrap();
    assert_eq!((retry.span_id, retry.segment_id), (2, sent.segment_id));
    // The route's decorator does not rename a SkyWalking span.
    active.set_operation("decorated");
    assert_eq!(active.name, "/a?b=1");
}
