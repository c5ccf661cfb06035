//! `envoy.filters.http.local_ratelimit`: a token bucket in front of the router. As in Envoy: one bucket per
//! filter config shared by every worker (or one per connection with `local_rate_limit_per_downstream_connection`);
//! a route's `typed_per_filter_config` replaces the listener's config as a whole, with its own bucket;
//! `filter_enabled` and `filter_enforced` default to 0 %, so a config without them counts nothing and refuses
//! nothing. A refused request gets `status` (429) with the body `local_rate_limited`, flag `RL`, and
//! `response_headers_to_add`.
//!
//! With `descriptors`, the request's descriptors (`descriptors.rs`: from rate limit actions) may take buckets of
//! their own (`buckets.rs`); without, no descriptor is computed, as in Envoy.

mod buckets;
mod descriptors;

use super::Connection;
use super::connection_manager::{ConnectionManager, Matched};
use super::filter_service::Next;
use super::headers;
use super::local_reply::{Flag, ResponseBody, add_flag, text};
use crate::metrics::{Metrics, RateLimitStats};
use crate::upstream::UpstreamBody;
use buckets::Buckets;
use descriptors::{Descriptor, RequestView};
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode};
use outrigger_config::model::http::LocalRateLimit;
use outrigger_config::model::route::RouteAction;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// One filter config at run time: its buckets and its statistics.
pub struct Limiter {
    config: LocalRateLimit,
    buckets: Buckets,
    stats: RateLimitStats,
}

impl Limiter {
    fn new(config: &LocalRateLimit, stats: RateLimitStats) -> Self {
        Self {
            buckets: Buckets::new(config, Instant::now()),
            config: config.clone(),
            stats,
        }
    }

    /// The limiter every connection shares, or `None` when each connection gets its own.
    pub fn shared(config: &LocalRateLimit, metrics: &Metrics) -> Option<Arc<Self>> {
        (!config.local_rate_limit_per_downstream_connection).then(|| {
            Arc::new(Self::new(
                config,
                metrics.resilience.local_rate_limit(&config.stat_prefix),
            ))
        })
    }

    /// `Pass`: let the request through (maybe with `x-ratelimit-*` headers for its response). `Refuse`: the local
    /// reply that refuses it. `descriptors` is only asked when the config has descriptors to match.
    fn check(&self, descriptors: impl FnOnce(&LocalRateLimit) -> Vec<Descriptor>) -> Decision {
        if !roll(self.config.filter_enabled.0) {
            return Decision::Pass(None);
        }
        self.stats.enabled.inc();
        let request = if self.config.descriptors.is_empty() {
            Vec::new()
        } else {
            descriptors(&self.config)
        };
        let outcome = self.buckets.decide(&request, Instant::now());
        let headers = outcome
            .decided
            .filter(|_| self.config.x_ratelimit_headers)
            .map(|d| RateLimitHeaders {
                limit: d.max_tokens,
                remaining: d.taken.remaining,
                reset: d.taken.reset.as_secs_f64().ceil() as u64,
            });
        if outcome.allowed {
            self.stats.ok.inc();
            return Decision::Pass(headers);
        }
        self.stats.rate_limited.inc();
        if !roll(self.config.filter_enforced.0) {
            return Decision::Pass(headers);
        }
        self.stats.enforced.inc();
        let mut response = Response::new(text("local_rate_limited"));
        *response.status_mut() =
            StatusCode::from_u16(self.config.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers::add(response.headers_mut(), &self.config.response_headers_to_add);
        add_flag(&mut response, Flag::RateLimited);
        if let Some(headers) = headers {
            headers.write(&mut response);
        }
        Decision::Refuse(response)
    }
}

enum Decision {
    Pass(Option<RateLimitHeaders>),
    Refuse(Response<ResponseBody>),
}

/// `enable_x_ratelimit_headers: DRAFT_VERSION_03`.
struct RateLimitHeaders {
    limit: u32,
    remaining: u32,
    /// Seconds until the next token.
    reset: u64,
}

impl RateLimitHeaders {
    fn write(&self, response: &mut Response<ResponseBody>) {
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(self.limit)),
            ("x-ratelimit-remaining", u64::from(self.remaining)),
            ("x-ratelimit-reset", self.reset),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}

/// True with probability `fraction`.
fn roll(fraction: f64) -> bool {
    fraction >= 1.0 || (fraction > 0.0 && fastrand::f64() < fraction)
}

/// The filter on one connection: the shared limiters, and the connection's own where configured so.
#[derive(Clone)]
pub struct LocalRateLimitFilter<S> {
    inner: S,
    manager: Arc<ConnectionManager>,
    own: Arc<Mutex<HashMap<Option<Matched>, Arc<Limiter>>>>,
    connection: Arc<Connection>,
}

impl<S> LocalRateLimitFilter<S> {
    pub fn new(inner: S, manager: Arc<ConnectionManager>, connection: Arc<Connection>) -> Self {
        Self {
            inner,
            manager,
            own: Arc::default(),
            connection,
        }
    }

    /// The request's descriptors for `config`: from the filter's own `rate_limits`, else from the matched
    /// route's and virtual host's.
    fn descriptors<B>(
        &self,
        config: &LocalRateLimit,
        request: &Request<B>,
        matched: Option<&Matched>,
    ) -> Vec<Descriptor> {
        let route = matched.and_then(|m| m.route());
        let forward = route.and_then(|(_, _, r)| match &r.action {
            RouteAction::Route(forward) => Some(forward.as_ref()),
            _ => None,
        });
        let headers = request.headers();
        let hcm = &self.connection.hcm;
        let view = RequestView {
            headers,
            remote: descriptors::remote_address(
                headers,
                hcm.use_remote_address,
                hcm.xff_num_trusted_hops,
                self.connection.peer.ip(),
            ),
            cluster: forward.and_then(|f| descriptors::destination_cluster(f, headers)),
        };
        if !config.rate_limits.is_empty() {
            return descriptors::populate(config.rate_limits.iter(), None, &view);
        }
        match (route, forward) {
            (Some((_, host, _)), Some(forward)) => descriptors::populate(
                descriptors::route_policies(forward, host, config.vh_rate_limits),
                Some(config.stage),
                &view,
            ),
            _ => Vec::new(),
        }
    }

    /// The limiter for this request: the route's config if it has one, else the connection manager's.
    fn limiter(&self, matched: Option<&Matched>) -> Option<Arc<Limiter>> {
        // A route's config acts only when the filter is in the connection manager's chain (as in Envoy).
        let filter = self.manager.rate_limit_filter.as_ref()?;
        let route_config = matched.and_then(|m| {
            m.route()
                .and_then(|(_, _, route)| route.local_rate_limit.as_ref())
                .map(|config| (Some(m), config))
        });
        let (key, config) = route_config.unwrap_or((None, filter));
        if !config.local_rate_limit_per_downstream_connection {
            return match key {
                Some(m) => m.route_limit(),
                None => self.manager.rate_limit.clone(),
            };
        }
        let mut own = self.own.lock().ok()?;
        let limiter = own.entry(key.cloned()).or_insert_with(|| {
            Arc::new(Limiter::new(
                config,
                self.connection
                    .inputs
                    .metrics
                    .resilience
                    .local_rate_limit(&config.stat_prefix),
            ))
        });
        Some(limiter.clone())
    }
}

impl<S: Next> tower_service::Service<Request<UpstreamBody>> for LocalRateLimitFilter<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let matched = request.extensions().get::<Matched>().cloned();
        let decision = match self.limiter(matched.as_ref()) {
            Some(limiter) => {
                limiter.check(|config| self.descriptors(config, &request, matched.as_ref()))
            }
            None => Decision::Pass(None),
        };
        match decision {
            Decision::Refuse(refusal) => {
                let refusal = super::local_reply::from_filter(refusal);
                Box::pin(async move { Ok(refusal) })
            }
            Decision::Pass(None) => Box::pin(self.inner.call(request)),
            Decision::Pass(Some(headers)) => {
                // A combinator rather than an async block: rustc cannot prove an async block holding `S::Future`
                // `Send` here (a known limit with boxed `dyn Error` bodies in the bounds).
                Box::pin(self.inner.call(request).map(move |result| {
                    let Ok(mut response) = result;
                    headers.write(&mut response);
                    Ok(response)
                }))
            }
        }
    }
}
