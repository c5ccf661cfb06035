//! `spawn_upstream_span`: one CLIENT span per upstream attempt, as Envoy 1.40's router makes them (checked with
//! its Zipkin and OpenTelemetry tracers, a `retry_on: 5xx` / `connect-failure` policy and a per-try timeout).
//!
//! Each attempt gets its own span id, written into that attempt's `traceparent` / B3 headers, and its own start
//! and end. Its tags describe the attempt, not the request: `http.status_code` is the attempt's (0 when no
//! response came), `response_flags` the attempt's own (`UF` for a connect failure, `UT` for a per-try timeout,
//! `-` for an attempt that got a response, even when the request ends `URX`), `error.reason` after a connect
//! failure, `canceled: true` when the router reset the attempt (a per-try timeout, a retried response, a hedge
//! that lost), and `retry.count: N` on the N-th retry.
//!
//! Only a sampled request with `spawn_upstream_span` records attempts: the attempt layer asks `Active` and
//! does nothing else otherwise.

use super::Active;
use http::HeaderMap;
use std::net::SocketAddr;
use std::time::SystemTime;

/// One attempt at the upstream, as its span will tell it.
#[derive(Debug, Clone)]
pub struct AttemptSpan {
    pub span_id: u64,
    pub start: SystemTime,
    /// None while the attempt's response is still being sent: it ends with the request.
    pub end: Option<SystemTime>,
    pub host: SocketAddr,
    /// 0 until a response arrives.
    pub status: u16,
    /// The attempt's protocol once it has a connection (`-` after a connect failure).
    pub protocol: Option<&'static str>,
    pub flags: &'static str,
    pub error_reason: Option<String>,
    /// Reset by the router: an attempt stays canceled unless its response is the one the request keeps.
    pub canceled: bool,
}

impl AttemptSpan {
    fn new(span_id: u64, host: SocketAddr) -> Self {
        Self {
            span_id,
            start: SystemTime::now(),
            end: None,
            host,
            status: 0,
            protocol: None,
            flags: "-",
            error_reason: None,
            canceled: true,
        }
    }
}

/// How an attempt ended, as the attempt layer saw it.
pub enum AttemptEnd {
    /// Response headers arrived (the span ends with the request unless a retry drops this response).
    Response {
        status: u16,
        protocol: &'static str,
    },
    ConnectFailed,
    PerTryTimeout,
    Reset,
    /// The cluster's `max_pending_requests` refused to queue it.
    Overflow,
}

impl Active {
    /// Starts the span of an attempt to `host` and writes its context into the attempt's `headers`; returns
    /// its index for `end_attempt`. None unless `spawn_upstream_span` is on.
    pub fn begin_attempt(&mut self, headers: &mut HeaderMap, host: SocketAddr) -> Option<usize> {
        let first = self.upstream_span?;
        if let Some(segment) = &self.segment {
            // SkyWalking: exit spans 1, 2, … of the segment, each attempt's `sw8` naming its own and the host.
            let span_id = self.attempts.len() as u64 + 1;
            let header = segment.header(
                i32::try_from(span_id).unwrap_or(i32::MAX),
                &host.to_string(),
            );
            if let Ok(value) = http::HeaderValue::from_str(&header) {
                headers.insert(super::sw8::HEADER, value);
            }
            self.attempts.push(AttemptSpan::new(span_id, host));
            return Some(self.attempts.len() - 1);
        }
        // The first attempt uses the id `start` already wrote into the request; each retry gets its own.
        let span_id = if self.attempts.is_empty() {
            first
        } else {
            super::nonzero_u64()
        };
        if !self.attempts.is_empty() {
            self.propagation.write(
                headers,
                self.trace_id,
                span_id,
                self.span_id,
                &self.tracestate,
                self.datadog.as_deref(),
            );
        }
        self.attempts.push(AttemptSpan::new(span_id, host));
        Some(self.attempts.len() - 1)
    }

    /// Records how the attempt `index` ended.
    pub fn end_attempt(&mut self, index: usize, end: AttemptEnd, downstream: Option<&'static str>) {
        let Some(a) = self.attempts.get_mut(index) else {
            return;
        };
        match end {
            AttemptEnd::Response { status, protocol } => {
                a.status = status;
                a.protocol = Some(protocol);
                a.canceled = false;
                return;
            }
            AttemptEnd::ConnectFailed => {
                a.protocol = Some("-");
                a.flags = "UF";
                a.canceled = false;
                // Envoy's upstream transport failure reason for a refused or failed connection.
                a.error_reason = Some("remote connection failure".into());
            }
            AttemptEnd::PerTryTimeout => {
                a.protocol = downstream;
                a.flags = "UT";
            }
            AttemptEnd::Reset => {
                a.protocol = downstream;
                a.flags = "UR";
                a.canceled = false;
            }
            AttemptEnd::Overflow => {
                a.flags = "UO";
                a.canceled = false;
            }
        }
        a.end = Some(SystemTime::now());
    }

    /// The router drops the response of the attempt `index` to retry: Envoy resets that upstream request.
    pub fn cancel_attempt(&mut self, index: usize) {
        if let Some(a) = self.attempts.get_mut(index)
            && a.end.is_none()
        {
            a.canceled = true;
            a.end = Some(SystemTime::now());
        }
    }

    /// The index of the latest attempt, if any.
    pub fn last_attempt(&self) -> Option<usize> {
        self.attempts.len().checked_sub(1)
    }
}

/// The tags of an attempt's span, in the order Envoy sets them.
pub fn tags(a: &AttemptSpan, retry: usize, cluster: &str) -> Vec<(String, String)> {
    let mut tags = vec![
        ("component".to_string(), "proxy".to_string()),
        ("upstream_cluster".into(), cluster.to_string()),
        ("upstream_cluster.name".into(), cluster.to_string()),
    ];
    if retry > 0 {
        tags.push(("retry.count".into(), retry.to_string()));
    }
    tags.push(("upstream_address".into(), a.host.to_string()));
    tags.push(("peer.address".into(), a.host.to_string()));
    tags.push(("http.protocol".into(), a.protocol.unwrap_or("-").into()));
    tags.push(("http.status_code".into(), a.status.to_string()));
    tags.push(("response_flags".into(), a.flags.into()));
    if a.status == 0 || a.status >= 500 {
        tags.push(("error".into(), "true".into()));
    }
    if let Some(reason) = &a.error_reason {
        tags.push(("error.reason".into(), reason.clone()));
    }
    if a.canceled {
        tags.push(("canceled".into(), "true".into()));
    }
    tags
}

/// An upstream attempt's `http.protocol`: Envoy's HTTP/1 codec speaks HTTP/1.1 to the upstream, and its span
/// says so even when the server answers HTTP/1.0 (checked with Envoy 1.40 against Python's http.server).
pub fn upstream_protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.1",
        other => protocol_name(other),
    }
}

/// Envoy's name of an HTTP version (`http.protocol`).
pub fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}
