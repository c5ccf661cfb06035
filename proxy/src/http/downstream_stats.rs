//! The outermost HTTP layer: the connection manager's request statistics (`downstream_rq_total`, `_active`,
//! `_xx`), and what every response carries on its way out (`server`, `Connection: close` while draining).
//! The active-request gauge is given back by a guard, so a client that resets mid-request does not leak it.
//! Each request keeps the connection's stream count until its response body has been sent (the connection's
//! idle timer runs while none is open). `Connection: close` is added while the
//! process drains, or the connection itself does (idle timeout, max connection duration, max requests).

use super::Connection;
use super::attempt::{Attempts, UpstreamHost};
use super::connection_state::ConnectionState;
use super::local_reply::ResponseBody;
use super::stream_guard::{self, OpenStream};
use super::stream_reset::ResetStream;
use crate::access_log::record::{Flags, Record};
use crate::access_log::{Loggers, Notes, finish_response};
use crate::metrics::{self, Metrics};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The connection manager's counters, resolved once per configuration (no label set is built per request).
pub struct DownstreamCounters {
    rq_total: Counter,
    rq_active: Gauge,
    /// `downstream_rq_xx` by class, 1xx to 5xx.
    rq_class: [Counter; 5],
    /// `downstream_cx_max_requests_reached`.
    cx_max_requests_reached: Counter,
    /// `downstream_cx_protocol_error`: codec errors (HTTP/1 refusals, h2 connection errors).
    pub cx_protocol_error: Counter,
}

impl DownstreamCounters {
    pub fn new(metrics: &Metrics, stat_prefix: &str) -> Self {
        let labels = metrics::connection_manager(stat_prefix);
        let class = |c: u16| {
            metrics
                .http_rq_xx
                .get_or_create(&metrics::with_class(labels.clone(), c * 100))
                .clone()
        };
        Self {
            rq_total: metrics.http_rq.get_or_create(&labels).clone(),
            rq_active: metrics.http_rq_active.get_or_create(&labels).clone(),
            rq_class: [class(1), class(2), class(3), class(4), class(5)],
            cx_max_requests_reached: metrics
                .http_cx_max_requests_reached
                .get_or_create(&labels)
                .clone(),
            cx_protocol_error: metrics
                .protocol
                .cx_protocol_error
                .get_or_create(&labels)
                .clone(),
        }
    }
}

impl DownstreamCounters {
    /// A request the codec answered itself (malformed, or its head too late): counted as Envoy counts it.
    pub fn codec_reply(&self, status: u16) {
        self.rq_total.inc();
        // Envoy counts every codec refusal (400, 426, 431, 501) as a protocol error; a late head (408) is not.
        if status != 408 {
            self.cx_protocol_error.inc();
        }
        if let Some(counter) = usize::from(status / 100)
            .checked_sub(1)
            .and_then(|i| self.rq_class.get(i))
        {
            counter.inc();
        }
    }
}

#[derive(Clone)]
pub struct DownstreamStats<S> {
    inner: S,
    connection: Arc<Connection>,
    counters: Arc<DownstreamCounters>,
    state: Arc<ConnectionState>,
    server: Option<HeaderValue>,
    /// The connection manager's access logs; empty (and no tracer), and nothing is recorded.
    access_logs: Arc<Loggers>,
    /// The connection manager's tracer: a sampled request's span is built from the same record.
    tracer: Option<Arc<crate::trace::Tracer>>,
}

impl<S> DownstreamStats<S> {
    pub fn new(
        inner: S,
        connection: Arc<Connection>,
        counters: Arc<DownstreamCounters>,
        state: Arc<ConnectionState>,
        access_logs: Arc<Loggers>,
        tracer: Option<Arc<crate::trace::Tracer>>,
    ) -> Self {
        let server = HeaderValue::from_str(&connection.hcm.server_name).ok();
        Self {
            inner,
            connection,
            counters,
            state,
            server,
            access_logs,
            tracer,
        }
    }
}

/// A request's access log record as it starts: what the connection knows.
/// A request whose headers ended it (`ended`) has been received whole: its `%REQUEST_DURATION%` is 0.
fn start_record(connection: &Connection, version: http::Version, ended: bool) -> Record {
    let tls = connection.tls.as_ref();
    Record {
        start: Some(std::time::SystemTime::now()),
        request_duration: ended.then_some(std::time::Duration::ZERO),
        protocol: Some(match version {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        }),
        downstream_remote: Some(connection.peer),
        downstream_local: Some(connection.destination),
        peer_uri_san: tls
            .and_then(|t| t.peer.as_ref())
            .filter(|p| !p.uris.is_empty())
            .map(|p| p.uris.join(",")),
        ..Record::default()
    }
}

/// What the response tells the record: status, headers, flags, the upstream that answered and how many
/// attempts it took, and Envoy's response code details; with `istio`, the size of the response's head.
fn note_response(
    notes: &Notes,
    loggers: &Loggers,
    response: &Response<ResponseBody>,
    elapsed: std::time::Duration,
    istio: bool,
) {
    let flags = response
        .extensions()
        .get::<Flags>()
        .copied()
        .unwrap_or_default();
    let upstream = response.extensions().get::<UpstreamHost>().map(|h| h.0);
    let connection = response
        .extensions()
        .get::<crate::upstream::UpstreamConnection>()
        .cloned();
    let transport_failure = response
        .extensions()
        .get::<super::failure::TransportFailure>()
        .map(|f| f.0);
    let attempts = response.extensions().get::<Attempts>().map(|a| a.0);
    let reset = response.extensions().get::<ResetStream>().is_some();
    let known = response
        .extensions()
        .get::<crate::access_log::record::Details>()
        .map(|d| d.0);
    notes.with(|r| {
        r.response_code = if reset { 0 } else { response.status().as_u16() };
        r.response_headers = Some(loggers.response_headers(response.headers()));
        if istio {
            r.response_head_size = crate::http::headers::size(response.headers()) as u64 + 2;
        }
        r.flags.merge(flags);
        if let Some(why) = transport_failure {
            r.upstream_failure = Some(why.to_string());
        }
        if let Some(c) = connection {
            r.upstream_local = c.0.local;
            r.upstream_peer = Some(c.0.peer.clone());
        }
        if let Some(host) = upstream {
            r.upstream_host = Some(host);
            r.response_duration = Some(elapsed);
        }
        // Envoy counts 0 attempts when no upstream request started (no route, a local reply).
        let tried = r.upstream_host.is_some();
        r.attempts = Some(attempts.unwrap_or(u32::from(tried)));
        if tried {
            r.upstream_protocol = r.protocol;
        }
        r.response_code_details = Some(
            known
                .unwrap_or_else(|| details(flags, upstream.is_some()))
                .into(),
        );
    });
}

/// `%RESPONSE_CODE_DETAILS%` for the reasons Outrigger answers itself, in Envoy's words.
fn details(flags: Flags, from_upstream: bool) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("NR", "route_not_found"),
        ("NC", "cluster_not_found"),
        ("RL", "local_rate_limited"),
        ("UT", "response_timeout"),
        ("UH", "no_healthy_upstream"),
        ("UO", "upstream_reset_before_response_started{overflow}"),
        (
            "UF",
            "upstream_reset_before_response_started{remote_connection_failure}",
        ),
        ("UR", "upstream_reset_before_response_started{remote_reset}"),
    ];
    if from_upstream {
        return "via_upstream";
    }
    REASONS
        .iter()
        .find(|(flag, _)| flags.contains(flag))
        .map_or("via_upstream", |(_, why)| why)
}

struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<S, B> tower_service::Service<Request<B>> for DownstreamStats<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
    B: http_body::Body,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let http1 = request.version() < http::Version::HTTP_2;
        let istio = self.connection.istio.clone();
        let logged = (!self.access_logs.is_empty() || istio.is_some() || self.tracer.is_some())
            .then(|| {
                let record = start_record(
                    &self.connection,
                    request.version(),
                    request.body().is_end_stream(),
                );
                let notes = if self.access_logs.is_empty() && istio.is_none() {
                    Notes::for_trace_only(record)
                } else {
                    Notes::start(record)
                };
                request.extensions_mut().insert(notes.clone());
                (notes, self.access_logs.clone(), self.tracer.clone())
            });
        let requests = self.state.stream_started(request.version());
        // `max_requests_per_connection`: the last request's response closes an HTTP/1 connection and an h2
        // connection is drained (GOAWAY); decided here, before the response, so it carries `Connection: close`.
        if self
            .connection
            .hcm
            .max_requests_per_connection
            .is_some_and(|max| requests == u64::from(max))
        {
            self.counters.cx_max_requests_reached.inc();
            self.state.start_drain();
        }
        let open = OpenStream::new(self.state.clone());
        let state = self.state.clone();
        let connection = self.connection.clone();
        let counters = self.counters.clone();
        counters.rq_total.inc();
        counters.rq_active.inc();
        let active = Active(counters.rq_active.clone());
        let server = self.server.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let Ok(mut response) = future.await;
            drop(active);
            // Envoy's drain manager also closes connections while the proxy fails its health checks
            // (`POST /healthcheck/fail`).
            let draining = connection.drain.is_draining()
                || state.is_draining()
                || connection
                    .inputs
                    .health_check_failed
                    .load(std::sync::atomic::Ordering::Relaxed);
            if draining && http1 {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(server) = server {
                response.headers_mut().insert(http::header::SERVER, server);
            }
            // A reset stream has no response status.
            let class = usize::from(response.status().as_u16() / 100);
            if response.extensions().get::<ResetStream>().is_none()
                && let Some(counter) = class.checked_sub(1).and_then(|i| counters.rq_class.get(i))
            {
                counter.inc();
            }
            Ok(match logged {
                Some((notes, loggers, tracer)) if notes.needed() => {
                    let headers_at = notes.elapsed();
                    note_response(&notes, &loggers, &response, headers_at, istio.is_some());
                    // One box for both: the stream ends, then the line is written.
                    response.map(|body| {
                        let guarded = stream_guard::guarded(body, open);
                        finish_response(guarded, notes, headers_at, loggers, istio, tracer).boxed()
                    })
                }
                _ => response.map(|body| stream_guard::guard(body, open)),
            })
        })
    }
}
