//! Spans as Zipkin JSON v2 (`POST /api/v2/spans`, a JSON list).

use super::span::{FinishedSpan, Kind, nanos};
use serde_json::{Map, Value, json};

pub fn body(service_name: &str, spans: &[FinishedSpan]) -> Vec<u8> {
    let list: Vec<Value> = spans.iter().map(|s| span(service_name, s)).collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

fn span(service_name: &str, s: &FinishedSpan) -> Value {
    let trace_id = if s.trace_id >> 64 == 0 {
        format!("{:016x}", s.trace_id)
    } else {
        format!("{:032x}", s.trace_id)
    };
    let tags: Map<String, Value> = s
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let start = nanos(s.start) / 1_000;
    let mut v = json!({
        "traceId": trace_id,
        "id": format!("{:016x}", s.span_id),
        "name": s.name,
        "kind": match s.kind { Kind::Server => "SERVER", Kind::Client => "CLIENT" },
        "timestamp": start,
        "duration": (nanos(s.end) / 1_000).saturating_sub(start),
        "localEndpoint": {"serviceName": service_name},
        "tags": tags,
    });
    if let Some(parent) = s.parent_id {
        v["parentId"] = Value::String(format!("{parent:016x}"));
    }
    if s.shared {
        v["shared"] = Value::Bool(true);
    }
    v
}
