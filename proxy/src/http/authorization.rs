//! The authorization filters (`rbac.rs`, `ext_authz.rs`) in their configured order, between the local rate
//! limit and the router. The first that refuses answers the client; the later ones neither run nor count.

use super::connection_manager::{ConnectionManager, Matched};
use super::headers::TrustedClient;
use super::local_reply::ResponseBody;
use crate::rbac::Subject;
use crate::upstream::UpstreamBody;
use http::request::Parts;
use http::{Request, Response};
use outrigger_config::model::route::PerFilterConfig;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl<S> tower_service::Service<Request<UpstreamBody>> for Authorization<S>
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
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
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
            authorize(manager, connection, parts).then(move |outcome| match outcome {
                Ok(parts) => Either::Left(inner.call(Request::from_parts(parts, body))),
                Err(reply) => Either::Right(std::future::ready(Ok(*reply))),
            }),
        )
    }
}

/// Runs each filter in order; the request's head comes back (with what ext_authz added) or the reply.
async fn authorize(
    manager: Arc<ConnectionManager>,
    connection: Arc<super::Connection>,
    mut parts: Parts,
) -> Result<Parts, super::ext_authz::Reply> {
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
                let disabled = parts
                    .extensions
                    .get::<Matched>()
                    .and_then(Matched::route)
                    .and_then(|(_, _, r)| r.per_filter(checker.name()))
                    .is_some_and(|c| matches!(c, PerFilterConfig::ExtAuthz(p) if p.disabled));
                if !disabled {
                    checker.check(&mut parts, &connection.inputs).await?;
                }
            }
        }
    }
    Ok(parts)
}
