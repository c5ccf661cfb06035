//! The connection manager's share of a request, before the HTTP filters run: header limits (size and count),
//! path normalization, the headers the proxy sets (request id, forwarding headers, XFCC), and the route lookup, whose result the filters and the
//! router read from the request's extensions (as Envoy's filters see the cached route).
//!
//! `ConnectionManager` is what one connection manager config becomes at run time, once per snapshot: its route
//! stacks and its rate limiters.

use super::local_rate_limit::Limiter;
use super::local_reply::{self, Flag, ResponseBody, reply};
use super::route_stack::{self, RouteService};
use super::{Connection, headers, path_normalization, route};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use outrigger_config::model::http::{HttpConnectionManager, HttpFilter, RouteSource};
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
    /// The HCM-level local rate limit filter's shared bucket (none when per connection or absent).
    pub rate_limit: Option<Arc<Limiter>>,
    /// Per-route local rate limits (`typed_per_filter_config`), shared buckets.
    pub route_limits: Vec<Vec<Option<Arc<Limiter>>>>,
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
        let stacks = routes()
            .map(|routes| {
                routes
                    .map(|r| match &r.action {
                        RouteAction::Route(forward) => Some(route_stack::build(forward)),
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
        Self {
            config,
            stacks,
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

    fn lookup(&self, parts: &http::request::Parts) -> Option<Matched> {
        let table = self.table()?;
        let host = headers::authority(parts).unwrap_or_default();
        let vhost = route::virtual_host_index(table, &host)?;
        let route = route::route_index(table.virtual_hosts.get(vhost)?, parts)?;
        Some(Matched { vhost, route })
    }
}

/// Marks a response that must not be sent: the h2 stream is reset instead (hyper resets a stream whose
/// service fails).
#[derive(Clone, Copy, Debug)]
pub struct ResetStream;

#[derive(Debug, thiserror::Error)]
#[error("stream reset by the connection manager")]
pub struct StreamReset;

/// What hyper gets for a response: the response, or an error that resets its stream.
pub fn reset_or_respond(
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, StreamReset> {
    match response.extensions().get::<ResetStream>() {
        Some(ResetStream) => Err(StreamReset),
        None => Ok(response),
    }
}

/// Envoy's `max_headers_count` counts every header line, and on h2 the pseudo-headers too.
fn headers_count(parts: &http::request::Parts) -> usize {
    let pseudo = if parts.version == http::Version::HTTP_2 {
        let connect = parts.method == http::Method::CONNECT;
        let extended = parts.extensions.get::<hyper::ext::Protocol>().is_some();
        let authority = usize::from(parts.uri.authority().is_some());
        if connect && !extended {
            1 + authority
        } else {
            3 + authority + usize::from(extended)
        }
    } else {
        0
    };
    parts.headers.len() + pseudo
}

/// More headers than `max_headers_count`: HTTP/1 gets Envoy's codec reply (431, closing the connection); an h2
/// stream is reset.
fn too_many_headers(version: http::Version) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text("Request Header Fields Too Large"));
    *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    if version == http::Version::HTTP_2 {
        response.extensions_mut().insert(ResetStream);
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `normalize_path` or `merge_slashes` on the request's path; `Err` when the path cannot be normalized.
fn normalize_path(
    parts: &mut http::request::Parts,
    hcm: &HttpConnectionManager,
) -> Result<(), path_normalization::InvalidPath> {
    if !hcm.normalize_path && !hcm.merge_slashes {
        return Ok(());
    }
    let Some(path_and_query) = parts.uri.path_and_query() else {
        return Ok(());
    };
    let Some(normalized) = path_normalization::normalize(
        path_and_query.as_str(),
        hcm.normalize_path,
        hcm.merge_slashes,
    )?
    else {
        return Ok(());
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(
        normalized
            .parse()
            .map_err(|_| path_normalization::InvalidPath)?,
    );
    parts.uri = http::Uri::from_parts(uri).map_err(|_| path_normalization::InvalidPath)?;
    Ok(())
}

/// An allowed protocol upgrade (`websocket`, ...) the request asks for.
#[derive(Clone, Debug)]
pub struct Upgrade(pub String);

/// The service hyper calls: header checks and preparation, the route lookup, then the HTTP filters.
#[derive(Clone)]
pub struct Decode<F> {
    pub connection: Arc<Connection>,
    pub manager: Arc<ConnectionManager>,
    pub filters: F,
}

impl<F> tower_service::Service<Request<Incoming>> for Decode<F>
where
    F: tower_service::Service<
            Request<Incoming>,
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

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if headers_count(&parts) > self.connection.hcm.max_headers_count as usize {
            let response = too_many_headers(parts.version);
            return Box::pin(async move { Ok(response) });
        }
        let limit = self.connection.hcm.max_request_headers_kb as usize * 1024;
        if headers::size(&parts.headers) > limit {
            let mut response = Response::new(local_reply::empty());
            *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Box::pin(async move { Ok(response) });
        }
        // An upgrade the connection manager allows (`upgrade_configs`) keeps its hop-by-hop headers: note it
        // before they are removed.
        let hcm = &self.connection.hcm;
        if let Some(kind) = headers::upgrade_type(&parts.headers)
            && parts.version == http::Version::HTTP_11
            && hcm.upgrade_types.contains(&kind)
        {
            parts.extensions.insert(Upgrade(kind));
        }
        if normalize_path(&mut parts, hcm).is_err() {
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
        let request = Request::from_parts(parts, body);
        Box::pin(self.filters.call(request))
    }
}
