//! Whether and when to retry: Envoy's `retry_policy` as a tower retry `Policy`. tower's `Retry` service does
//! the machinery (keep a copy of the request, call again after the policy's back-off); this file only decides.
//!
//! Envoy's order for a failed attempt: is it retriable under `retry_on`? are retries left (`num_retries`, else
//! `upstream_rq_retry_limit_exceeded` and flag `URX`)? is the body still buffered (else
//! `retry_or_shadow_abandoned`)? does the cluster's retry circuit breaker or budget allow one more (else
//! `upstream_rq_retry_overflow` and flag `UO`)? Then the back-off, and the next attempt avoids the hosts
//! already tried when `previous_hosts` is configured. tower's own budget (`TpsBudget`) is a time window of
//! deposits and withdrawals; Envoy's is a share of the requests in flight, so ours is in the circuit breaker.

mod backoff;

use super::attempt::{Attempts, PreviousHosts, Target, UpstreamHost};
use super::failure::Failure;
use super::local_reply::{Flag, ResponseBody, add_flag};
use super::replay_body::RequestBody;
use super::route;
use crate::upstream::breaker::Permit;
use http::{Request, Response};
use outrigger_config::model::route::{RetryOn, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Policy {
    config: Arc<RetryPolicy>,
    /// Retries made for this request so far.
    retries: u32,
    /// The retry circuit breaker's permits for the retries in flight (one, unless hedging).
    permits: Vec<Arc<Permit>>,
}

impl Policy {
    pub fn new(config: Arc<RetryPolicy>) -> Self {
        Self {
            config,
            retries: 0,
            permits: Vec::new(),
        }
    }
}

type Outcome = Result<Response<ResponseBody>, Failure>;

impl Policy {
    /// After a retriable outcome (or, when hedging, a per-try timeout with no outcome yet): is another attempt
    /// allowed (retries left, body still buffered, retry breaker or budget)? If so, count it and return its
    /// back-off.
    pub fn next_attempt(
        &mut self,
        request: &mut Request<RequestBody>,
        result: Option<&mut Outcome>,
    ) -> Option<tokio::time::Sleep> {
        let target = request.extensions().get::<Target>()?;
        let cluster = target.cluster.clone();
        let attempt_count_header = target.attempt_count_header;
        let stats = &cluster.stats;
        if self.retries >= self.config.num_retries {
            stats.retry_limit_exceeded.inc();
            match result {
                Some(Ok(response)) => add_flag(response, Flag::UpstreamRetryLimitExceeded),
                // Envoy flags a request whose last retry failed too (`URX,UF`): its record says so.
                Some(Err(_)) => {
                    if let Some(notes) = &target.notes {
                        notes.with(|r| r.flags.add(Flag::UpstreamRetryLimitExceeded.code()));
                    }
                }
                None => {}
            }
            return None;
        }
        if request.body().is_abandoned() {
            stats.retry_or_shadow_abandoned.inc();
            return None;
        }
        match cluster.breaker.retry() {
            Ok(permit) => self.permits.push(Arc::new(permit)),
            Err(_) => {
                stats.retry_overflow.inc();
                if let Some(Ok(response)) = result {
                    add_flag(response, Flag::UpstreamOverflow);
                }
                return None;
            }
        }
        self.retries += 1;
        stats.retry.inc();
        if attempt_count_header
            && let Ok(value) = http::HeaderValue::from_str(&(self.retries + 1).to_string())
        {
            request.headers_mut().insert("x-envoy-attempt-count", value);
        }
        if self.config.avoid_previous_hosts {
            let host = match result.as_deref() {
                Some(Ok(response)) => response.extensions().get::<UpstreamHost>().map(|h| h.0),
                Some(Err(failure)) => failure.host(),
                None => None,
            };
            let max_redraws = u32::try_from(self.config.host_selection_retry_max_attempts.max(0))
                .unwrap_or(u32::MAX);
            let previous = request
                .extensions_mut()
                .get_or_insert_with(|| PreviousHosts {
                    hosts: Vec::new(),
                    max_redraws,
                });
            previous.hosts.extend(host);
        }
        let wait = match result.as_deref().and_then(|r| self.rate_limited_wait(r)) {
            Some(wait) => {
                stats.retry_backoff_ratelimited.inc();
                wait
            }
            None => {
                stats.retry_backoff_exponential.inc();
                backoff::wait(
                    self.config.back_off_base,
                    self.config.back_off_max,
                    self.retries,
                    |n| fastrand::u64(..n),
                )
            }
        };
        Some(tokio::time::sleep(wait))
    }

    /// `retriable_request_headers`: when set, only a request matching one of them is retried.
    pub fn request_may_retry(&self, request: &Request<RequestBody>) -> bool {
        let matchers = &self.config.retriable_request_headers;
        matchers.is_empty()
            || matchers
                .iter()
                .any(|m| route::headers_match(m, request.headers()))
    }

    /// `rate_limited_retry_back_off`: the first reset header that parses to at most `max_interval` sets the wait,
    /// drawn uniformly in `[T, 1.5 T)`.
    fn rate_limited_wait(&self, result: &Outcome) -> Option<Duration> {
        let config = self.config.rate_limited_back_off.as_ref()?;
        let Ok(response) = result else {
            return None;
        };
        let reset = config.reset_headers.iter().find_map(|header| {
            let value = response
                .headers()
                .get(header.name.as_str())?
                .to_str()
                .ok()?;
            let number: u64 = value.trim().parse().ok()?;
            let seconds = if header.unix_timestamp {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                number.checked_sub(now)?
            } else {
                number
            };
            let wait = Duration::from_secs(seconds);
            (wait <= config.max_interval).then_some(wait)
        })?;
        let base = u64::try_from(reset.as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(
            base + fastrand::u64(..(base / 2).max(1)),
        ))
    }
}

impl tower::retry::Policy<Request<RequestBody>, Response<ResponseBody>, Failure> for Policy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<RequestBody>,
        result: &mut Outcome,
    ) -> Option<Self::Future> {
        // The attempt that just ended no longer holds a retry slot.
        self.permits.clear();
        if let Ok(response) = result {
            response.extensions_mut().insert(Attempts(self.retries + 1));
        }
        let target = request.extensions().get::<Target>()?;
        if !retriable(&self.config, result) || !self.request_may_retry(request) {
            if self.retries > 0 {
                target.cluster.stats.retry_success.inc();
            }
            return None;
        }
        let wait = self.next_attempt(request, Some(result))?;
        // Envoy resets the upstream request whose response it drops for a retry: its span ends `canceled`.
        if result.is_ok()
            && let Some(notes) = request
                .extensions()
                .get::<Target>()
                .and_then(|t| t.notes.as_ref())
        {
            notes.with(|r| {
                if let Some(trace) = r.trace.as_mut()
                    && let Some(last) = trace.last_attempt()
                {
                    trace.cancel_attempt(last);
                }
            });
        }
        Some(wait)
    }

    fn clone_request(&mut self, request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
        let body = request.body().try_clone()?;
        let mut copy = Request::new(body);
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        if let Some(target) = request.extensions().get::<Target>() {
            copy.extensions_mut().insert(target.clone());
        }
        if let Some(previous) = request.extensions().get::<PreviousHosts>() {
            copy.extensions_mut().insert(previous.clone());
        }
        Some(copy)
    }
}

/// Whether `retry_on` retries resets and timeouts (`5xx`, `gateway-error`, `reset`).
pub fn retries_timeouts(policy: &RetryPolicy) -> bool {
    [RetryOn::FiveXx, RetryOn::GatewayError, RetryOn::Reset]
        .iter()
        .any(|c| policy.retry_on.contains(c))
}

/// Whether `retry_on` asks for a retry after this outcome.
pub fn retriable(policy: &RetryPolicy, result: &Outcome) -> bool {
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    let any_reset = retries_timeouts(policy);
    match result {
        // A full circuit breaker, no healthy host, or the route's deadline: never retried.
        Err(Failure::Overflow | Failure::NoHealthyUpstream(_) | Failure::RouteTimeout) => false,
        Err(Failure::Connect { .. }) => {
            any_reset || on(RetryOn::ConnectFailure) || on(RetryOn::ResetBeforeRequest)
        }
        Err(Failure::Reset { refused_stream, .. }) => {
            any_reset
                || (*refused_stream
                    && (on(RetryOn::RefusedStream) || on(RetryOn::ResetBeforeRequest)))
        }
        Err(Failure::PerTryTimeout { .. }) => any_reset,
        Ok(response) => {
            let status = response.status().as_u16();
            (on(RetryOn::FiveXx) && status >= 500)
                || (on(RetryOn::GatewayError) && matches!(status, 502..=504))
                || (on(RetryOn::Retriable4xx) && status == 409)
                || (on(RetryOn::RetriableStatusCodes)
                    && policy.retriable_status_codes.contains(&status))
                || (on(RetryOn::EnvoyRatelimited)
                    && response.headers().contains_key("x-envoy-ratelimited"))
                || (on(RetryOn::RetriableHeaders)
                    && policy
                        .retriable_headers
                        .iter()
                        .any(|m| route::headers_match(m, response.headers())))
                || grpc_retriable(policy, response)
        }
    }
}

/// gRPC conditions read `grpc-status` from a trailers-only response (the status in the headers).
fn grpc_retriable(policy: &RetryPolicy, response: &Response<ResponseBody>) -> bool {
    let Some(code) = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let condition = match code {
        "1" => RetryOn::Cancelled,
        "4" => RetryOn::DeadlineExceeded,
        "8" => RetryOn::ResourceExhausted,
        "13" => RetryOn::Internal,
        "14" => RetryOn::Unavailable,
        _ => return false,
    };
    policy.retry_on.contains(&condition)
}

#[cfg(test)]
mod tests;
