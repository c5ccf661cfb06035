//! The authorization filters (`rbac.rs`, `ext_authz.rs`) in their configured order, between the local rate
//! limit and the router. The first that refuses answers the client; the later ones neither run nor count.

use super::connection_manager::{ConnectionManager, Matched};
use super::ext_authz::{Buffered, Context, HeaderOp, buffer};
use super::filter_service::{BoxFuture, Next};
use super::headers::TrustedClient;
use super::local_reply::ResponseBody;
use crate::rbac::Subject;
use crate::upstream::UpstreamBody;
use http::request::Parts;
use http::{Request, Response};
use outrigger_config::model::route::PerFilterConfig;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;

/// One authorization filter of a connection manager.
pub enum Authorizer {
    Rbac(super::rbac::Enforcer),
    ExtAuthz(super::ext_authz::Shared),
}

/// The filters on one connection.
#[derive(Clone)]
pub struct Authorization<S> {
    inner: S,
    manager: Arc<ConnectionManager>,
    connection: Arc<super::Connection>,
}

impl<S> Authorization<S> {
    pub fn new(
        inner: S,
        manager: Arc<ConnectionManager>,
        connection: Arc<super::Connection>,
    ) -> Self {
        Self {
            inner,
            manager,
            connection,
        }
    }
}

impl<S: Next + Clone + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for Authorization<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        if self.manager.authorization.is_empty() {
            return Box::pin(self.inner.call(request));
        }
        // The inner service was made ready for this call; the clone is used after the checks.
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        let manager = self.manager.clone();
        let connection = self.connection.clone();
        use futures_util::FutureExt;
        use futures_util::future::Either;
        let (parts, body) = request.into_parts();
        Box::pin(
            authorize(manager, connection, parts, body).then(move |outcome| match outcome {
                Ok((parts, body, response_headers)) => Either::Left(
                    inner
                        .call(Request::from_parts(parts, body))
                        .map(move |answer| {
                            answer.map(|mut response| {
                                // The gRPC service's `response_headers_to_add`, on whatever answers.
                                for op in &response_headers {
                                    op.apply(response.headers_mut());
                                }
                                response
                            })
                        }),
                ),
                Err(reply) => Either::Right(std::future::ready(Ok(*reply))),
            }),
        )
    }
}

/// What the filters let through: the request's head (with what ext_authz changed), its body (read back after
/// `with_request_body`), and the headers to add to the response.
type Passed = (Parts, UpstreamBody, Vec<HeaderOp>);

/// Runs each filter in order; the request comes back, or the reply.
async fn authorize(
    manager: Arc<ConnectionManager>,
    connection: Arc<super::Connection>,
    mut parts: Parts,
    mut body: UpstreamBody,
) -> Result<Passed, super::ext_authz::Reply> {
    let mut buffered: Option<Buffered> = None;
    let mut response_headers = Vec::new();
    for filter in &manager.authorization {
        match filter {
            Authorizer::Rbac(enforcer) => {
                let c = &connection;
                let peer = c.tls.as_ref().and_then(|t| t.peer.clone());
                let subject = Subject {
                    source: c.peer,
                    destination: c.destination,
                    // `requested_server_name` is refused in the HTTP filter by the loader.
                    server_name: None,
                    peer: peer.as_deref(),
                    tls: c.tls.is_some(),
                    remote: parts
                        .extensions
                        .get::<TrustedClient>()
                        .map_or(c.peer.ip(), |t| t.0),
                    request: Some(&parts),
                };
                if !enforcer.allows(&subject, parts.extensions.get::<Matched>()) {
                    return Err(Box::new(super::rbac::denied()));
                }
            }
            Authorizer::ExtAuthz(checker) => {
                let per_route = parts
                    .extensions
                    .get::<Matched>()
                    .and_then(Matched::route)
                    .and_then(|(_, _, r)| r.per_filter(checker.name()))
                    .and_then(|c| match c {
                        PerFilterConfig::ExtAuthz(p) => Some(p.clone()),
                        _ => None,
                    });
                if per_route.as_ref().is_some_and(|p| p.disabled) {
                    continue;
                }
                // The body is read once, by the first filter that asks for it (Envoy buffers it for the
                // filter chain, not per filter); a request that ends with its headers has none to read.
                if let Some(settings) = checker.config().with_request_body
                    && buffered.is_none()
                    && !http_body::Body::is_end_stream(&body)
                {
                    match buffer(body, settings).await {
                        Some((seen, rest)) => {
                            buffered = Some(seen);
                            body = rest;
                        }
                        None => {
                            let http1 = parts.version <= http::Version::HTTP_11;
                            return Err(Box::new(super::buffer::too_large(http1)));
                        }
                    }
                }
                let context = Context {
                    connection: &connection,
                    context_extensions: per_route.as_ref().map(|p| &p.context_extensions),
                    body: buffered.as_ref(),
                };
                let allowed = checker.check(&mut parts, &context).await?;
                response_headers.extend(allowed.response_headers);
            }
        }
    }
    Ok((parts, body, response_headers))
}
