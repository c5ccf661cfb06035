//! `stream_idle_timeout` and `request_timeout`, as Envoy's connection manager applies them to each stream.
//!
//! - The stream idle timer (Envoy's default 5 min; a route's `idle_timeout` replaces it) restarts on every
//!   sign of life: the request's headers, each piece of its body, the response's headers and each piece of
//!   its body. When it fires before the response has started, the client gets Envoy's local reply
//!   `stream timeout`, flagged `SI`: 408 while the request is still arriving, 504 once it has been received
//!   completely (the upstream is the slow one). After the response has started the stream is reset
//!   (`response_body::IdleBody`); after an upgrade, the tunnel is (`tunnel`).
//! - The request timer runs from the request's headers until the request has been received completely or the
//!   response starts, whichever is first; when it fires, the client gets 408 `request timeout`.
//!
//! Either local reply on an HTTP/1 request that is not complete carries `Connection: close`: the rest of its
//! body will never be read. The upstream call is dropped (cancelled) with the stream.
//!
//! Whether and when the request body moved is read from the body itself (`request_body`), which this layer
//! wraps before the filters and the router read it: exact for HTTP/1 and h2 alike.

mod request_body;
mod response_body;
mod tunnel;

use super::connection_manager::{ConnectionManager, Matched};
use super::connection_state::ConnectionState;
use super::local_reply::{self, ResponseBody};
use crate::metrics::{HttpTimeouts, Labels};
use crate::upstream::UpstreamBody;
use http::{HeaderValue, Request, Response, StatusCode};
use outrigger_config::model::route::RouteAction;
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use request_body::RequestProgress;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep, sleep};

#[derive(Clone)]
pub struct StreamTimeout<S> {
    inner: S,
    manager: Arc<ConnectionManager>,
    state: Arc<ConnectionState>,
    /// `downstream_rq_idle_timeout` and `downstream_rq_timeout` of this connection manager.
    idle_timeouts: Counter,
    request_timeouts: Counter,
}

impl<S> StreamTimeout<S> {
    pub fn new(
        inner: S,
        manager: Arc<ConnectionManager>,
        state: Arc<ConnectionState>,
        counters: HttpTimeouts,
        labels: Labels,
    ) -> Self {
        Self {
            inner,
            manager,
            state,
            idle_timeouts: counters.rq_idle_timeout.get_or_create(&labels).clone(),
            request_timeouts: counters.rq_timeout.get_or_create(&labels).clone(),
        }
    }

    /// The stream idle timeout for a request: its route's `idle_timeout`, else the connection manager's.
    fn idle_timeout<B>(&self, request: &Request<B>) -> Option<Duration> {
        let route = request
            .extensions()
            .get::<Matched>()
            .and_then(|m| m.route());
        match route.map(|(_, _, r)| &r.action) {
            Some(RouteAction::Route(forward)) if forward.idle_timeout.is_some() => {
                forward.idle_timeout
            }
            _ => self.manager.config.stream_idle_timeout,
        }
    }
}

/// What the timers of one stream share with its response body.
pub(crate) struct Clock {
    /// The connection, for a tunnel after an upgrade.
    state: Arc<ConnectionState>,
    request: Arc<RequestProgress>,
    idle: Duration,
    idle_timeouts: Counter,
}

impl Clock {
    /// The last time the request side showed life, if after `since`.
    fn request_activity_after(&self, since: Instant) -> Instant {
        self.request.activity_after(since)
    }

    fn count_idle_timeout(&self) {
        self.idle_timeouts.inc();
    }
}

impl<S> tower_service::Service<Request<UpstreamBody>> for StreamTimeout<S>
where
    S: tower_service::Service<
            Request<UpstreamBody>,
            Response = Response<ResponseBody>,
            Error = Infallible,
        >,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let idle = self.idle_timeout(&request);
        let http1 = request.version() < http::Version::HTTP_2;
        let (parts, body) = request.into_parts();
        let (body, progress) = request_body::watch(body);
        let clock = idle.map(|idle| {
            Arc::new(Clock {
                state: self.state.clone(),
                request: progress.clone(),
                idle,
                idle_timeouts: self.idle_timeouts.clone(),
            })
        });
        let request_timeout = self.manager.config.request_timeout;
        ResponseFuture {
            idle_sleep: idle.map(sleep),
            request_sleep: request_timeout.map(sleep),
            inner: self.inner.call(Request::from_parts(parts, body)),
            started: Instant::now(),
            clock,
            progress,
            http1,
            rq_timeout: self.request_timeouts.clone(),
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        idle_sleep: Option<Sleep>,
        #[pin]
        request_sleep: Option<Sleep>,
        started: Instant,
        clock: Option<Arc<Clock>>,
        progress: Arc<RequestProgress>,
        http1: bool,
        rq_timeout: Counter,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(Ok(response)) = this.inner.poll(cx) {
            return Poll::Ready(Ok(match this.clock.take() {
                Some(clock) => watch_response(response, clock),
                None => response,
            }));
        }
        if let Some(sleep) = this.request_sleep.as_mut().as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            this.request_sleep.set(None);
            if !this.progress.is_complete() {
                this.rq_timeout.inc();
                return Poll::Ready(Ok(timeout_reply(
                    StatusCode::REQUEST_TIMEOUT,
                    "request timeout",
                    None,
                    *this.http1,
                )));
            }
        }
        let Some(clock) = this.clock.as_ref() else {
            return Poll::Pending;
        };
        while let Some(mut sleep) = this.idle_sleep.as_mut().as_pin_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let last = clock.request_activity_after(*this.started);
            let deadline = last + clock.idle;
            if Instant::now() < deadline {
                sleep.reset(deadline);
                continue;
            }
            clock.count_idle_timeout();
            let complete = this.progress.is_complete();
            let status = if complete {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::REQUEST_TIMEOUT
            };
            return Poll::Ready(Ok(timeout_reply(
                status,
                "stream timeout",
                Some("SI"),
                *this.http1 && !complete,
            )));
        }
        Poll::Pending
    }
}

/// Keeps the idle timer on the response: its body, or the tunnel after a 101.
fn watch_response(response: Response<ResponseBody>, clock: Arc<Clock>) -> Response<ResponseBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        tunnel::watch(clock);
        return response;
    }
    response.map(|body| response_body::IdleBody::wrap(body, clock))
}

/// Envoy's local reply for a timeout: a plain-text body naming it.
fn timeout_reply(
    status: StatusCode,
    message: &'static str,
    flag: Option<&'static str>,
    close: bool,
) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text(message));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    if let Some(flag) = flag {
        headers.insert("x-outrigger-response-flags", HeaderValue::from_static(flag));
    }
    if close {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests;
