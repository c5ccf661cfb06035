//! `envoy.filters.http.csrf`, as Envoy 1.40 runs it (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - the policy is the most specific one: the route's `typed_per_filter_config` under the filter's name, else
//!   the virtual host's, else the filter's own (also when no route matched);
//! - when the policy is enabled or shadowing, a `POST`, `PUT`, `DELETE` or `PATCH` (exactly these, case
//!   sensitive) is checked: its source origin (`Origin`, else `Referer`) must equal the target origin (the
//!   host) or match one of `additional_origins`, compared as `host[:port]` (`csrf/origin.rs`);
//! - a request without a source origin (or with `Origin: null`) fails and counts `missing_source_origin`
//!   only, whatever the additional origins; a mismatch counts `request_invalid`, a match `request_valid`;
//! - an invalid request gets 403 `Invalid origin` (details `csrf_origin_mismatch`) when the policy is
//!   enabled; shadowing alone only counts it.

mod origin;
#[cfg(test)]
mod tests;

use super::connection_manager::Matched;
use super::filter_service::Next;
use super::local_reply::{self, ResponseBody};
use crate::upstream::UpstreamBody;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use outrigger_config::model::core::Fraction;
use outrigger_config::model::csrf::{Csrf, CsrfPolicy};
use outrigger_config::model::route::PerFilterConfig;
use prometheus_client::metrics::counter::Counter;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The CSRF statistics of one connection manager, shared by its CSRF filters (as Envoy's are, by name).
pub struct Stats {
    missing_source_origin: Counter,
    request_invalid: Counter,
    request_valid: Counter,
}

impl Stats {
    pub fn new(metrics: &crate::metrics::Metrics, stat_prefix: &str) -> Self {
        let f = &metrics.filters;
        Self {
            missing_source_origin: f.csrf_counter(stat_prefix, "missing_source_origin"),
            request_invalid: f.csrf_counter(stat_prefix, "request_invalid"),
            request_valid: f.csrf_counter(stat_prefix, "request_valid"),
        }
    }
}

/// The filter on one connection.
#[derive(Clone)]
pub struct CsrfFilter<S> {
    inner: S,
    config: Arc<Csrf>,
    stats: Arc<Stats>,
}

impl<S> CsrfFilter<S> {
    pub fn new(inner: S, config: &Csrf, stats: Arc<Stats>) -> Self {
        Self {
            inner,
            config: Arc::new(config.clone()),
            stats,
        }
    }
}

/// What the check found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Not checked: the policy is off, or the method cannot change state.
    Unchecked,
    Valid,
    /// No source origin at all.
    Missing,
    /// The origins differ and no additional origin matches.
    Mismatch,
}

/// Checks one request's head against a policy (the counting and the answer are the caller's).
pub fn check(policy: &CsrfPolicy, parts: &Parts, enabled: bool, shadow: bool) -> Verdict {
    if !enabled && !shadow {
        return Verdict::Unchecked;
    }
    if ![Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(&parts.method) {
        return Verdict::Unchecked;
    }
    let source = origin::source(&parts.headers);
    if source.is_empty() {
        return Verdict::Missing;
    }
    let target = origin::target(super::headers::authority(parts));
    if source == target || policy.additional_origins.iter().any(|m| m.matches(&source)) {
        Verdict::Valid
    } else {
        Verdict::Mismatch
    }
}

/// The policy for a request: the route's, the virtual host's, or the filter's own.
fn policy<'a>(config: &'a Csrf, matched: Option<&'a Matched>) -> &'a CsrfPolicy {
    let typed = |c: Option<&'a PerFilterConfig>| match c {
        Some(PerFilterConfig::Csrf(p)) => Some(p),
        _ => None,
    };
    let name = config.filter_name.as_str();
    matched
        .and_then(Matched::route)
        .and_then(|(_, host, route)| {
            typed(route.per_filter(name)).or_else(|| typed(host.per_filter(name)))
        })
        .unwrap_or(&config.policy)
}

/// True with the fraction's probability; each call draws anew, as Envoy's runtime does for `featureEnabled`.
fn roll(fraction: Fraction) -> bool {
    fraction.0 >= 1.0 || (fraction.0 > 0.0 && fastrand::f64() < fraction.0)
}

/// Envoy's reply to a refused request.
fn refused() -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text("Invalid origin"));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
        .extensions_mut()
        .insert(crate::access_log::record::Details("csrf_origin_mismatch"));
    local_reply::from_filter(response)
}

impl<S: Next> tower_service::Service<Request<UpstreamBody>> for CsrfFilter<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        S::Future,
        std::future::Ready<Result<Response<ResponseBody>, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::future::Either;
        let (parts, body) = request.into_parts();
        let policy = policy(&self.config, parts.extensions.get::<Matched>());
        let enabled = roll(policy.filter_enabled);
        let shadow = policy.shadow_enabled.is_some_and(roll);
        match check(policy, &parts, enabled, shadow) {
            Verdict::Unchecked => {}
            Verdict::Valid => {
                self.stats.request_valid.inc();
            }
            invalid @ (Verdict::Missing | Verdict::Mismatch) => {
                if invalid == Verdict::Missing {
                    self.stats.missing_source_origin.inc();
                } else {
                    self.stats.request_invalid.inc();
                }
                if enabled {
                    return Either::Right(std::future::ready(Ok(refused())));
                }
            }
        }
        Either::Left(self.inner.call(Request::from_parts(parts, body)))
    }
}
