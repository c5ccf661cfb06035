use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn datadog_headers_are_read_and_written_like_envoy() {
    // What Envoy 1.40 received and sent on for these headers.
    let e = extract(&headers(&[
        ("x-datadog-trace-id", "1234"),
        ("x-datadog-parent-id", "5678"),
        ("x-datadog-sampling-priority", "1"),
        ("x-datadog-origin", "synthetics"),
        ("x-datadog-tags", "_dd.p.dm=-4,other=x"),
    ]))
    .unwrap();
    assert_eq!(e.trace_id, 1234);
    assert_eq!(e.parent_id, Some(5678));
    assert_eq!(e.priority, Some(1));
    assert_eq!(e.state.origin.as_deref(), Some("synthetics"));
    assert_eq!(e.state.tags, vec![("_dd.p.dm".into(), "-4".into())]);
    assert_eq!(e.state.tags.len(), 1, "only _dd.p.* tags travel");
    let mut out = HeaderMap::new();
    inject(&mut out, e.trace_id, 0x2cec4a5a90db02f5, &e.state);
    assert_eq!(out["x-datadog-trace-id"], "1234");
    assert_eq!(out["x-datadog-parent-id"], "3237043985010328309");
    assert_eq!(out["x-datadog-sampling-priority"], "1");
    assert_eq!(out["x-datadog-origin"], "synthetics");
    assert_eq!(out["x-datadog-tags"], "_dd.p.dm=-4");
    assert_eq!(
        out["traceparent"],
        "00-000000000000000000000000000004d2-2cec4a5a90db02f5-01"
    );
    assert_eq!(
        out["tracestate"],
        "dd=s:1;p:2cec4a5a90db02f5;o:synthetics;t.dm:-4"
    );
    // The high half of a 128-bit id travels as `_dd.p.tid`, first among the tags.
    let e = extract(&headers(&[
        ("x-datadog-trace-id", "12665512341979334331"),
        ("x-datadog-parent-id", "1"),
        ("x-datadog-tags", "_dd.p.tid=6b0cb07500000000,_dd.p.dm=-0"),
    ]))
    .unwrap();
    assert_eq!(e.trace_id >> 64, 0x6b0c_b075_0000_0000);
    assert_eq!(e.trace_id as u64, 12665512341979334331);
    assert_eq!(e.priority, None);
    let mut out = HeaderMap::new();
    inject(&mut out, e.trace_id, 7, &e.state);
    assert_eq!(
        out["x-datadog-tags"],
        "_dd.p.tid=6b0cb07500000000,_dd.p.dm=-0"
    );
    // A priority 0 without tags: no x-datadog-tags, sampled flag 00.
    let e = extract(&headers(&[
        ("x-datadog-trace-id", "1234"),
        ("x-datadog-parent-id", "5678"),
        ("x-datadog-sampling-priority", "0"),
    ]))
    .unwrap();
    let mut out = HeaderMap::new();
    inject(&mut out, e.trace_id, 0x45d93de2fda0a2f9, &e.state);
    assert!(out.get("x-datadog-tags").is_none());
    assert_eq!(
        out["traceparent"],
        "00-000000000000000000000000000004d2-45d93de2fda0a2f9-00"
    );
    assert_eq!(out["tracestate"], "dd=s:0;p:45d93de2fda0a2f9");
    // Unusable Datadog headers start a new trace, even with a W3C context beside them (as Envoy 1.40 does).
    let w3c = (
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    for bad in [
        vec![("x-datadog-trace-id", "abc"), w3c],
        vec![("x-datadog-trace-id", "0"), ("x-datadog-parent-id", "5")],
        vec![
            ("x-datadog-trace-id", "99"),
            ("x-datadog-sampling-priority", "2"),
        ],
        vec![("x-datadog-trace-id", "99"), ("x-datadog-parent-id", "x")],
    ] {
        assert_eq!(extract(&headers(&bad)), None, "{bad:?}");
    }
    // Without a parent, a trace with an origin is continued.
    let e = extract(&headers(&[
        ("x-datadog-trace-id", "99"),
        ("x-datadog-origin", "synthetics"),
    ]))
    .unwrap();
    assert_eq!((e.trace_id, e.parent_id), (99, None));
}

#[test]
fn a_w3c_context_is_continued_with_its_dd_member() {
    let e = extract(&headers(&[(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )]))
    .unwrap();
    assert_eq!(e.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(e.parent_id, Some(0xb7ad6b7169203331));
    assert_eq!(e.priority, Some(1));
    assert_eq!(e.state.w3c_parent.as_deref(), Some("0000000000000000"));
    let mut out = HeaderMap::new();
    inject(&mut out, e.trace_id, 0x64aaca944469051e, &e.state);
    // As Envoy 1.40 sent it on.
    assert_eq!(out["x-datadog-trace-id"], "9532127138774266268");
    assert_eq!(out["x-datadog-tags"], "_dd.p.tid=0af7651916cd43dd");
    assert_eq!(out["tracestate"], "dd=s:1;p:64aaca944469051e");
    // `dd=` gives priority, origin, parent and tags; other vendors' members are kept after ours.
    let e = extract(&headers(&[
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (
            "tracestate",
            "dd=s:2;o:rum;p:00000000000000aa;t.dm:-3,congo=t61rcWkgMzE",
        ),
    ]))
    .unwrap();
    assert_eq!(e.priority, Some(2));
    assert_eq!(e.state.origin.as_deref(), Some("rum"));
    assert_eq!(e.state.w3c_parent.as_deref(), Some("00000000000000aa"));
    let mut out = HeaderMap::new();
    inject(&mut out, e.trace_id, 1, &e.state);
    assert_eq!(
        out["tracestate"],
        "dd=s:2;p:0000000000000001;o:rum;t.dm:-3,congo=t61rcWkgMzE"
    );
    // Envoy 1.40 puts the W3C trace's `_dd.p.tid` after the tags of `dd=`.
    assert_eq!(
        out["x-datadog-tags"],
        "_dd.p.dm=-3,_dd.p.tid=0af7651916cd43dd"
    );
}

#[test]
fn the_priority_follows_envoys_decision_then_the_agents_rate() {
    let mut s = State::default();
    decide(&mut s, 5, "not-traced", false, None);
    assert_eq!((s.priority, s.agent_rate), (-1, None));
    assert!(s.tags.is_empty());
    let mut s = State::default();
    let rates = Rates::default();
    decide(&mut s, 5, "no-rate-yet", true, Some(&rates));
    assert_eq!((s.priority, s.agent_rate), (1, Some(1.0)));
    assert_eq!(s.tags, vec![("_dd.p.dm".into(), "-0".into())]);
    rates.update(br#"{"rate_by_service":{"service:zero,env:":0,"service:,env:":1}}"#);
    let mut s = State::default();
    decide(&mut s, 5, "zero", true, Some(&rates));
    assert_eq!((s.priority, s.agent_rate), (0, Some(0.0)));
    assert_eq!(s.tags, vec![("_dd.p.ksr".into(), "0".into())]);
    let mut s = State::default();
    decide(&mut s, 5, "other", true, Some(&rates));
    assert_eq!(s.priority, 1);
    // The agent's rate decided: maker -1, the rate as `_dd.p.ksr` (Envoy 1.40's order).
    assert_eq!(
        s.tags,
        vec![
            ("_dd.p.dm".into(), "-1".into()),
            ("_dd.p.ksr".into(), "1".into())
        ]
    );
    assert_eq!(rate_text(0.5), "0.5");
    assert_eq!(rate_text(0.1234567), "0.123457");
    // Knuth sampling keeps about the rate's share.
    let kept = (1..=10_000u64)
        .filter(|id| keeps(id.wrapping_mul(0x9e37_79b9_7f4a_7c15), 0.25))
        .count();
    assert!((2_000..3_000).contains(&kept), "{kept}");
}
