//! The connection manager's share of a request, before the HTTP filters run: header limits (`header_limits`),
//! path normalization, the headers the proxy sets (request id, forwarding headers, XFCC), and the route lookup,
//! whose result the filters and the router read from the request's extensions (as Envoy's filters see the
//! cached route).
//!
//! `ConnectionManager` is what one connection manager config becomes at run time, once per snapshot: its route
//! stacks and its rate limiters.

use super::downstream_stats::DownstreamCounters;
use super::local_rate_limit::Limiter;
use super::local_reply::{self, Flag, ResponseBody, reply};
use super::route_stack::{self, RouteService};
use super::{Connection, header_limits, headers, path_normalization, route};
use crate::upstream::{BoxError, UpstreamBody};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use outrigger_config::model::http::{
    HttpConnectionManager, HttpFilter, LocalRateLimit, RouteSource,
};
use outrigger_config::model::route::{Route, RouteAction, RouteConfig, VirtualHost};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The route a request matched: indexes into the route table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matched {
    pub vhost: usize,
    pub route: usize,
}

pub struct ConnectionManager {
    pub config: Arc<HttpConnectionManager>,
    /// By virtual host, then route: the upstream stack of each `route` action.
    stacks: Vec<Vec<Option<RouteService>>>,
    /// By virtual host, then route: `x-envoy-expected-rq-timeout-ms` (none when suppressed or no timeout).
    expected_timeouts: Vec<Vec<Option<http::HeaderValue>>>,
    /// The local rate limit filter's config, when the chain has the filter.
    pub rate_limit_filter: Option<LocalRateLimit>,
    /// The HCM-level local rate limit filter's shared bucket (none when per connection or absent).
    pub rate_limit: Option<Arc<Limiter>>,
    /// Per-route local rate limits (`typed_per_filter_config`), shared buckets.
    pub route_limits: Vec<Vec<Option<Arc<Limiter>>>>,
    pub counters: Arc<DownstreamCounters>,
}

impl ConnectionManager {
    pub fn new(config: Arc<HttpConnectionManager>, metrics: &crate::metrics::Metrics) -> Self {
        let table = match &config.routes {
            RouteSource::Static(table) => Some(table),
            RouteSource::Rds { .. } => None,
        };
        let routes = || {
            table
                .into_iter()
                .flat_map(|t| t.virtual_hosts.iter())
                .map(|v| v.routes.iter())
        };
        let suppress_envoy_headers = config
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::Router(router) if router.suppress_envoy_headers));
        let expected_timeouts = routes()
            .map(|routes| {
                routes
                    .map(|r| match &r.action {
                        RouteAction::Route(forward) if !suppress_envoy_headers => {
                            super::envoy_headers::expected_timeout(forward)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let stacks = routes()
            .map(|routes| {
                routes
                    .map(|r| match &r.action {
                        RouteAction::Route(forward) => {
                            Some(route_stack::build(forward, suppress_envoy_headers))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let filter = config.http_filters.iter().find_map(|f| match f {
            HttpFilter::LocalRateLimit(l) => Some(l),
            HttpFilter::Router(_) => None,
        });
        let rate_limit = filter.and_then(|l| Limiter::shared(l, metrics));
        let route_limits = routes()
            .map(|routes| {
                routes
                    .map(|r| {
                        // A per-route config only acts when the filter is in the chain.
                        filter?;
                        r.local_rate_limit
                            .as_ref()
                            .and_then(|l| Limiter::shared(l, metrics))
                    })
                    .collect()
            })
            .collect();
        let rate_limit_filter = filter.cloned();
        Self {
            counters: Arc::new(DownstreamCounters::new(metrics, &config.stat_prefix)),
            rate_limit_filter,
            config,
            stacks,
            expected_timeouts,
            rate_limit,
            route_limits,
        }
    }

    fn table(&self) -> Option<&RouteConfig> {
        match &self.config.routes {
            RouteSource::Static(table) => Some(table),
            RouteSource::Rds { .. } => None,
        }
    }

    pub fn route(&self, matched: Matched) -> Option<(&RouteConfig, &VirtualHost, &Route)> {
        let table = self.table()?;
        let vhost = table.virtual_hosts.get(matched.vhost)?;
        let route = vhost.routes.get(matched.route)?;
        Some((table, vhost, route))
    }

    pub fn route_service(&self, matched: Matched) -> Option<RouteService> {
        self.stacks.get(matched.vhost)?.get(matched.route)?.clone()
    }

    /// `x-envoy-expected-rq-timeout-ms` for the route, unless the router suppresses Envoy's headers.
    pub fn expected_timeout(&self, matched: Matched) -> Option<&http::HeaderValue> {
        self.expected_timeouts
            .get(matched.vhost)?
            .get(matched.route)?
            .as_ref()
    }

    fn lookup(&self, parts: &http::request::Parts) -> Option<Matched> {
        let table = self.table()?;
        let host = headers::authority(parts).unwrap_or_default();
        let vhost = route::virtual_host_index(table, &host)?;
        let route = route::route_index(table.virtual_hosts.get(vhost)?, parts)?;
        Some(Matched { vhost, route })
    }
}

/// An allowed protocol upgrade (`websocket`, ...) the request asks for.
#[derive(Clone, Debug)]
pub struct Upgrade(pub String);

/// The service hyper calls: header checks and preparation, the route lookup, then the HTTP filters, which see
/// the request body boxed (`UpstreamBody`) whatever the connection's own body type.
#[derive(Clone)]
pub struct Decode<F> {
    pub connection: Arc<Connection>,
    pub manager: Arc<ConnectionManager>,
    pub filters: F,
}

impl<F, B> tower_service::Service<Request<B>> for Decode<F>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
    F: tower_service::Service<
            Request<UpstreamBody>,
            Response = Response<ResponseBody>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    F::Future: Send,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.filters.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if let Some(response) = header_limits::check(&parts, &self.connection.hcm) {
            return Box::pin(async move { Ok(response) });
        }
        // An upgrade the connection manager allows (`upgrade_configs`) keeps its hop-by-hop headers: note it
        // before they are removed. Any other is refused, as Envoy does (403 `upgrade_failed`, and the
        // connection closes: its bytes after the request may be the other protocol's). Envoy's codec strips an
        // `h2c` upgrade instead, so that request goes on as a plain one.
        let hcm = &self.connection.hcm;
        if let Some(kind) = headers::upgrade_type(&parts.headers)
            && parts.version == http::Version::HTTP_11
            && kind != "h2c"
        {
            if !hcm.upgrade_types.contains(&kind) {
                return Box::pin(async { Ok(upgrade_refused()) });
            }
            parts.extensions.insert(Upgrade(kind));
        }
        if path_normalization::apply(&mut parts, hcm).is_err() {
            let mut response = Response::new(local_reply::empty());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Box::pin(async move { Ok(response) });
        }
        headers::prepare_request(&mut parts, &self.connection);
        match self.manager.lookup(&parts) {
            Some(matched) => {
                parts.extensions.insert(matched);
            }
            None if self.manager.table().is_none() => {
                return Box::pin(async { Ok(reply(StatusCode::NOT_FOUND, Flag::NoRoute, "")) });
            }
            None => {}
        }
        // From here on the body is boxed: a filter may wrap it (to watch it, or to keep it for retries).
        let request = Request::from_parts(parts, body.map_err(Into::into).boxed());
        Box::pin(self.filters.call(request))
    }
}

/// Envoy's reply to an upgrade no `upgrade_configs` entry allows.
fn upgrade_refused() -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::empty());
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}
