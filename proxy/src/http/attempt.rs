//! One attempt at the upstream, the innermost service of a route's stack: the cluster's circuit breaker, the
//! load balancer (which skips hosts that outlier detection ejected, and hosts a retry must avoid), the pooled
//! connection, and the result reported back to outlier detection.
//!
//! The per-try timeouts live here rather than in a layer of their own: Envoy's start once the attempt has a
//! host, and the host is what outlier detection charges a timeout to. `per_try_timeout` bounds the wait for the
//! response headers; `per_try_idle_timeout` bounds every wait for data from the upstream, the headers and then
//! each piece of the body (past the headers, it resets the response).

use super::failure::Failure;
use super::local_reply::ResponseBody;
use super::replay_body::RequestBody;
use crate::trace::upstream::AttemptEnd;
use crate::upstream::{ClusterState, Outcome, SendError};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Where a request goes; set by the router in the request's extensions.
#[derive(Clone)]
pub struct Target {
    pub cluster: Arc<ClusterState>,
    /// The connection's original destination (for ORIGINAL_DST clusters).
    pub destination: SocketAddr,
    /// The proxy's own addresses, never a destination.
    pub own_addresses: Arc<[SocketAddr]>,
    pub downstream_version: http::Version,
    /// `auto_host_rewrite`: `Host` becomes the DNS name of the chosen endpoint.
    pub auto_host: bool,
    /// The virtual host's `include_request_attempt_count`: each attempt carries `x-envoy-attempt-count`.
    pub attempt_count_header: bool,
    /// The request's access log record, when its connection manager logs.
    pub notes: Option<crate::access_log::Notes>,
    /// The route's `hash_policy` applied to the request, for a consistent-hash cluster.
    pub hash: Option<u64>,
}

/// How many attempts a response took, in its extensions (for `include_attempt_count_in_response`).
#[derive(Clone, Copy, Debug)]
pub struct Attempts(pub u32);

/// Hosts earlier attempts went to, which the retry policy asks the next attempt to avoid
/// (`envoy.retry_host_predicates.previous_hosts`).
#[derive(Clone, Debug, Default)]
pub struct PreviousHosts {
    pub hosts: Vec<SocketAddr>,
    /// `host_selection_retry_max_attempts`: how many times a pick may be redrawn.
    pub max_redraws: u32,
}

/// The upstream host that answered, in the response's extensions.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamHost(pub SocketAddr);

#[derive(Clone)]
pub struct Attempt {
    pub per_try_timeout: Option<Duration>,
    pub per_try_idle_timeout: Option<Duration>,
}

impl tower_service::Service<Request<RequestBody>> for Attempt {
    type Response = Response<ResponseBody>;
    type Error = Failure;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Failure>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        Box::pin(send(request, self.clone()))
    }
}

async fn send(
    mut request: Request<RequestBody>,
    limits: Attempt,
) -> Result<Response<ResponseBody>, Failure> {
    let Some(target) = request.extensions_mut().remove::<Target>() else {
        return Err(Failure::NoHealthyUpstream(
            "the router set no target".into(),
        ));
    };
    let avoid = request.extensions_mut().remove::<PreviousHosts>();
    let cluster = &target.cluster;
    let permit = cluster.breaker.request().map_err(|_| {
        // Since Envoy 1.38 a max_requests overflow counts here, not in upstream_rq_pending_overflow.
        cluster.stats.active_overflow.inc();
        Failure::Overflow
    })?;
    let picked = cluster
        .pick_avoiding(
            Some(target.destination),
            &target.own_addresses,
            avoid.as_ref(),
            target.hash,
        )
        .map_err(|e| {
            cluster.stats.none_healthy.inc();
            Failure::NoHealthyUpstream(e.to_string())
        })?;
    let host = picked.address;
    // A sampled request with `spawn_upstream_span` gets a span for this attempt, its context in the headers.
    let mut span = None;
    if let Some(notes) = &target.notes {
        notes.with(|r| {
            r.upstream_host = Some(host);
            span = r
                .trace
                .as_mut()
                .and_then(|t| t.begin_attempt(request.headers_mut(), host));
        });
    }
    let end_span = |end: AttemptEnd| {
        if let (Some(index), Some(notes)) = (span, &target.notes) {
            notes.with(|r| {
                let downstream = r.protocol;
                if let Some(trace) = r.trace.as_mut() {
                    trace.end_attempt(index, end, downstream);
                }
            });
        }
    };
    let active = cluster.balancer().start(host);
    if target.auto_host
        && let Some(name) = cluster.hostname_of(host)
        && let Ok(value) = HeaderValue::from_str(&name)
    {
        request.headers_mut().insert(http::header::HOST, value);
    }
    let request = request.map(|body| body.boxed());
    let load = cluster
        .load_of(host)
        .map(crate::load_report::AttemptLoad::start);
    let sending = cluster
        .http
        .send(picked, request, target.downstream_version);
    // Whichever per-try limit comes first bounds the wait for the headers.
    let limit = [limits.per_try_timeout, limits.per_try_idle_timeout]
        .into_iter()
        .flatten()
        .min();
    // The route's timeout may drop this attempt while it waits for the headers: Envoy has counted the request
    // in `upstream_rq_total` by then, so count it when dropped here.
    let mut cancelled = CountIfDropped(Some(&cluster.counters.rq_total));
    let result = match limit {
        Some(limit) => match tokio::time::timeout(limit, sending).await {
            Ok(result) => result,
            Err(_) => {
                cancelled.0 = None;
                cluster.counters.rq_total.inc();
                if limits.per_try_timeout == Some(limit) {
                    cluster.stats.per_try_timeout.inc();
                } else {
                    cluster.stats.per_try_idle_timeout.inc();
                }
                // `upstream_rq_timeout` is the route's timeout only (counted where it fires).
                cluster.report(host, Outcome::Timeout);
                end_span(AttemptEnd::PerTryTimeout);
                return Err(Failure::PerTryTimeout { host });
            }
        },
        None => sending.await,
    };
    cancelled.0 = None;
    // Like Envoy, `upstream_rq_total` counts the attempts that got a connection: not the failed connects.
    if !matches!(
        result,
        Err(SendError::Connect(_) | SendError::ConnectTimeout(_) | SendError::Overflow)
    ) {
        cluster.counters.rq_total.inc();
    }
    match &result {
        Ok((response, _)) => end_span(AttemptEnd::Response {
            status: response.status().as_u16(),
            protocol: crate::trace::upstream::upstream_protocol_name(response.version()),
        }),
        Err(SendError::Connect(_) | SendError::ConnectTimeout(_)) => {
            end_span(AttemptEnd::ConnectFailed);
        }
        Err(SendError::Reset(_)) => end_span(AttemptEnd::Reset),
        Err(SendError::Overflow) => end_span(AttemptEnd::Overflow),
    }
    let in_progress = match (&result, load) {
        (Ok((response, _)), Some(load)) => load.answered(response.status().as_u16()),
        (
            Err(SendError::Connect(_) | SendError::ConnectTimeout(_) | SendError::Overflow),
            Some(load),
        ) => {
            load.not_issued();
            None
        }
        // A reset: issued, and an error when `load` drops.
        _ => None,
    };
    match result {
        Ok((response, h2_stream)) => {
            cluster.report(host, Outcome::Status(response.status().as_u16()));
            let (mut parts, body) = response.into_parts();
            parts.extensions.insert(UpstreamHost(host));
            let body = Guarded {
                inner: body,
                _guards: Box::new((permit, active, h2_stream, in_progress)),
            };
            let body = match limits.per_try_idle_timeout {
                Some(idle) => {
                    IdleLimited::new(body, idle, cluster.stats.per_try_idle_timeout.clone()).boxed()
                }
                None => body.boxed(),
            };
            Ok(Response::from_parts(parts, body))
        }
        // Never reported to outlier detection (Envoy: an overflow says nothing about the host).
        Err(SendError::Overflow) => Err(Failure::Overflow),
        Err(SendError::Connect(detail)) => {
            cluster.counters.cx_connect_fail.inc();
            cluster.report(host, Outcome::ConnectFailed);
            Err(Failure::Connect {
                host,
                detail,
                timed_out: false,
            })
        }
        // Envoy counts a connect timeout as a connect failure too, and reports it to outlier detection alike.
        Err(SendError::ConnectTimeout(detail)) => {
            cluster.counters.cx_connect_fail.inc();
            cluster.stats.cx_connect_timeout.inc();
            cluster.report(host, Outcome::ConnectFailed);
            Err(Failure::Connect {
                host,
                detail,
                timed_out: true,
            })
        }
        Err(SendError::Reset(detail)) => {
            cluster.report(host, Outcome::Reset);
            let refused_stream = detail.contains("refused stream");
            Err(Failure::Reset {
                host,
                detail,
                refused_stream,
            })
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body, holding the request's circuit-breaker permit, its load-balancer count and (over h2)
    /// its stream's place in the connection's idle count until the response is over: Envoy counts a request
    /// active until its stream ends.
    struct Guarded<B> {
        #[pin]
        inner: B,
        _guards: Box<dyn Send + Sync>,
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::upstream::BoxError>,
{
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that fails (resetting the response downstream) when the upstream sends nothing for
    /// `per_try_idle_timeout`; every frame restarts the clock.
    struct IdleLimited<B> {
        #[pin]
        inner: B,
        #[pin]
        timer: tokio::time::Sleep,
        idle: Duration,
        fired: crate::metrics::ClusterCounter,
    }
}

impl<B> IdleLimited<B> {
    fn new(inner: B, idle: Duration, fired: crate::metrics::ClusterCounter) -> Self {
        Self {
            inner,
            timer: tokio::time::sleep(idle),
            idle,
            fired,
        }
    }
}

impl<B> Body for IdleLimited<B>
where
    B: Body<Data = Bytes, Error = crate::upstream::BoxError>,
{
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            let deadline = tokio::time::Instant::now() + *this.idle;
            this.timer.as_mut().reset(deadline);
            return Poll::Ready(frame);
        }
        if this.timer.poll(cx).is_ready() {
            this.fired.inc();
            return Poll::Ready(Some(Err(
                "per-try idle timeout: the upstream sent nothing".into()
            )));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts in its counter when dropped armed (the attempt was cancelled while waiting).
struct CountIfDropped<'a>(Option<&'a prometheus_client::metrics::counter::Counter>);

impl Drop for CountIfDropped<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            counter.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ClusterCounter as Counter;
    use http_body_util::BodyExt;

    /// A body that sends one chunk, then nothing for ever.
    struct Stalls(bool);

    impl Body for Stalls {
        type Data = Bytes;
        type Error = crate::upstream::BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return Poll::Pending;
            }
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_timeout() {
        let fired = Counter::default();
        let mut body = Box::pin(IdleLimited::new(
            Stalls(false),
            Duration::from_secs(2),
            fired.clone(),
        ));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let started = tokio::time::Instant::now();
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(fired.get(), 1);
    }
}
