//! `envoy.filters.http.cors`, as Envoy 1.40 runs it (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - a request with an `Origin` on a route with a route action is counted `http.<prefix>.cors.origin_valid` or
//!   `origin_invalid` against the policies (`cors/policy.rs`), when the most specific one is enabled or
//!   shadowing; in shadow mode nothing else happens;
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is answered by the
//!   proxy: 200, the `access-control-allow-*` and `-max-age` headers, no body; from another origin it goes
//!   upstream, unless `forward_not_matching_preflights` is false (then 200 without `-allow-origin`);
//! - every response to an allowed origin's request (upstream or made by a later filter, and the proxy's own
//!   preflight answer) gets `access-control-allow-origin`, `-allow-credentials` and `-expose-headers`.

mod policy;
#[cfg(test)]
mod tests;

use super::connection_manager::Matched;
use super::filter_service::{BoxFuture, Next};
use super::local_reply::{self, ResponseBody};
use crate::metrics::Metrics;
use crate::upstream::UpstreamBody;
use http::{Request, Response, StatusCode};
use policy::{Decision, Policies, decide};
use prometheus_client::metrics::counter::Counter;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The CORS statistics of one connection manager, shared by its CORS filters (as Envoy's are, by name).
pub struct Stats {
    origin_valid: Counter,
    origin_invalid: Counter,
}

impl Stats {
    pub fn new(metrics: &Metrics, stat_prefix: &str) -> Self {
        let f = &metrics.filters;
        Self {
            origin_valid: f.cors_counter(stat_prefix, "origin_valid"),
            origin_invalid: f.cors_counter(stat_prefix, "origin_invalid"),
        }
    }

    fn count(&self, valid: bool) {
        if valid {
            self.origin_valid.inc();
        } else {
            self.origin_invalid.inc();
        }
    }
}

/// The filter on one connection.
#[derive(Clone)]
pub struct CorsFilter<S> {
    inner: S,
    /// The filter's name: its key in `typed_per_filter_config`.
    name: Arc<str>,
    stats: Arc<Stats>,
}

impl<S> CorsFilter<S> {
    pub fn new(inner: S, name: Arc<str>, stats: Arc<Stats>) -> Self {
        Self { inner, name, stats }
    }
}

impl<S: Next> tower_service::Service<Request<UpstreamBody>> for CorsFilter<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let decision = Policies::for_request(&self.name, parts.extensions.get::<Matched>())
            .map_or(Decision::Ignore, |policies| decide(&policies, &parts));
        let decorate = match decision {
            Decision::Ignore => None,
            Decision::Pass { valid, decorate } => {
                self.stats.count(valid);
                decorate
            }
            Decision::Answer {
                valid,
                headers,
                decorate,
            } => {
                self.stats.count(valid);
                let mut response = Response::new(local_reply::empty());
                *response.status_mut() = StatusCode::OK;
                *response.headers_mut() = headers;
                if let Some(decorate) = &decorate {
                    decorate.apply(response.headers_mut());
                }
                response
                    .extensions_mut()
                    .insert(crate::access_log::record::Details("cors_response"));
                let response = local_reply::from_filter(response);
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        let future = self.inner.call(Request::from_parts(parts, body));
        let Some(decorate) = decorate else {
            return Box::pin(future);
        };
        use futures_util::FutureExt;
        Box::pin(future.map(move |result| {
            let Ok(mut response) = result;
            decorate.apply(response.headers_mut());
            Ok(response)
        }))
    }
}
