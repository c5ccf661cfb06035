//! A span as it leaves the data path: ids, name, kind, times and Envoy's tags.

use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

#[derive(Debug)]
pub struct FinishedSpan {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_id: Option<u64>,
    pub name: String,
    pub kind: Kind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub tracestate: Option<String>,
    /// Envoy's tag names and string values, in the order Envoy sets them.
    pub tags: Vec<(String, String)>,
    /// Zipkin only: the span continues the caller's span (same id, `shared: true`).
    pub shared: bool,
}

impl FinishedSpan {
    /// `error: true` among the tags.
    pub fn is_error(&self) -> bool {
        self.tags.iter().any(|(k, v)| k == "error" && v == "true")
    }
}

pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
