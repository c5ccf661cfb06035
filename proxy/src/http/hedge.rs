//! `hedge_policy.hedge_on_per_try_timeout`: when an attempt's per-try timeout fires, another attempt starts
//! (after the usual back-off, and only if the retry limits allow it: it counts as a retry) while the first one
//! goes on. The first answer that is not retriable wins and the others are dropped (their streams reset); a
//! retriable answer while another attempt is still out is dropped too, as Envoy does. With only one attempt
//! left in flight, an answer goes through the ordinary retry decision (`retry.rs`), so hedging only adds to
//! retrying. tower's `Retry` runs one attempt at a time, hence this service of our own.
//!
//! A hedged attempt replays the request body from the retry buffer; while an earlier attempt is still reading
//! a body that has not fully arrived, the new attempt cannot and fails as a reset (a hedged request is usually
//! a GET).

use super::failure::Failure;
use super::local_reply::ResponseBody;
use super::replay_body::RequestBody;
use super::retry::{self, Policy};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Request, Response};
use outrigger_config::model::route::RetryPolicy;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;
use tower::retry::Policy as _;
use tower_service::Service;

/// Hedged attempts of `S` (the route's `Attempt`, built without a per-try timeout: this service keeps that
/// clock).
#[derive(Clone)]
pub struct Hedge<S> {
    config: Arc<RetryPolicy>,
    attempt: S,
    per_try_timeout: Duration,
}

impl<S> Hedge<S> {
    pub fn new(config: Arc<RetryPolicy>, per_try_timeout: Duration, attempt: S) -> Self {
        Self {
            config,
            attempt,
            per_try_timeout,
        }
    }
}

type Outcome = Result<Response<ResponseBody>, Failure>;

impl<S> Service<Request<RequestBody>> for Hedge<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>, Error = Failure>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Failure;
    type Future = Pin<Box<dyn Future<Output = Outcome> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        Box::pin(hedged(self.clone(), request))
    }
}

async fn hedged<S>(hedge: Hedge<S>, request: Request<RequestBody>) -> Outcome
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>, Error = Failure> + Send,
    S::Future: Send,
{
    let Hedge {
        config,
        mut attempt,
        per_try_timeout,
    } = hedge;
    let mut policy = Policy::new(config.clone());
    let Some(mut stored) = policy.clone_request(&request) else {
        return attempt.ready().await?.call(request).await;
    };
    let first = attempt.ready().await?.call(request);
    let mut in_flight = FuturesUnordered::new();
    in_flight.push(first);
    let per_try = tokio::time::sleep(per_try_timeout);
    tokio::pin!(per_try);
    let mut per_try_armed = true;
    // The back-off before the next attempt, when one is due.
    let mut next: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            Some(mut result) = in_flight.next() => {
                let alone = in_flight.is_empty() && next.is_none();
                if !alone && retry::retriable(&config, &result) {
                    // Another attempt may still answer well: this one is dropped.
                    continue;
                }
                // The last attempt out, or an answer that is not retriable: the ordinary decision (which also
                // counts `upstream_rq_retry_success`).
                match policy.retry(&mut stored, &mut result) {
                    Some(wait) if alone => {
                        next = Some(Box::pin(wait));
                        per_try_armed = false;
                    }
                    _ => return result,
                }
            }
            () = &mut per_try, if per_try_armed => {
                per_try_armed = false;
                // Hedging is a retry on a timeout: the policy must retry timeouts.
                if next.is_none()
                    && retry::retries_timeouts(&config)
                    && policy.request_may_retry(&stored)
                {
                    next = policy.next_attempt(&mut stored, None).map(Box::pin);
                }
            }
            () = async { if let Some(wait) = next.as_mut() { wait.await } }, if next.is_some() => {
                next = None;
                let copy = policy.clone_request(&stored);
                let request = match copy {
                    Some(copy) => std::mem::replace(&mut stored, copy),
                    // The body can no longer be replayed: no further attempt.
                    None if in_flight.is_empty() => return Err(Failure::NoHealthyUpstream(
                        "the request body outgrew the retry buffer".into(),
                    )),
                    None => continue,
                };
                let another = attempt.ready().await?.call(request);
                in_flight.push(another);
                per_try.as_mut().reset(tokio::time::Instant::now() + per_try_timeout);
                per_try_armed = true;
            }
            else => return Err(Failure::RouteTimeout),
        }
    }
}

#[cfg(test)]
mod tests;
