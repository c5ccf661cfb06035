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
use super::route_index::RouteIndex;
use super::route_stack::{self, RouteService};
use super::{Connection, header_limits, headers, path_normalization, request_shape, route};
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

/// The route a request matched: the route table it was matched in (a later RDS update does not change a
/// request already routed) and indexes into it.
#[derive(Clone)]
pub struct Matched {
    pub table: Arc<RouteTable>,
    pub vhost: usize,
    pub route: usize,
}

impl Matched {
    pub fn route(&self) -> Option<(&RouteConfig, &VirtualHost, &Route)> {
        let config = &self.table.config;
        let vhost = config.virtual_hosts.get(self.vhost)?;
        let route = vhost.routes.get(self.route)?;
        Some((config, vhost, route))
    }

    /// The upstream stack of a `route` action.
    pub fn service(&self) -> Option<RouteService> {
        self.table.stacks.get(self.vhost)?.get(self.route)?.clone()
    }

    /// The upstream stack of the route's mirrors (`request_mirror_policies`), if it has any.
    pub fn mirror_service(&self) -> Option<RouteService> {
        self.table.mirrors.get(self.vhost)?.get(self.route)?.clone()
    }

    /// `x-envoy-expected-rq-timeout-ms` for the route, unless the router suppresses Envoy's headers.
    pub fn expected_timeout(&self) -> Option<&http::HeaderValue> {
        self.table
            .expected_timeouts
            .get(self.vhost)?
            .get(self.route)?
            .as_ref()
    }

    /// The route's shared local rate limit bucket (`typed_per_filter_config`), if it has one.
    pub fn route_limit(&self) -> Option<Arc<Limiter>> {
        self.table
            .route_limits
            .get(self.vhost)?
            .get(self.route)?
            .clone()
    }
}

impl PartialEq for Matched {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
            && self.vhost == other.vhost
            && self.route == other.route
    }
}

impl Eq for Matched {}

impl std::hash::Hash for Matched {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.table).hash(state);
        self.vhost.hash(state);
        self.route.hash(state);
    }
}

impl std::fmt::Debug for Matched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matched")
            .field("route_config", &self.table.config.name)
            .field("vhost", &self.vhost)
            .field("route", &self.route)
            .finish()
    }
}

/// One route configuration at run time, built once: by virtual host, then route, each `route` action's
/// upstream stack, its expected-timeout header and its shared local rate limit bucket.
pub struct RouteTable {
    pub config: Arc<RouteConfig>,
    stacks: Vec<Vec<Option<RouteService>>>,
    /// Each route's mirror stack (`route_stack::mirror`), when it mirrors.
    mirrors: Vec<Vec<Option<RouteService>>>,
    /// `x-envoy-expected-rq-timeout-ms` (none when suppressed or no timeout).
    expected_timeouts: Vec<Vec<Option<http::HeaderValue>>>,
    /// Per-route local rate limits (`typed_per_filter_config`), shared buckets.
    route_limits: Vec<Vec<Option<Arc<Limiter>>>>,
    /// Each virtual host's routes by path, so a lookup does not test every route (`route_index.rs`).
    indexes: Vec<RouteIndex>,
}

impl RouteTable {
    fn new(
        config: Arc<RouteConfig>,
        hcm: &HttpConnectionManager,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        let suppress_envoy_headers = hcm
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::Router(router) if router.suppress_envoy_headers));
        let filter_present = hcm
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::LocalRateLimit(_)));
        fn per_route<T>(config: &RouteConfig, f: impl Fn(&Route) -> T) -> Vec<Vec<T>> {
            config
                .virtual_hosts
                .iter()
                .map(|v| v.routes.iter().map(&f).collect())
                .collect()
        }
        let expected_timeouts = per_route(&config, |r| match &r.action {
            RouteAction::Route(forward) if !suppress_envoy_headers => {
                super::envoy_headers::expected_timeout(forward)
            }
            _ => None,
        });
        let stacks = per_route(&config, |r| match &r.action {
            RouteAction::Route(forward) => {
                Some(route_stack::build(forward, suppress_envoy_headers))
            }
            _ => None,
        });
        let mirrors = per_route(&config, |r| match &r.action {
            RouteAction::Route(forward) if !forward.mirrors.is_empty() => {
                Some(route_stack::mirror(forward, suppress_envoy_headers))
            }
            _ => None,
        });
        // A per-route config only acts when the filter is in the chain.
        let route_limits = per_route(&config, |r| {
            r.local_rate_limit
                .as_ref()
                .filter(|_| filter_present)
                .and_then(|l| Limiter::shared(l, metrics))
        });
        let indexes = config.virtual_hosts.iter().map(RouteIndex::new).collect();
        Self {
            config,
            stacks,
            mirrors,
            expected_timeouts,
            route_limits,
            indexes,
        }
    }
}

/// Where a connection manager's routes come from.
enum Routes {
    /// `route_config`: built with the connection manager.
    Static(Arc<RouteTable>),
    /// `rds`: the latest route configuration of that name the control plane sent (none yet: every request is
    /// answered 404, as Envoy does once it stops waiting for it). An update applies from the next request on,
    /// also on open connections.
    Rds {
        name: String,
        current: arc_swap::ArcSwapOption<RouteTable>,
    },
}

pub struct ConnectionManager {
    pub config: Arc<HttpConnectionManager>,
    routes: Routes,
    /// The local rate limit filter's config, when the chain has the filter.
    pub rate_limit_filter: Option<LocalRateLimit>,
    /// The HCM-level local rate limit filter's shared bucket (none when per connection or absent).
    pub rate_limit: Option<Arc<Limiter>>,
    /// The fault filter, when the chain has one (its active faults shared by every connection).
    pub fault: Option<Arc<super::fault::Injector>>,
    /// The authorization filters (RBAC, ext_authz), in their order.
    pub authorization: Vec<super::authorization::Authorizer>,
    /// The compressor filters, in chain order.
    pub compressors: Vec<Arc<super::compressor::Compression>>,
    /// The decompressor filters, in chain order.
    pub decompressors: Arc<[Arc<super::decompressor::Decompression>]>,
    /// The health check filters, by their place in the chain.
    health_checks: Vec<(usize, Arc<super::health_check::HealthChecker>)>,
    /// The CORS filters' statistics, when the chain has one.
    pub cors: Option<Arc<super::cors::Stats>>,
    /// The CSRF filters' statistics, when the chain has one.
    pub csrf: Option<Arc<super::csrf::Stats>>,
    pub counters: Arc<DownstreamCounters>,
    /// The connection manager's `access_log` entries (empty: nothing is recorded per request).
    pub access_logs: Arc<crate::access_log::Loggers>,
    /// The `tracing` block at run time (none: nothing is traced).
    pub tracer: Option<Arc<crate::trace::Tracer>>,
}

impl ConnectionManager {
    pub fn new(config: Arc<HttpConnectionManager>, metrics: &crate::metrics::Metrics) -> Self {
        let routes = match &config.routes {
            RouteSource::Static(table) => Routes::Static(Arc::new(RouteTable::new(
                Arc::new(table.clone()),
                &config,
                metrics,
            ))),
            RouteSource::Rds {
                route_config_name, ..
            } => Routes::Rds {
                name: route_config_name.clone(),
                current: arc_swap::ArcSwapOption::empty(),
            },
        };
        let filter = config.http_filters.iter().find_map(|f| match f {
            HttpFilter::LocalRateLimit(l) => Some(l),
            _ => None,
        });
        let fault = config.http_filters.iter().find_map(|f| match f {
            HttpFilter::Fault(fault) => Some(Arc::new(super::fault::Injector::new(
                fault,
                metrics,
                &config.stat_prefix,
            ))),
            _ => None,
        });
        use super::authorization::Authorizer;
        let authorization = config
            .http_filters
            .iter()
            .filter_map(|f| match f {
                HttpFilter::Rbac(r) => Some(Authorizer::Rbac(super::rbac::Enforcer::new(
                    r,
                    metrics,
                    &config.stat_prefix,
                ))),
                HttpFilter::ExtAuthz(e) => Some(Authorizer::ExtAuthz(Arc::new(
                    super::ext_authz::Checker::new(e, metrics, &config.stat_prefix),
                ))),
                _ => None,
            })
            .collect();
        let compressors =
            super::compressor::build(&config.http_filters, metrics, &config.stat_prefix);
        let decompressors =
            super::decompressor::build(&config.http_filters, metrics, &config.stat_prefix).into();
        let health_checks = config
            .http_filters
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                HttpFilter::HealthCheck(h) => Some((
                    i,
                    Arc::new(super::health_check::HealthChecker::new(
                        h,
                        metrics,
                        &config.stat_prefix,
                    )),
                )),
                _ => None,
            })
            .collect();
        let cors = config
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::Cors(_)))
            .then(|| Arc::new(super::cors::Stats::new(metrics, &config.stat_prefix)));
        let csrf = config
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::Csrf(_)))
            .then(|| Arc::new(super::csrf::Stats::new(metrics, &config.stat_prefix)));
        let rate_limit = filter.and_then(|l| Limiter::shared(l, metrics));
        let rate_limit_filter = filter.cloned();
        Self {
            counters: Arc::new(DownstreamCounters::new(metrics, &config.stat_prefix)),
            access_logs: Arc::new(crate::access_log::Loggers::new(&config.access_log)),
            tracer: None,
            rate_limit_filter,
            fault,
            authorization,
            compressors,
            decompressors,
            health_checks,
            cors,
            csrf,
            config,
            routes,
            rate_limit,
        }
    }

    /// The health check filter at this place in the chain.
    pub fn health_check(&self, index: usize) -> Option<Arc<super::health_check::HealthChecker>> {
        self.health_checks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, c)| c.clone())
    }

    /// The RDS route configuration name this connection manager follows, if it uses RDS.
    pub fn rds_name(&self) -> Option<&str> {
        match &self.routes {
            Routes::Rds { name, .. } => Some(name),
            Routes::Static(_) => None,
        }
    }

    /// Installs the route configuration RDS delivered (`None`: it was removed). Unchanged configurations (the
    /// same `Arc`) keep their table, so their buckets and stacks stay.
    pub fn set_route_config(
        &self,
        config: Option<&Arc<RouteConfig>>,
        metrics: &crate::metrics::Metrics,
    ) {
        let Routes::Rds { current, .. } = &self.routes else {
            return;
        };
        let unchanged = match (current.load().as_ref(), config) {
            (Some(table), Some(config)) => Arc::ptr_eq(&table.config, config),
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            current
                .store(config.map(|c| Arc::new(RouteTable::new(c.clone(), &self.config, metrics))));
        }
    }

    /// The route table requests are matched in now.
    fn table(&self) -> Option<Arc<RouteTable>> {
        match &self.routes {
            Routes::Static(table) => Some(table.clone()),
            Routes::Rds { current, .. } => current.load_full(),
        }
    }

    /// The route at these indexes of the current table, as a request that matched it would carry it.
    #[cfg(test)]
    pub fn matched(&self, vhost: usize, route: usize) -> Option<Matched> {
        Some(Matched {
            table: self.table()?,
            vhost,
            route,
        })
    }

    fn lookup(table: Arc<RouteTable>, parts: &http::request::Parts) -> Option<Matched> {
        let host = headers::authority(parts).unwrap_or_default();
        let vhost = route::virtual_host_index(&table.config, host)?;
        let route = table
            .indexes
            .get(vhost)?
            .first(table.config.virtual_hosts.get(vhost)?, parts)?;
        Some(Matched {
            table,
            vhost,
            route,
        })
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
        if let Some(response) = header_limits::check(&parts, &self.connection.hcm)
            .or_else(|| request_shape::check(&parts))
        {
            // Envoy's HTTP/1 codec refuses these (an h2 stream is reset instead): a protocol error.
            if parts.version < http::Version::HTTP_2 {
                self.manager.counters.cx_protocol_error.inc();
            }
            return Box::pin(async move { Ok(response) });
        }
        // An upgrade keeps its hop-by-hop headers: note it before they are removed; whether it is allowed
        // depends on the route (below). Envoy's codec strips an `h2c` upgrade instead, so that request goes on
        // as a plain one.
        let hcm = &self.connection.hcm;
        let upgrade = headers::upgrade_type(&parts.headers)
            .filter(|kind| parts.version == http::Version::HTTP_11 && kind != "h2c");
        if path_normalization::apply(&mut parts, hcm).is_err() {
            let mut response = Response::new(local_reply::empty());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Box::pin(async move { Ok(response) });
        }
        let generated_id = headers::prepare_request(&mut parts, &self.connection);
        let Some(table) = self.manager.table() else {
            return Box::pin(async { Ok(reply(StatusCode::NOT_FOUND, Flag::NoRoute, "")) });
        };
        let matched = ConnectionManager::lookup(table, &parts);
        let notes = parts.extensions.get::<crate::access_log::Notes>().cloned();
        // The trace decision, once the route is known (Envoy's order); it rewrites `x-request-id` and writes
        // the context the upstream sees.
        let trace = self.manager.tracer.as_ref().and_then(|tracer| {
            // Only an egress span is named after the authority.
            let authority = tracer
                .names_spans_by_authority()
                .then(|| headers::authority(&parts).map(str::to_string))
                .flatten();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            tracer.start(&mut parts.headers, generated_id, authority.as_deref(), path)
        });
        let sampled = trace.is_some();
        // Notes kept only for the span go when the request is not sampled: the layers inside then fill nothing.
        let notes = notes.and_then(|n| {
            n.with(|r| r.trace = trace.map(Box::new));
            n.needed().then_some(n)
        });
        if notes.is_none() {
            parts.extensions.remove::<crate::access_log::Notes>();
        }
        let decorated = self.manager.tracer.as_ref().and_then(|tracer| {
            let decorator = matched
                .as_ref()
                .and_then(|m| m.route())
                .and_then(|(_, _, r)| r.decorator.as_ref());
            crate::trace::decorator::on_request(
                tracer.names_spans_by_authority(),
                decorator,
                &mut parts.headers,
                notes.as_ref(),
            )
        });
        if let Some(notes) = &notes {
            let route = matched.as_ref().and_then(|m| m.route()).map(|(_, _, r)| r);
            let route_name = route
                .map(|r| r.name.clone())
                .filter(|name| !name.is_empty());
            // Envoy knows a route's single cluster once the route is chosen, before any filter runs.
            let cluster = route.and_then(|r| match &r.action {
                RouteAction::Route(forward) => match &forward.target {
                    outrigger_config::model::route::ClusterTarget::Cluster(name) => {
                        Some(name.clone())
                    }
                    _ => None,
                },
                _ => None,
            });
            let head = access_log_head(
                &parts,
                &self.manager.access_logs,
                self.connection.istio.is_some(),
                sampled,
            );
            notes.with(|r| {
                r.request = Some(head);
                r.route_name = route_name;
                r.upstream_cluster = cluster;
            });
        }
        // An upgrade neither the route nor the connection manager allows is refused, as Envoy does (403
        // `upgrade_failed`, and the connection closes: its bytes after the request may be the other protocol's).
        if let Some(kind) = upgrade {
            if !upgrade_allowed(&kind, matched.as_ref(), &hcm.upgrade_types) {
                return Box::pin(async { Ok(upgrade_refused()) });
            }
            parts.extensions.insert(Upgrade(kind));
        }
        if let Some(matched) = matched {
            parts.extensions.insert(matched);
        }
        // From here on the body is boxed: a filter may wrap it (to watch it, or to keep it for retries).
        let mut body: UpstreamBody = body.map_err(Into::into).boxed();
        if let Some(notes) = &notes {
            body = crate::access_log::count_request(body, notes);
        }
        let request = Request::from_parts(parts, body);
        let response = self.filters.call(request);
        match decorated {
            None => Box::pin(response),
            // A combinator, not an async block: the filters' future is Send for every lifetime only this way.
            Some(then) => Box::pin(futures_util::FutureExt::map(response, move |result| {
                result.map(|mut response| {
                    crate::trace::decorator::on_response(then, response.headers_mut());
                    response
                })
            })),
        }
    }
}

/// The request as the access log reads it: after the connection manager's own headers (request id, XFF).
/// Only the headers something reads later are kept: the logs' (`loggers`), Istio's labels', and all of them
/// for a `sampled` span (its tags may name any header).
fn access_log_head(
    parts: &http::request::Parts,
    loggers: &crate::access_log::Loggers,
    istio: bool,
    sampled: bool,
) -> crate::access_log::record::RequestHead {
    use crate::access_log::captured::Captured;
    let istio_headers: &[http::HeaderName] = if istio {
        &crate::metrics::istio::REQUEST_HEADERS
    } else {
        &[]
    };
    crate::access_log::record::RequestHead {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: if sampled {
            Captured::all(&parts.headers)
        } else {
            Captured::of(&parts.headers, &[loggers.request_headers(), istio_headers])
        },
        header_bytes: if istio {
            headers::size(&parts.headers) as u64 + 2
        } else {
            0
        },
    }
}

/// Envoy's rule: the matched route's `upgrade_configs` entry for `kind` decides when it has one (`enabled`
/// true or false); otherwise the connection manager's enabled `upgrade_configs` do.
fn upgrade_allowed(kind: &str, matched: Option<&Matched>, enabled_by_manager: &[String]) -> bool {
    let by_route = matched
        .and_then(Matched::route)
        .and_then(|(_, _, route)| match &route.action {
            RouteAction::Route(forward) => forward.upgrades.iter().find(|(k, _)| k == kind),
            _ => None,
        })
        .map(|(_, enabled)| *enabled);
    by_route.unwrap_or_else(|| enabled_by_manager.iter().any(|k| k == kind))
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
