//! The router, the last HTTP filter: the matched route's action. A direct response or a redirect is answered
//! here; a `route` action picks the cluster, rewrites the path and host, and hands the request to the route's
//! upstream stack (`route_stack.rs`), built once per configuration snapshot.

use super::attempt::{Attempts, Target};
use super::connection_manager::{Matched, Upgrade};
use super::local_reply::{self, Flag, ResponseBody, reply};
use super::replay_body::RequestBody;
use super::{Connection, envoy_headers, headers, mirror, route_stack};
use crate::upstream::UpstreamBody;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use outrigger_config::model::core::HeaderMutations;
use outrigger_config::model::route::{
    BufferLimit, ClusterTarget, DirectResponse, Forward, HostRewrite, Route, RouteAction,
    VirtualHost,
};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt;

const X_ENVOY_ORIGINAL_PATH: http::HeaderName =
    http::HeaderName::from_static("x-envoy-original-path");

#[derive(Clone)]
pub struct Router {
    pub connection: Arc<Connection>,
}

impl tower_service::Service<Request<UpstreamBody>> for Router {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let router = self.clone();
        Box::pin(async move { Ok(router.route(request).await) })
    }
}

impl Router {
    async fn route(self, mut request: Request<UpstreamBody>) -> Response<ResponseBody> {
        let Some(matched) = request.extensions().get::<Matched>().cloned() else {
            return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
        };
        let Some((config, vhost, route)) = matched.route() else {
            return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
        };
        // A request the cache filter sends upstream goes as Envoy's cache filter sends it, through its own
        // client: without the route's header changes and `x-envoy-expected-rq-timeout-ms`.
        let from_cache_filter = request
            .extensions()
            .get::<super::cache::CacheUpstream>()
            .is_some();
        let all_levels = [&route.headers, &vhost.headers, &config.headers];
        let levels = if from_cache_filter {
            &all_levels[..0]
        } else {
            &all_levels[..]
        };
        let upgrade = request.extensions_mut().remove::<Upgrade>().map(|u| u.0);
        let on_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let mut response = match &route.action {
            RouteAction::DirectResponse(direct) => direct_response(direct, &parts),
            RouteAction::Redirect(redirect) => headers::redirect(&parts, redirect, route),
            RouteAction::Route(forward) => {
                // Before the route's header changes, as Envoy does (a configured removal takes it away).
                if let Some(timeout) = matched.expected_timeout().filter(|_| !from_cache_filter) {
                    parts
                        .headers
                        .insert(envoy_headers::EXPECTED_TIMEOUT, timeout.clone());
                }
                // The cluster first: a weighted cluster's own header changes are the most specific level.
                let (cluster, cluster_headers) = choose_cluster(forward, &parts);
                let cluster_headers = cluster_headers.filter(|_| !from_cache_filter);
                // Before the route's header changes and rewrites, as Envoy picks the host before it applies them.
                let hash = (!forward.hash_policy.is_empty())
                    .then(|| {
                        super::hash_policy::request_hash(
                            &forward.hash_policy,
                            &parts,
                            self.connection.peer,
                        )
                    })
                    .flatten();
                for level in cluster_headers
                    .iter()
                    .copied()
                    .chain(levels.iter().copied())
                {
                    headers::mutate_request(&mut parts.headers, level);
                }
                if let Some(kind) = &upgrade {
                    headers::restore_upgrade(&mut parts.headers, kind);
                }
                let Some(service) = matched.service() else {
                    return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
                };
                let chosen = Chosen {
                    vhost,
                    route,
                    forward,
                    cluster,
                    service,
                    mirror_service: matched.mirror_service(),
                    hash,
                };
                let mut response = self.forward(parts, body, chosen, on_upgrade).await;
                if let Some(level) = cluster_headers {
                    headers::mutate_response(response.headers_mut(), level);
                }
                if vhost.include_attempt_count_in_response {
                    let attempts = response.extensions().get::<Attempts>().map_or(1, |a| a.0);
                    if let Ok(value) = HeaderValue::from_str(&attempts.to_string()) {
                        response
                            .headers_mut()
                            .insert("x-envoy-attempt-count", value);
                    }
                }
                response
            }
        };
        for level in levels.iter().copied() {
            headers::mutate_response(response.headers_mut(), level);
        }
        // As Envoy's local replies: a body's content type is set after the header changes, unless they set one,
        // so a configured removal cannot take it away.
        if let RouteAction::DirectResponse(direct) = &route.action
            && direct.body.as_ref().is_some_and(|b| !b.is_empty())
            && !response.headers().contains_key(http::header::CONTENT_TYPE)
        {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
        }
        response
    }

    async fn forward(
        &self,
        mut parts: Parts,
        body: UpstreamBody,
        chosen: Chosen<'_>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        let Chosen {
            vhost,
            route,
            forward,
            cluster,
            service,
            mirror_service,
            hash,
        } = chosen;
        let connection = &self.connection;
        let notes = parts.extensions.get::<crate::access_log::Notes>().cloned();
        if let (Some(notes), Some(name)) = (&notes, &cluster) {
            // Usually the connection manager noted it already (the route's one cluster): no new copy then.
            notes.with(|r| {
                if r.upstream_cluster.as_ref() != Some(name) {
                    r.upstream_cluster = Some(name.clone());
                }
            });
        }
        let Some(cluster) = cluster.and_then(|name| connection.inputs.clusters.get(&name)) else {
            return reply(StatusCode::SERVICE_UNAVAILABLE, Flag::NoClusterFound, "");
        };
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // A new path only when a rewrite changes it; otherwise the request's own is sent (its bytes shared).
        let rewrite = headers::forwarded_path(path_and_query, route, forward)
            .filter(|path| path != path_and_query);
        if let HostRewrite::Literal(host) = &forward.host_rewrite
            && let Ok(value) = HeaderValue::from_str(host)
        {
            parts.headers.insert(http::header::HOST, value);
        } else if !parts.headers.contains_key(http::header::HOST)
            && let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(http::header::HOST, value);
        }
        let rewritten = rewrite.is_some();
        // Envoy's router tells the upstream the path before a rewrite, unless it suppresses its headers.
        if rewritten
            && !connection.hcm.http_filters.iter().any(|f| {
                matches!(f, outrigger_config::model::http::HttpFilter::Router(r) if r.suppress_envoy_headers)
            })
            && let Ok(original) = HeaderValue::from_str(path_and_query)
        {
            parts.headers.insert(X_ENVOY_ORIGINAL_PATH, original);
        }
        // The path sent upstream: the rewritten one, else the request's own (its bytes shared, not copied).
        let uri = match &rewrite {
            Some(path) => path.parse::<http::Uri>().ok(),
            None => Some(http::Uri::from(
                parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
            )),
        };
        if let Some(notes) = &notes
            && rewritten
        {
            // The access log reads the request as the router left it, as Envoy's does: the new `:path`, and the
            // old one in `x-envoy-original-path`.
            let original = HeaderValue::from_str(path_and_query).ok();
            let rewritten = uri.as_ref().and_then(|u| u.path_and_query().cloned());
            notes.with(|r| {
                if let Some(head) = r.request.as_mut() {
                    head.set_path(rewritten);
                    if let Some(original) = original {
                        if head.header_bytes > 0 {
                            head.header_bytes +=
                                (X_ENVOY_ORIGINAL_PATH.as_str().len() + original.len() + 4) as u64;
                        }
                        head.headers.insert(X_ENVOY_ORIGINAL_PATH, original);
                    }
                }
            });
        }
        let Some(uri) = uri else {
            return reply(StatusCode::BAD_REQUEST, Flag::NoRoute, "bad path");
        };
        if vhost.include_request_attempt_count {
            parts
                .headers
                .insert("x-envoy-attempt-count", HeaderValue::from_static("1"));
        }
        let limit = BufferLimit::effective(route.buffer_limit, connection.buffer_limit);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        // Upgrades are not mirrored (Envoy shadows requests, not tunnels).
        let body = if forward.mirrors.is_empty() || on_upgrade.is_some() {
            body
        } else {
            let original = mirror::Original {
                method: &parts.method,
                uri: &uri,
                version: parts.version,
                headers: &parts.headers,
            };
            mirror::start(
                &forward.mirrors,
                connection,
                mirror_service,
                original,
                body,
                limit,
            )
        };
        let body = if route_stack::retries(forward) {
            RequestBody::replayable(body, limit)
        } else {
            RequestBody::Once(Some(body))
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method;
        *request.uri_mut() = uri;
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers;
        request.extensions_mut().insert(Target {
            cluster: cluster.clone(),
            destination: connection.destination,
            own_addresses: connection.own_addresses.clone(),
            downstream_version: parts.version,
            auto_host: matches!(forward.host_rewrite, HostRewrite::Auto),
            attempt_count_header: vhost.include_request_attempt_count,
            notes,
            hash,
        });
        let Ok(response) = service.oneshot(request).await;
        finish(response, on_upgrade)
    }
}

/// The matched route of a `route` action, with its upstream stack.
struct Chosen<'a> {
    vhost: &'a VirtualHost,
    route: &'a Route,
    forward: &'a Forward,
    /// The cluster's name (none when `cluster_header` names nothing).
    cluster: Option<std::sync::Arc<str>>,
    service: route_stack::RouteService,
    /// The route's mirror stack, when it has `request_mirror_policies`.
    mirror_service: Option<route_stack::RouteService>,
    /// `hash_policy` applied to the request as it arrived.
    hash: Option<u64>,
}

fn direct_response(direct: &DirectResponse, parts: &Parts) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(direct.status).unwrap_or(StatusCode::OK);
    let body = direct
        .body
        .clone()
        .map(local_reply::text)
        .unwrap_or_else(local_reply::empty);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    // Like Envoy: a direct 201 or 3xx points `Location` at the request itself.
    if status == StatusCode::CREATED || status.is_redirection() {
        let host = headers::authority(parts).unwrap_or_default();
        let location = format!(
            "{}://{}{}",
            parts.uri.scheme_str().unwrap_or("http"),
            host,
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        if let Ok(location) = HeaderValue::from_str(&location) {
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
        }
    }
    response
}

/// The cluster for this request, with the weighted cluster's own header changes when it was drawn from
/// `weighted_clusters`.
fn choose_cluster<'a>(
    forward: &'a Forward,
    parts: &Parts,
) -> (Option<std::sync::Arc<str>>, Option<&'a HeaderMutations>) {
    match &forward.target {
        ClusterTarget::Cluster(name) => (Some(name.clone()), None),
        ClusterTarget::ClusterHeader(header) => (
            parts
                .headers
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(std::sync::Arc::from),
            None,
        ),
        ClusterTarget::WeightedClusters(list) => {
            let total: u64 = list.iter().map(|c| u64::from(c.weight)).sum();
            let mut point = fastrand::u64(..total.max(1));
            let drawn = list.iter().find(|c| {
                let hit = point < u64::from(c.weight);
                point = point.saturating_sub(u64::from(c.weight));
                hit
            });
            (
                drawn.map(|c| c.name.clone()),
                drawn.map(|c| &c.headers).filter(|h| !h.is_empty()),
            )
        }
    }
}

/// The upstream's response on its way down: the upgrade joined on a 101, hop-by-hop headers removed.
fn finish(
    mut response: Response<ResponseBody>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    if let (StatusCode::SWITCHING_PROTOCOLS, Some(downstream)) =
        (response.status(), downstream_upgrade)
    {
        tunnel(downstream, hyper::upgrade::on(&mut response));
        // `Connection: upgrade` and `Upgrade` are the point of a 101: keep them.
        return response;
    }
    headers::remove_hop_by_hop(response.headers_mut());
    response
}

/// Joins the two upgraded connections once both sides have switched, and copies until either closes.
fn tunnel(downstream: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(downstream), Ok(upstream)) = (downstream.await, upstream.await) else {
            tracing::debug!("an upgrade did not complete on both sides");
            return;
        };
        let mut downstream = hyper_util::rt::TokioIo::new(downstream);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
    });
}
