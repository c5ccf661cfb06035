//! The connection manager's HTTP filters as one tower stack, built per connection from the shared per-config
//! state in `ConnectionManager`: the filters in their configured order, the router innermost. The compressors
//! sit outermost (they only read `Accept-Encoding` on the way in), because Envoy passes every filter's local
//! reply through every encoder; `Position` tells them where a local reply was made.

use super::Connection;
use super::authorization::Authorization;
use super::buffer::BufferFilter;
use super::cache::CacheFilter;
use super::compressor::CompressorFilter;
use super::connection_manager::ConnectionManager;
use super::cors::CorsFilter;
use super::csrf::CsrfFilter;
use super::decompressor::{DecompressorFilter, LocalReplies};
use super::fault::FaultFilter;
use super::filter_service::{BoxFuture, Next};
use super::grpc_http1_bridge::BridgeFilter;
use super::health_check::HealthCheckFilter;
use super::local_rate_limit::LocalRateLimitFilter;
use super::local_reply::{LocalReply, LocalReplyAt, ResponseBody};
use super::router::Router;
use crate::upstream::UpstreamBody;
use http::{Request, Response};
use outrigger_config::model::http::HttpFilter;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::BoxCloneService;

type Boxed = BoxCloneService<Request<UpstreamBody>, Response<ResponseBody>, Infallible>;

/// The boxed chain behind a concrete `Service` impl: with the boxed service itself in the connection's type,
/// rustc cannot prove the connection future general over the lifetime of the body's `dyn Error`.
#[derive(Clone)]
pub struct Filters(Boxed);

impl Filters {
    fn new<S>(service: S) -> Self
    where
        S: tower_service::Service<
                Request<UpstreamBody>,
                Response = Response<ResponseBody>,
                Error = Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        Filters(Boxed::new(service))
    }
}

impl tower_service::Service<Request<UpstreamBody>> for Filters {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> BoxFuture {
        self.0.call(request)
    }
}

pub fn build(
    router: Router,
    manager: &Arc<ConnectionManager>,
    connection: &Arc<Connection>,
) -> Filters {
    let mut service = Filters::new(router);
    let mut rate_limit_seen = false;
    let mut fault_seen = false;
    // The local rate limit and fault layers act on the chain's first filter of their kind (the loader refuses
    // a second fault filter).
    let first_rate_limit = manager
        .config
        .http_filters
        .iter()
        .position(|f| matches!(f, HttpFilter::LocalRateLimit(_)));
    // The authorization filters (RBAC, ext_authz) run as one layer, in their order, at the first one's place
    // (the loader keeps fault and local_ratelimit before them).
    let first_authorization = manager
        .config
        .http_filters
        .iter()
        .position(|f| matches!(f, HttpFilter::Rbac(_) | HttpFilter::ExtAuthz(_)));
    for (index, filter) in manager.config.http_filters.iter().enumerate().rev() {
        service = match filter {
            HttpFilter::Router(_) | HttpFilter::Compressor(_) => continue,
            HttpFilter::Rbac(_) | HttpFilter::ExtAuthz(_) => {
                if Some(index) != first_authorization {
                    continue;
                }
                let layer = Authorization::new(service, manager.clone(), connection.clone());
                Filters::new(Position::new(layer, index))
            }
            HttpFilter::LocalRateLimit(_) => {
                if rate_limit_seen || Some(index) != first_rate_limit {
                    continue;
                }
                rate_limit_seen = true;
                let layer = LocalRateLimitFilter::new(service, manager.clone(), connection.clone());
                Filters::new(Position::new(layer, index))
            }
            HttpFilter::Fault(_) => {
                if fault_seen {
                    continue;
                }
                fault_seen = true;
                Filters::new(Position::new(
                    FaultFilter::new(service, manager.clone()),
                    index,
                ))
            }
            HttpFilter::HealthCheck(_) => {
                let Some(checker) = manager.health_check(index) else {
                    continue;
                };
                let layer = HealthCheckFilter::new(service, checker, connection.inputs.clone());
                Filters::new(Position::new(layer, index))
            }
            HttpFilter::Cors(c) => {
                let Some(stats) = manager.cors.clone() else {
                    continue;
                };
                let layer = CorsFilter::new(service, c.filter_name.as_str().into(), stats);
                Filters::new(Position::new(layer, index))
            }
            HttpFilter::Csrf(c) => {
                let Some(stats) = manager.csrf.clone() else {
                    continue;
                };
                Filters::new(Position::new(CsrfFilter::new(service, c, stats), index))
            }
            HttpFilter::Decompressor(_) => {
                let Some(decompression) = manager.decompressors.iter().find(|d| d.index == index)
                else {
                    continue;
                };
                let layer = DecompressorFilter::new(service, decompression.clone());
                Filters::new(Position::new(layer, index))
            }
            HttpFilter::GrpcHttp1Bridge(config) => Filters::new(Position::new(
                BridgeFilter::new(service, config.clone(), connection.buffer_limit),
                index,
            )),
            HttpFilter::Cache(c) => {
                Filters::new(Position::new(CacheFilter::new(service, c), index))
            }
            HttpFilter::Buffer(b) => Filters::new(Position::new(
                BufferFilter::new(service, b.max_request_bytes),
                index,
            )),
        };
    }
    // Local replies of filters before a decompressor still pass its response side (as in Envoy).
    if !manager.decompressors.is_empty() {
        service = Filters::new(LocalReplies::new(service, manager.decompressors.clone()));
    }
    for compression in manager.compressors.iter().rev() {
        service = Filters::new(CompressorFilter::new(service, compression.clone()));
    }
    service
}

/// Notes on a filter's local reply the filter's place in the chain.
#[derive(Clone)]
pub struct Position<S> {
    inner: S,
    index: usize,
}

impl<S> Position<S> {
    pub fn new(inner: S, index: usize) -> Self {
        Self { inner, index }
    }
}

impl<S: Next> tower_service::Service<Request<UpstreamBody>> for Position<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = futures_util::future::Map<
        S::Future,
        Box<
            dyn FnOnce(
                    Result<Response<ResponseBody>, Infallible>,
                ) -> Result<Response<ResponseBody>, Infallible>
                + Send,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let index = self.index;
        self.inner.call(request).map(Box::new(move |result| {
            let Ok(mut response) = result;
            if response.extensions_mut().remove::<LocalReply>().is_some() {
                response.extensions_mut().insert(LocalReplyAt(index));
            }
            Ok(response)
        }))
    }
}
