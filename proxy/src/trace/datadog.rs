//! `envoy.tracers.datadog` as Envoy 1.40 runs it (its tracer is Datadog's C++ library): the trace context read
//! from and written to requests, the sampling priority, and the agent's sampling rates.
//!
//! Checked with Envoy 1.40 and a fake agent:
//! - Extraction tries the Datadog headers (`x-datadog-trace-id`, `-parent-id`, `-sampling-priority`, `-origin`,
//!   `-tags`), then W3C `traceparent`/`tracestate` (with its `dd=` member). Injection writes both.
//! - A new trace's id is 128 bits: the high half is `<unix seconds, 32 bits><32 zero bits>` (sent as the
//!   `_dd.p.tid` tag), the low half equals the root span's id.
//! - Priority: an extracted one is kept. Otherwise, when Envoy's own decision does not trace the request, it is
//!   -1 (user drop); when it does, the agent's rate for the service decides (1 before the agent answers):
//!   priority 1 with `_dd.p.dm=-0` and `_dd.agent_psr`, or 0.
//! - Every span is sent to the agent whatever its priority: the agent drops what the priority says.

use super::context;
use http::HeaderMap;
use http::header::HeaderValue;
use outrigger_config::model::tracing::Datadog;
use std::collections::HashMap;
use std::sync::RwLock;

/// The trace's Datadog state, carried from `start` to the span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// -1 user drop, 0 auto drop, 1 auto keep, 2 user keep.
    pub priority: i32,
    pub origin: Option<String>,
    /// The propagated `_dd.p.*` tags in Envoy's order: as received (a W3C context's `_dd.p.tid` after its
    /// `t.` tags), then ours (a new trace's `_dd.p.tid`, then `_dd.p.dm`).
    pub tags: Vec<(String, String)>,
    /// The `tracestate` members of other vendors, written back after ours.
    pub other_tracestate: Option<String>,
    /// `_dd.agent_psr`: the agent rate that decided.
    pub agent_rate: Option<f64>,
    /// `_dd.parent_id`: a W3C context's last Datadog parent (`p:` of `dd=`, zeros without one).
    pub w3c_parent: Option<String>,
}

/// What a request carried.
#[derive(Debug, PartialEq)]
pub struct Extracted {
    pub trace_id: u128,
    /// None: a Datadog context without `x-datadog-parent-id`.
    pub parent_id: Option<u64>,
    pub priority: Option<i32>,
    pub state: State,
}

/// The caller's context. Datadog headers that are there but unusable (an id that is not a number, a trace id
/// without a parent id or an origin) start a new trace, W3C headers or not: checked with Envoy 1.40.
pub fn extract(headers: &HeaderMap) -> Option<Extracted> {
    match extract_datadog(headers) {
        Some(found) => found,
        None => extract_w3c(headers),
    }
}

fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// None without `x-datadog-trace-id`; `Some(None)` when the Datadog headers cannot be used.
fn extract_datadog(headers: &HeaderMap) -> Option<Option<Extracted>> {
    let trace = get(headers, "x-datadog-trace-id")?;
    Some(parse_datadog(headers, trace))
}

fn parse_datadog(headers: &HeaderMap, trace: &str) -> Option<Extracted> {
    let low: u64 = trace.trim().parse().ok().filter(|id| *id != 0)?;
    // A header that is there must parse.
    let parent_id = match get(headers, "x-datadog-parent-id") {
        Some(p) => Some(p.trim().parse::<u64>().ok()?),
        None => None,
    };
    let priority = match get(headers, "x-datadog-sampling-priority") {
        Some(p) => Some(p.trim().parse::<i32>().ok()?),
        None => None,
    };
    let origin = get(headers, "x-datadog-origin").map(str::to_string);
    // Without a parent only a trace with an origin (e.g. synthetics) is continued.
    if parent_id.is_none() && origin.is_none() {
        return None;
    }
    let mut high = 0u64;
    let mut tags = Vec::new();
    for pair in get(headers, "x-datadog-tags").unwrap_or("").split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "_dd.p.tid" {
            high = u64::from_str_radix(v, 16).unwrap_or(0);
        }
        if k.starts_with("_dd.p.") {
            tags.push((k.to_string(), v.to_string()));
        }
    }
    Some(Extracted {
        trace_id: (u128::from(high) << 64) | u128::from(low),
        parent_id,
        priority,
        state: State {
            priority: priority.unwrap_or(0),
            origin,
            tags,
            other_tracestate: None,
            agent_rate: None,
            w3c_parent: None,
        },
    })
}

fn extract_w3c(headers: &HeaderMap) -> Option<Extracted> {
    let c = context::read_w3c(headers)?;
    let sampled = c.sampled.unwrap_or(false);
    let mut priority = i32::from(sampled);
    let (mut origin, mut tags, mut parent, mut others) = (None, Vec::new(), None, Vec::new());
    for member in c.tracestate.as_deref().unwrap_or("").split(',') {
        let member = member.trim();
        let Some(dd) = member.strip_prefix("dd=") else {
            if !member.is_empty() {
                others.push(member);
            }
            continue;
        };
        for field in dd.split(';') {
            let Some((k, v)) = field.split_once(':') else {
                continue;
            };
            match k {
                // The `dd=` priority counts when it agrees with the sampled flag.
                "s" => {
                    if let Ok(s) = v.parse::<i32>()
                        && (s > 0) == sampled
                    {
                        priority = s;
                    }
                }
                "o" => origin = Some(v.replace('~', "=")),
                "p" => parent = Some(v.to_string()),
                _ => {
                    if let Some(tag) = k.strip_prefix("t.") {
                        tags.push((format!("_dd.p.{tag}"), v.replace('~', "=")));
                    }
                }
            }
        }
    }
    push_tid(&mut tags, c.trace_id);
    Some(Extracted {
        trace_id: c.trace_id,
        parent_id: Some(c.span_id),
        priority: Some(priority),
        state: State {
            priority,
            origin,
            tags,
            other_tracestate: (!others.is_empty()).then(|| others.join(",")),
            agent_rate: None,
            w3c_parent: Some(parent.unwrap_or_else(|| "0000000000000000".into())),
        },
    })
}

impl super::Tracer {
    /// `start` for the Datadog tracer: continues or begins the trace, decides its priority, writes the headers
    /// the upstream sees. Every request has a span (the agent drops by priority).
    pub(super) fn start_datadog(
        &self,
        config: &Datadog,
        envoy_traced: bool,
        headers: &mut HeaderMap,
        authority: Option<&str>,
    ) -> super::Active {
        let span_id = super::nonzero_u64();
        let (trace_id, parent_id, mut state, decided) = match extract(headers) {
            Some(e) => (e.trace_id, e.parent_id, e.state, e.priority.is_some()),
            None => {
                let trace_id = new_trace_id(span_id);
                let mut state = State::default();
                push_tid(&mut state.tags, trace_id);
                (trace_id, None, state, false)
            }
        };
        if !decided {
            // The tracer's agent rates (none without a collector address: nothing is uploaded then).
            let rates = self.destination.as_ref().and_then(|d| match &d.kind {
                super::export::DestinationKind::Datadog { rates, .. } => Some(&**rates),
                _ => None,
            });
            decide(
                &mut state,
                trace_id,
                &config.service_name,
                envoy_traced,
                rates,
            );
        }
        let upstream_span = self.config.spawn_upstream_span.then(super::nonzero_u64);
        inject(headers, trace_id, upstream_span.unwrap_or(span_id), &state);
        super::Active {
            trace_id,
            span_id,
            parent_id,
            tracestate: None,
            upstream_span,
            attempts: Vec::new(),
            propagation: super::Propagation {
                b3: false,
                w3c: false,
            },
            datadog: Some(Box::new(state)),
            segment: None,
            shared: false,
            start: std::time::SystemTime::now(),
            name: self.span_name(authority),
        }
    }
}

/// `_dd.p.tid`: the high half of a 128-bit trace id, when it has one.
fn push_tid(tags: &mut Vec<(String, String)>, trace_id: u128) {
    let high = (trace_id >> 64) as u64;
    if high != 0 {
        tags.push(("_dd.p.tid".into(), format!("{high:016x}")));
    }
}

/// A new trace's id: `<unix seconds><32 zero bits>` above the root span's id.
pub fn new_trace_id(span_id: u64) -> u128 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() & 0xffff_ffff);
    (u128::from(seconds) << 96) | u128::from(span_id)
}

/// The priority of a trace no caller decided: -1 when Envoy does not trace it, else the agent's rate.
pub fn decide(
    state: &mut State,
    trace_id: u128,
    service: &str,
    envoy_traced: bool,
    rates: Option<&Rates>,
) {
    if !envoy_traced {
        state.priority = -1;
        return;
    }
    // Before the agent has sent a rate for the service: 1, decision maker "-0" (default); after: the agent's
    // rate, decision maker "-1", and the rate itself as `_dd.p.ksr` (checked with Envoy 1.40).
    let from_agent = rates.and_then(|r| r.get(service));
    let rate = from_agent.unwrap_or(1.0);
    let keep = keeps(trace_id as u64, rate);
    state.agent_rate = Some(rate);
    state.priority = i32::from(keep);
    if keep {
        state.tags.retain(|(k, _)| k != "_dd.p.dm");
        let maker = if from_agent.is_some() { "-1" } else { "-0" };
        state.tags.push(("_dd.p.dm".into(), maker.into()));
    }
    if let Some(rate) = from_agent {
        state.tags.retain(|(k, _)| k != "_dd.p.ksr");
        state.tags.push(("_dd.p.ksr".into(), rate_text(rate)));
    }
}

/// A rate as Datadog writes it: at most six decimals, no trailing zeros (`1`, `0`, `0.5`).
fn rate_text(rate: f64) -> String {
    let text = format!("{rate:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Datadog's deterministic sampling: the trace id times Knuth's constant, against the rate's share of 2^64.
fn keeps(trace_id_low: u64, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let threshold = (rate * u64::MAX as f64) as u64;
    trace_id_low.wrapping_mul(1_111_111_111_111_111_111) < threshold
}

/// The agent's `rate_by_service` (keys `service:NAME,env:ENV`; `service:,env:` is its default), one table per
/// tracer as in Envoy: a tracer's traces follow the answers to its own uploads.
#[derive(Default)]
pub struct Rates(RwLock<HashMap<String, f64>>);

impl Rates {
    /// The agent's rate for `service`, once the agent has sent one.
    fn get(&self, service: &str) -> Option<f64> {
        let rates = self.0.read().ok()?;
        // No `DD_ENV`: Envoy's tracer has an empty env.
        rates
            .get(&format!("service:{service},env:"))
            .or_else(|| rates.get("service:,env:"))
            .copied()
    }

    /// Reads the agent's answer to an upload (`{"rate_by_service": {...}}`); anything else keeps the rates.
    pub fn update(&self, body: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let Some(by_service) = answer.get("rate_by_service").and_then(|r| r.as_object()) else {
            return;
        };
        let fresh: HashMap<String, f64> = by_service
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?.clamp(0.0, 1.0))))
            .collect();
        if let Ok(mut rates) = self.0.write() {
            *rates = fresh;
        }
    }
}

/// `x-datadog-tags` (and the `t.` fields of `dd=`) are refused past this size, as Envoy's tracer does.
const TAGS_HEADER_MAX: usize = 512;

/// Writes the Datadog and W3C headers for the span `span_id` of `trace_id`.
pub fn inject(headers: &mut HeaderMap, trace_id: u128, span_id: u64, state: &State) {
    // The trace id's high half travels in `_dd.p.tid` (among `state.tags`).
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-datadog-trace-id", (trace_id as u64).to_string());
    set("x-datadog-parent-id", span_id.to_string());
    set("x-datadog-sampling-priority", state.priority.to_string());
    if let Some(origin) = &state.origin {
        set("x-datadog-origin", origin.clone());
    }
    let tags: Vec<String> = state.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let tags = tags.join(",");
    if !tags.is_empty() && tags.len() <= TAGS_HEADER_MAX {
        set("x-datadog-tags", tags);
    } else {
        headers.remove("x-datadog-tags");
    }
    let mut dd = format!("dd=s:{};p:{span_id:016x}", state.priority);
    if let Some(origin) = &state.origin {
        dd.push_str(&format!(";o:{}", origin.replace('=', "~")));
    }
    for (k, v) in &state.tags {
        if k == "_dd.p.tid" {
            continue;
        }
        if let Some(name) = k.strip_prefix("_dd.p.") {
            dd.push_str(&format!(";t.{name}:{}", v.replace('=', "~")));
        }
    }
    let tracestate = match &state.other_tracestate {
        Some(others) => format!("{dd},{others}"),
        None => dd,
    };
    context::write_w3c(
        headers,
        trace_id,
        span_id,
        state.priority > 0,
        Some(&tracestate),
    );
}

/// The span's Datadog tags: the trace-level meta and the metrics the encoder turns into numbers.
pub fn span_tags(state: &State, tags: &mut Vec<(String, String)>) {
    tags.extend(state.tags.iter().cloned());
    if let Some(origin) = &state.origin {
        tags.push(("_dd.origin".into(), origin.clone()));
    }
    if let Some(parent) = &state.w3c_parent {
        tags.push(("_dd.parent_id".into(), parent.clone()));
    }
    tags.push((
        super::datadog_encode::PRIORITY_METRIC.into(),
        state.priority.to_string(),
    ));
    if let Some(rate) = state.agent_rate {
        tags.push((
            super::datadog_encode::AGENT_RATE_METRIC.into(),
            rate.to_string(),
        ));
    }
}

#[cfg(test)]
mod tests;
