//! A route's upstream stack, built once per configuration snapshot and shared by every request on the route:
//!
//! ```text
//! UpstreamReply (Failure -> Envoy's local reply; the router's `x-envoy-*` headers)
//!   RouteTimeout (the route's `timeout`, over every attempt)
//!     Retry (tower's machinery, `retry::Policy` decides)   only when the route has a retry policy
//!     or Hedge (`hedge_on_per_try_timeout`: attempts overlap after a per-try timeout)
//!       Attempt (circuit breaker, load balancer + outlier detection, pool, per-try timeouts)
//! ```

use super::attempt::{Attempt, Target};
use super::envoy_headers;
use super::failure::Failure;
use super::hedge::Hedge;
use super::local_reply::ResponseBody;
use super::replay_body::RequestBody;
use super::retry;
use super::route_timeout::RouteTimeout;
use http::{Request, Response};
use outrigger_config::model::route::Forward;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::util::BoxCloneSyncService;

pub type RouteService =
    BoxCloneSyncService<Request<RequestBody>, Response<ResponseBody>, Infallible>;

type Upstream = BoxCloneSyncService<Request<RequestBody>, Response<ResponseBody>, Failure>;

/// `suppress_envoy_headers` is the router filter's setting.
pub fn build(forward: &Forward, suppress_envoy_headers: bool) -> RouteService {
    let policy = forward.retry_policy.as_ref();
    let attempt = Attempt {
        per_try_timeout: policy.and_then(|p| p.per_try_timeout),
        per_try_idle_timeout: policy.and_then(|p| p.per_try_idle_timeout),
    };
    let upstream: Upstream = match (policy, policy.and_then(|p| p.per_try_timeout)) {
        (Some(policy), Some(per_try)) if forward.hedge_on_per_try_timeout => {
            BoxCloneSyncService::new(Hedge::new(
                Arc::new(policy.clone()),
                per_try,
                Attempt {
                    per_try_timeout: None,
                    ..attempt
                },
            ))
        }
        (Some(policy), _) => BoxCloneSyncService::new(tower::retry::Retry::new(
            retry::Policy::new(Arc::new(policy.clone())),
            attempt,
        )),
        (None, _) => BoxCloneSyncService::new(attempt),
    };
    BoxCloneSyncService::new(UpstreamReply {
        inner: RouteTimeout::new(upstream, forward.timeout),
        envoy_headers: !suppress_envoy_headers,
    })
}

/// The stack a route's mirrors go through (`mirror.rs`): the route's timeout, no retries or hedging, as Envoy's
/// shadow requests have; the cluster comes with each request.
pub fn mirror(forward: &Forward, suppress_envoy_headers: bool) -> RouteService {
    let shadow = Forward {
        retry_policy: None,
        hedge_on_per_try_timeout: false,
        ..forward.clone()
    };
    build(&shadow, suppress_envoy_headers)
}

/// Whether requests on this route keep a copy of their body for retries.
pub fn retries(forward: &Forward) -> bool {
    forward.retry_policy.is_some()
}

/// The outermost layer of a route's stack: a `Failure` becomes Envoy's local reply, so hyper never sees an
/// error (which it would turn into a reset). Unless the router suppresses them, it adds the service time to the
/// upstream's response and `x-envoy-overloaded` to an overflow reply (`envoy_headers.rs`).
#[derive(Clone)]
pub struct UpstreamReply<S> {
    inner: S,
    /// False when `suppress_envoy_headers`.
    envoy_headers: bool,
}

impl<S> tower_service::Service<Request<RequestBody>> for UpstreamReply<S>
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = Failure,
        >,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner layers are always ready (the attempt checks its limits when called).
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let cluster = request
            .extensions()
            .get::<Target>()
            .map(|t| t.cluster.clone());
        let envoy_headers = self.envoy_headers;
        let sent = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = match future.await {
                Ok(mut response) => {
                    if envoy_headers {
                        response.headers_mut().insert(
                            envoy_headers::SERVICE_TIME,
                            envoy_headers::service_time(sent),
                        );
                    }
                    response
                }
                Err(failure) => {
                    let name = cluster
                        .as_ref()
                        .map(|c| c.config.name.as_str())
                        .unwrap_or("");
                    if let (Failure::RouteTimeout, Some(cluster)) = (&failure, &cluster) {
                        cluster.counters.rq_timeout.inc();
                    }
                    // Envoy charges the cluster with the code of the reply it makes after an attempt failed
                    // (overflow, connect failure, reset, timeout), but not when no host could be chosen.
                    if matches!(failure, Failure::NoHealthyUpstream(_)) {
                        return Ok(failure.into_response(name));
                    }
                    let mut reply = failure.into_response(name);
                    if !envoy_headers {
                        reply.headers_mut().remove(envoy_headers::OVERLOADED);
                    }
                    reply
                }
            };
            // `upstream_rq_xx`: the final answer only (retried attempts are not counted here).
            if let Some(cluster) = &cluster {
                cluster.counters.count_class(response.status().as_u16());
            }
            Ok(response)
        })
    }
}
