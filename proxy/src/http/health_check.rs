//! `envoy.filters.http.health_check`: requests matching every `headers` matcher are health checks. As in Envoy
//! 1.40 (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - without `pass_through_mode` the proxy answers them: 200, or 503 with `x-envoy-immediate-health-check-fail:
//!   true` once `POST /healthcheck/fail` was sent to the admin API (`request_total`, then `ok` or `failed`);
//! - with `pass_through_mode` they go upstream, unless the proxy is failing its health checks (then the same 503
//!   and statistics);
//! - every answer to a health check carries `x-envoy-upstream-healthchecked-cluster` (the node's `cluster`), and
//!   every other response passing the filter while failing carries `x-envoy-immediate-health-check-fail: true`.

use super::filter_service::{BoxFuture, Next};
use super::local_reply::{self, ResponseBody};
use super::route::headers_match;
use crate::Inputs;
use crate::metrics::Metrics;
use crate::upstream::UpstreamBody;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use outrigger_config::model::http::HealthCheck;
use outrigger_config::model::route::HeaderMatcher;
use prometheus_client::metrics::counter::Counter;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

const IMMEDIATE_FAIL: &str = "x-envoy-immediate-health-check-fail";
const CHECKED_CLUSTER: &str = "x-envoy-upstream-healthchecked-cluster";

/// A matcher of a pseudo-header reads the request line; any other reads the headers.
enum Matcher {
    Header(HeaderMatcher),
    Pseudo(Pseudo, HeaderMatcher),
}

#[derive(Clone, Copy)]
enum Pseudo {
    Path,
    Method,
    Authority,
    Scheme,
}

/// One health check filter config at run time, shared by every connection of its connection manager.
pub struct HealthChecker {
    pass_through_mode: bool,
    matchers: Vec<Matcher>,
    stats: Stats,
}

struct Stats {
    request_total: Counter,
    ok: Counter,
    failed: Counter,
}

impl HealthChecker {
    pub fn new(config: &HealthCheck, metrics: &Metrics, stat_prefix: &str) -> Self {
        let f = &metrics.filters;
        for name in crate::metrics::filters::HEALTH_CHECK_STATS {
            f.health_check_counter(stat_prefix, name);
        }
        let matchers = config
            .headers
            .iter()
            .map(|m| {
                let pseudo = match m.name.as_str() {
                    ":path" => Pseudo::Path,
                    ":method" => Pseudo::Method,
                    ":authority" | "host" => Pseudo::Authority,
                    ":scheme" => Pseudo::Scheme,
                    _ => return Matcher::Header(m.clone()),
                };
                let mut m = m.clone();
                m.name = "x-pseudo".to_string();
                Matcher::Pseudo(pseudo, m)
            })
            .collect();
        Self {
            pass_through_mode: config.pass_through_mode,
            matchers,
            stats: Stats {
                request_total: f.health_check_counter(stat_prefix, "request_total"),
                ok: f.health_check_counter(stat_prefix, "ok"),
                failed: f.health_check_counter(stat_prefix, "failed"),
            },
        }
    }

    fn matches<B>(&self, request: &Request<B>) -> bool {
        self.matchers.iter().all(|m| match m {
            Matcher::Header(m) => headers_match(m, request.headers()),
            Matcher::Pseudo(pseudo, m) => {
                let value = match pseudo {
                    Pseudo::Path => request
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_string(),
                    Pseudo::Method => request.method().as_str().to_string(),
                    Pseudo::Authority => {
                        super::headers::authority_in(request.uri(), request.headers())
                            .unwrap_or_default()
                            .to_string()
                    }
                    Pseudo::Scheme => request.uri().scheme_str().unwrap_or("http").to_string(),
                };
                let mut one = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_str(&value) {
                    one.insert("x-pseudo", value);
                }
                headers_match(m, &one)
            }
        })
    }
}

/// The filter on one connection.
#[derive(Clone)]
pub struct HealthCheckFilter<S> {
    inner: S,
    checker: Arc<HealthChecker>,
    inputs: Arc<Inputs>,
    /// The node's `cluster`, for `x-envoy-upstream-healthchecked-cluster`.
    cluster: HeaderValue,
}

impl<S> HealthCheckFilter<S> {
    pub fn new(inner: S, checker: Arc<HealthChecker>, inputs: Arc<Inputs>) -> Self {
        let cluster = HeaderValue::from_str(&inputs.generation().snapshot.node.cluster)
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Self {
            inner,
            checker,
            inputs,
            cluster,
        }
    }
}

impl<S: Next + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for HealthCheckFilter<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let failing = self.inputs.health_check_failed.load(Ordering::Relaxed);
        let checker = &self.checker;
        if !checker.matches(&request) {
            return Box::pin(self.inner.call(request).map(move |result| {
                let Ok(mut response) = result;
                if failing {
                    response
                        .headers_mut()
                        .insert(IMMEDIATE_FAIL, HeaderValue::from_static("true"));
                }
                Ok(response)
            }));
        }
        let cluster = self.cluster.clone();
        if checker.pass_through_mode && !failing {
            return Box::pin(self.inner.call(request).map(move |result| {
                let Ok(mut response) = result;
                response.headers_mut().insert(CHECKED_CLUSTER, cluster);
                Ok(response)
            }));
        }
        checker.stats.request_total.inc();
        let mut response = Response::new(local_reply::empty());
        if failing {
            checker.stats.failed.inc();
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
                .headers_mut()
                .insert(IMMEDIATE_FAIL, HeaderValue::from_static("true"));
        } else {
            checker.stats.ok.inc();
        }
        response.headers_mut().insert(CHECKED_CLUSTER, cluster);
        let response = local_reply::from_filter(response);
        Box::pin(async move { Ok(response) })
    }
}
