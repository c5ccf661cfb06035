//! `envoy.filters.http.fault`: delays and aborts injected into a share of requests, in front of the local rate
//! limit and the router. As in Envoy 1.40 (checked with real Envoy, `tests/envoy_resilience.rs`):
//! - only requests matching every `headers` matcher get a fault;
//! - a delay is decided first (its percentage, then its duration: `fixed_delay`, or with `header_delay` the
//!   milliseconds in `x-envoy-fault-delay-request`; 0 ms is no delay); after the delay the abort is decided;
//! - an abort answers `http_status` (or with `header_abort` the status in `x-envoy-fault-abort-request`, taken
//!   only in [200, 600)) with the body `fault filter abort`, flag `FI`; a delayed request carries `DI`;
//! - with a header-driven fault, `x-envoy-fault-{delay,abort}-request-percentage` may lower the configured
//!   numerator (never raise it) over the same denominator; an absent `percentage` is 0 %, so nothing is injected;
//! - past `max_active_faults` a request gets no fault and `faults_overflow` counts it.
//!
//! Runtime overrides (`fault.http.*`) are not read: Outrigger has no runtime layers, so their defaults (the
//! configured values) apply. A fault stays active until the inner service has answered (Envoy: until the
//! stream ends; the difference is the time a passed-on response body takes to stream).

#[cfg(test)]
mod tests;

use super::connection_manager::ConnectionManager;
use super::filter_service::{BoxFuture, Next};
use super::local_reply::{Flag, ResponseBody, add_flag, text};
use super::route::headers_match;
use crate::metrics::Metrics;
use crate::upstream::UpstreamBody;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use outrigger_config::model::http::{Fault, Percentage};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";

/// One fault filter config at run time: shared by every connection of its connection manager.
pub struct Injector {
    config: Fault,
    /// Faults in progress, for `max_active_faults` (Envoy counts them across workers too).
    active: AtomicU64,
    stats: FaultStats,
}

struct FaultStats {
    aborts: Counter,
    delays: Counter,
    overflow: Counter,
    active: Gauge,
}

impl Injector {
    pub fn new(config: &Fault, metrics: &Metrics, stat_prefix: &str) -> Self {
        let labels = crate::metrics::connection_manager(stat_prefix);
        let f = &metrics.fault;
        Self {
            config: config.clone(),
            active: AtomicU64::new(0),
            stats: FaultStats {
                aborts: f.aborts.get_or_create(&labels).clone(),
                delays: f.delays.get_or_create(&labels).clone(),
                overflow: f.overflow.get_or_create(&labels).clone(),
                active: f.active.get_or_create(&labels).clone(),
            },
        }
    }

    pub(crate) fn matches(&self, headers: &HeaderMap) -> bool {
        self.config
            .headers
            .iter()
            .all(|m| headers_match(m, headers))
    }

    /// The delay this request gets, if any (before `max_active_faults` is asked).
    pub(crate) fn delay(&self, headers: &HeaderMap) -> Option<Duration> {
        let delay = self.config.delay.as_ref()?;
        let percentage = match delay.fixed {
            Some(_) => delay.percentage,
            None => from_header(delay.percentage, headers, DELAY_PERCENTAGE_HEADER),
        };
        if !roll(percentage) {
            return None;
        }
        let duration = match delay.fixed {
            Some(fixed) => fixed,
            None => Duration::from_millis(number(headers, DELAY_HEADER)?),
        };
        (!duration.is_zero()).then_some(duration)
    }

    /// The status this request is aborted with, if any (before `max_active_faults` is asked).
    pub(crate) fn abort(&self, headers: &HeaderMap) -> Option<StatusCode> {
        let abort = self.config.abort.as_ref()?;
        let percentage = match abort.http_status {
            Some(_) => abort.percentage,
            None => from_header(abort.percentage, headers, ABORT_PERCENTAGE_HEADER),
        };
        if !roll(percentage) {
            return None;
        }
        let status = match abort.http_status {
            Some(status) => u64::from(status),
            None => number(headers, ABORT_HEADER).filter(|s| (200..600).contains(s))?,
        };
        u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
    }

    /// Takes a place among the active faults, or counts an overflow and gives none.
    fn try_activate(self: &Arc<Self>) -> Option<Active> {
        let limit = self.config.max_active_faults.map_or(u64::MAX, u64::from);
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if taken.is_err() {
            self.stats.overflow.inc();
            return None;
        }
        self.stats.active.inc();
        Some(Active(self.clone()))
    }

    /// Envoy's reply to an aborted request; `delayed` when a delay came first (flags `DI` then `FI`).
    fn abort_reply(&self, status: StatusCode, delayed: bool) -> Response<ResponseBody> {
        self.stats.aborts.inc();
        let mut response = Response::new(text("fault filter abort"));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        if delayed {
            add_flag(&mut response, Flag::DelayInjected);
        }
        add_flag(&mut response, Flag::FaultInjected);
        super::local_reply::from_filter(response)
    }
}

/// One fault in progress; dropping it ends it.
struct Active(Arc<Injector>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.stats.active.dec();
    }
}

/// The configured percentage, its numerator lowered (never raised) by a valid number in `name`.
fn from_header(configured: Percentage, headers: &HeaderMap, name: &str) -> Percentage {
    match number(headers, name).and_then(|n| u32::try_from(n).ok()) {
        Some(numerator) => Percentage {
            numerator: numerator.min(configured.numerator),
            ..configured
        },
        None => configured,
    }
}

/// A header's value as an unsigned number.
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// True with probability numerator / denominator (Envoy: a random number modulo the denominator).
fn roll(p: Percentage) -> bool {
    if p.numerator >= p.denominator {
        return true;
    }
    p.numerator > 0 && fastrand::u32(0..p.denominator) < p.numerator
}

/// The filter on one connection.
#[derive(Clone)]
pub struct FaultFilter<S> {
    inner: S,
    manager: Arc<ConnectionManager>,
}

impl<S> FaultFilter<S> {
    pub fn new(inner: S, manager: Arc<ConnectionManager>) -> Self {
        Self { inner, manager }
    }
}

impl<S: Next + Clone + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for FaultFilter<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let Some(injector) = self.manager.fault.clone() else {
            return Box::pin(self.inner.call(request));
        };
        if !injector.matches(request.headers()) {
            return Box::pin(self.inner.call(request));
        }
        if let Some(delay) = injector.delay(request.headers())
            && let Some(active) = injector.try_activate()
        {
            injector.stats.delays.inc();
            // The inner service was made ready for this call; the clone is driven to readiness after the delay.
            let inner = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, inner);
            return Box::pin(delayed(inner, injector, active, delay, request));
        }
        if let Some(status) = injector.abort(request.headers())
            && let Some(_active) = injector.try_activate()
        {
            let reply = injector.abort_reply(status, false);
            return Box::pin(async move { Ok(reply) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// Waits `delay`, then decides the abort (the fault already holds its place), then passes the request on.
/// Combinators rather than an async block: rustc cannot prove an async block holding `S::Future` `Send` here
/// (the same limit `local_rate_limit.rs` works around).
fn delayed<S>(
    mut inner: S,
    injector: Arc<Injector>,
    active: Active,
    delay: Duration,
    request: Request<UpstreamBody>,
) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send
where
    S: tower_service::Service<
            Request<UpstreamBody>,
            Response = Response<ResponseBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    use futures_util::FutureExt;
    use futures_util::future::Either;
    tokio::time::sleep(delay).then(move |()| match injector.abort(request.headers()) {
        Some(status) => {
            let reply = injector.abort_reply(status, true);
            drop(active);
            Either::Left(std::future::ready(Ok(reply)))
        }
        None => Either::Right(inner.call(request).map(move |result| {
            let Ok(mut response) = result;
            drop(active);
            add_flag(&mut response, Flag::DelayInjected);
            Ok(response)
        })),
    })
}
