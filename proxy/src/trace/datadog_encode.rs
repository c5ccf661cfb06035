//! Spans as the Datadog agent's `/v0.4/traces` takes them: a msgpack array of trace chunks, each an array of
//! span maps (`service name resource trace_id span_id parent_id start duration error meta metrics type`).
//!
//! The request span of each request is a chunk's root; its upstream attempt spans (`spawn_upstream_span`) go in
//! its chunk. `error` is a field, not a tag; the sampling priority and the agent rate are metrics.

use super::span::{FinishedSpan, nanos};
use std::collections::HashMap;

/// Tags that travel from the tracer to here under these names and leave as metrics.
pub const PRIORITY_METRIC: &str = "_sampling_priority_v1";
pub const AGENT_RATE_METRIC: &str = "_dd.agent_psr";

/// The span name Envoy's Datadog tracer gives every span (the operation is the `resource`).
const SPAN_NAME: &str = "envoy.proxy";

/// What every span of the process carries besides its own tags.
pub struct Process {
    pub runtime_id: String,
    pub pid: u32,
}

pub fn process() -> &'static Process {
    static PROCESS: std::sync::OnceLock<Process> = std::sync::OnceLock::new();
    PROCESS.get_or_init(|| Process {
        runtime_id: uuid::Builder::from_random_bytes(fastrand::u128(..).to_be_bytes())
            .into_uuid()
            .to_string(),
        pid: std::process::id(),
    })
}

/// The body and its number of chunks (the `X-Datadog-Trace-Count` header).
pub fn body(service: &str, spans: &[FinishedSpan]) -> (Vec<u8>, usize) {
    let chunks = chunks(spans);
    let mut out = Vec::with_capacity(256 * spans.len());
    write_array(&mut out, chunks.len());
    for chunk in &chunks {
        write_array(&mut out, chunk.len());
        for &i in chunk {
            if let Some(span) = spans.get(i) {
                write_span(&mut out, service, span);
            }
        }
    }
    (out, chunks.len())
}

/// Spans grouped by the request span they descend from, in the order the roots arrived.
fn chunks(spans: &[FinishedSpan]) -> Vec<Vec<usize>> {
    let by_id: HashMap<(u128, u64), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id, s.span_id), i))
        .collect();
    let root = |mut i: usize| {
        // Bounded: a chain cannot be longer than the batch.
        for _ in 0..spans.len() {
            let s = &spans[i];
            match s.parent_id.and_then(|p| by_id.get(&(s.trace_id, p))) {
                Some(&parent) if parent != i => i = parent,
                _ => break,
            }
        }
        i
    };
    let mut order: Vec<usize> = Vec::new();
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..spans.len() {
        let r = root(i);
        let entry = members.entry(r).or_insert_with(|| {
            order.push(r);
            Vec::new()
        });
        entry.push(i);
    }
    order
        .into_iter()
        .filter_map(|r| {
            let mut m = members.remove(&r)?;
            // The root first, as Envoy's tracer writes a chunk.
            m.sort_by_key(|&i| i != r);
            Some(m)
        })
        .collect()
}

fn write_span(out: &mut Vec<u8>, service: &str, s: &FinishedSpan) {
    let start = nanos(s.start);
    let duration = nanos(s.end).saturating_sub(start);
    let mut meta: Vec<(&str, &str)> = Vec::with_capacity(s.tags.len() + 3);
    let mut metrics: Vec<(&str, f64)> = Vec::new();
    for (k, v) in &s.tags {
        match k.as_str() {
            "error" => {}
            PRIORITY_METRIC | AGENT_RATE_METRIC => {
                if let Ok(n) = v.parse::<f64>() {
                    metrics.push((k, n));
                }
            }
            // Envoy's Datadog span makes `error.reason` the span's error message too (checked with Envoy 1.40:
            // an attempt that failed to connect carries both).
            "error.reason" => {
                meta.push((k, v));
                meta.push(("error.message", v));
            }
            _ => meta.push((k, v)),
        }
    }
    let p = process();
    meta.push(("language", "rust"));
    meta.push(("runtime-id", &p.runtime_id));
    let version = concat!("outrigger ", env!("CARGO_PKG_VERSION"));
    meta.push(("version", version));
    metrics.push(("process_id", f64::from(p.pid)));

    write_map(out, 12);
    write_str(out, "service");
    write_str(out, service);
    write_str(out, "name");
    write_str(out, SPAN_NAME);
    write_str(out, "resource");
    write_str(out, &s.name);
    write_str(out, "trace_id");
    write_u64(out, s.trace_id as u64);
    write_str(out, "span_id");
    write_u64(out, s.span_id);
    write_str(out, "parent_id");
    write_u64(out, s.parent_id.unwrap_or(0));
    write_str(out, "start");
    write_u64(out, start);
    write_str(out, "duration");
    write_u64(out, duration);
    write_str(out, "error");
    let error = s.is_error() || s.tags.iter().any(|(k, _)| k == "error.reason");
    write_u64(out, u64::from(error));
    write_str(out, "meta");
    write_map(out, meta.len());
    for (k, v) in meta {
        write_str(out, k);
        write_str(out, v);
    }
    write_str(out, "metrics");
    write_map(out, metrics.len());
    for (k, v) in metrics {
        write_str(out, k);
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_f64(out, v);
    }
    write_str(out, "type");
    write_str(out, "web");
}

// Writing to a Vec cannot fail; the results are dropped.
fn write_array(out: &mut Vec<u8>, len: usize) {
    let _ = rmp::encode::write_array_len(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn write_map(out: &mut Vec<u8>, len: usize) {
    let _ = rmp::encode::write_map_len(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = rmp::encode::write_str(out, s);
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    let _ = rmp::encode::write_uint(out, n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::span::Kind;
    use std::time::{Duration, SystemTime};

    fn span(span_id: u64, parent_id: Option<u64>, tags: &[(&str, &str)]) -> FinishedSpan {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        FinishedSpan {
            trace_id: (7u128 << 64) | 42,
            span_id,
            parent_id,
            name: format!("op{span_id}"),
            kind: Kind::Server,
            start,
            end: start + Duration::from_millis(3),
            tracestate: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            shared: false,
        }
    }

    #[test]
    fn spans_are_chunked_by_request_and_tags_split_into_meta_and_metrics() {
        // An attempt span (child of 1) before its request span, then another request's span.
        let spans = vec![
            span(2, Some(1), &[("error.reason", "remote connection failure")]),
            span(
                1,
                None,
                &[
                    ("error", "true"),
                    (PRIORITY_METRIC, "1"),
                    ("http.method", "GET"),
                ],
            ),
            span(3, Some(99), &[(AGENT_RATE_METRIC, "0.5")]),
        ];
        let (body, chunks) = body("svc", &spans);
        assert_eq!(chunks, 2);
        let value = rmpv::decode::read_value(&mut &body[..]).unwrap();
        let chunks = value.as_array().unwrap();
        let ids = |c: &rmpv::Value| -> Vec<u64> {
            c.as_array()
                .unwrap()
                .iter()
                .map(|s| field(s, "span_id").as_u64().unwrap())
                .collect()
        };
        // The request span first in its chunk, its attempt after it; the other request alone.
        assert_eq!(ids(&chunks[0]), vec![1, 2]);
        assert_eq!(ids(&chunks[1]), vec![3]);
        let root = &chunks[0].as_array().unwrap()[0];
        let attempt = &chunks[0].as_array().unwrap()[1];
        assert_eq!(field(root, "name").as_str(), Some("envoy.proxy"));
        assert_eq!(field(root, "resource").as_str(), Some("op1"));
        assert_eq!(field(root, "service").as_str(), Some("svc"));
        assert_eq!(field(root, "type").as_str(), Some("web"));
        assert_eq!(field(root, "trace_id").as_u64(), Some(42));
        assert_eq!(field(root, "parent_id").as_u64(), Some(0));
        assert_eq!(field(attempt, "parent_id").as_u64(), Some(1));
        assert_eq!(field(root, "duration").as_u64(), Some(3_000_000));
        assert_eq!(
            field(root, "start").as_u64(),
            Some(1_800_000_000_000_000_000)
        );
        // `error` is a field, not meta; the priority and the agent rate are metrics.
        assert_eq!(field(root, "error").as_u64(), Some(1));
        assert!(field(field(root, "meta"), "error").is_nil());
        assert_eq!(
            field(field(root, "meta"), "http.method").as_str(),
            Some("GET")
        );
        assert_eq!(
            field(field(root, "metrics"), PRIORITY_METRIC).as_f64(),
            Some(1.0)
        );
        let other = &chunks[1].as_array().unwrap()[0];
        assert_eq!(
            field(field(other, "metrics"), AGENT_RATE_METRIC).as_f64(),
            Some(0.5)
        );
        // `error.reason` is the error message too, and an error.
        assert_eq!(field(attempt, "error").as_u64(), Some(1));
        assert_eq!(
            field(field(attempt, "meta"), "error.message").as_str(),
            Some("remote connection failure")
        );
    }

    /// A map's value by key (nil when absent).
    fn field<'a>(map: &'a rmpv::Value, key: &str) -> &'a rmpv::Value {
        static NIL: rmpv::Value = rmpv::Value::Nil;
        map.as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map_or(&NIL, |(_, v)| v)
    }
}
