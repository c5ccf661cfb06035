//! `envoy.filters.http.ext_authz`: one filter, two clients. `http_service.rs` asks an HTTP authorization
//! service, `grpc.rs` calls `envoy.service.auth.v3.Authorization/Check` (over `channel.rs`, the cluster's own
//! h2 pool). Both end in a `Verdict`; what follows is the same, as in Envoy 1.40 (checked with real Envoy,
//! `tests/envoy_auth_filters.rs`):
//! - allowed (`ok`): the request goes on with the service's header and query changes; the gRPC service's
//!   `response_headers_to_add` go on the response;
//! - denied (`denied`): the client gets the service's status, headers and body;
//! - a failed check (a 5xx, a failed connection or call, no answer within the timeout, a gRPC
//!   `error_response`) is an `error`: `status_on_error` (403) with no body (an `error_response`'s own status,
//!   headers and body when it has them), or with `failure_mode_allow` the request goes on
//!   (`failure_mode_allowed` counted too; `failure_mode_allow_header_add` marks it upstream);
//! - a route's `ExtAuthzPerRoute` with `disabled: true` skips the check, counting nothing.

mod body;
pub(crate) mod channel;
mod grpc;
mod http_service;
mod mutation;

pub use body::{Buffered, buffer};
pub use mutation::HeaderOp;

use super::local_reply::{Flag, ResponseBody, add_flag, empty};
use crate::metrics::Metrics;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use outrigger_config::model::ext_authz::ExtAuthz;
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The reply to a request the filter refuses (boxed: it is the rare path).
pub type Reply = Box<Response<ResponseBody>>;

/// What the filter knows of a request besides its head.
pub struct Context<'a> {
    pub connection: &'a super::Connection,
    /// The route's `check_settings.context_extensions`.
    pub context_extensions: Option<&'a BTreeMap<String, String>>,
    /// The buffered body (`with_request_body`).
    pub body: Option<&'a Buffered>,
}

/// What an allowed check asks of the response: headers added to it on its way to the client.
#[derive(Default)]
pub struct Allowed {
    pub response_headers: Vec<HeaderOp>,
}

/// A service's answer, whichever the client.
pub(crate) enum Verdict {
    Ok {
        request: mutation::RequestChanges,
        response_headers: Vec<HeaderOp>,
    },
    Denied(Reply),
    Error(String),
    /// The gRPC service's `error_response`: an error, whose reply (without `failure_mode_allow`) has the
    /// response's status (else `status_on_error`), headers and body, as in Envoy 1.40.
    ErrorReply(envoy_types::pb::envoy::service::auth::v3::DeniedHttpResponse),
}

/// One ext_authz filter config at run time, with its statistics.
pub struct Checker {
    config: ExtAuthz,
    ok: Counter,
    denied: Counter,
    error: Counter,
    failure_mode_allowed: Counter,
}

impl Checker {
    pub fn new(config: &ExtAuthz, metrics: &Metrics, stat_prefix: &str) -> Self {
        let labels = crate::metrics::connection_manager(stat_prefix);
        let f = &metrics.ext_authz;
        Self {
            config: config.clone(),
            ok: f.ok.get_or_create(&labels).clone(),
            denied: f.denied.get_or_create(&labels).clone(),
            error: f.error.get_or_create(&labels).clone(),
            failure_mode_allowed: f.failure_mode_allowed.get_or_create(&labels).clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ExtAuthz {
        &self.config
    }

    /// Asks the service about the request: `Ok` to go on (its changes made to `parts`), `Err` with the reply.
    pub async fn check(&self, parts: &mut Parts, context: &Context<'_>) -> Result<Allowed, Reply> {
        let asked = async {
            if self.config.grpc {
                grpc::ask(&self.config, parts, context).await
            } else {
                http_service::ask(&self.config, parts, &context.connection.inputs).await
            }
        };
        let verdict = if self.config.timeout.is_zero() {
            // Envoy's async client sets no timer for a zero timeout.
            asked.await
        } else {
            tokio::time::timeout(self.config.timeout, asked)
                .await
                .unwrap_or_else(|_| Verdict::Error("no answer within the timeout".into()))
        };
        // Envoy counts on the route's cluster too: looked up before the check's changes to the headers.
        let routed = routed_cluster(parts, &context.connection.inputs);
        let count = |i: usize| {
            if let Some(stats) = routed.as_ref().and_then(|c| c.stats.ext_authz.get(i)) {
                stats.inc();
            }
        };
        match verdict {
            Verdict::Ok {
                request,
                response_headers,
            } => {
                self.ok.inc();
                count(0);
                request.apply(parts);
                Ok(Allowed { response_headers })
            }
            Verdict::Denied(reply) => {
                self.denied.inc();
                count(1);
                let mut reply = reply;
                add_flag(&mut reply, Flag::UnauthorizedExternalService);
                Err(reply)
            }
            Verdict::Error(why) => {
                count(2);
                self.failed(parts, &why, None, || count(3))
            }
            Verdict::ErrorReply(reply) => {
                count(2);
                let why = "the service answered with an error_response";
                self.failed(parts, why, Some(reply), || count(3))
            }
        }
    }

    /// A failed check: the request goes on under `failure_mode_allow`, else `status_on_error`.
    fn failed(
        &self,
        parts: &mut Parts,
        why: &str,
        reply: Option<envoy_types::pb::envoy::service::auth::v3::DeniedHttpResponse>,
        allowed: impl FnOnce(),
    ) -> Result<Allowed, Reply> {
        self.error.inc();
        tracing::debug!(cluster = %self.config.cluster, why, "ext_authz check failed");
        if self.config.failure_mode_allow {
            self.failure_mode_allowed.inc();
            allowed();
            if self.config.failure_mode_allow_header_add {
                parts.headers.append(
                    "x-envoy-auth-failure-mode-allowed",
                    HeaderValue::from_static("true"),
                );
            }
            return Ok(Allowed::default());
        }
        let status_on_error =
            StatusCode::from_u16(self.config.status_on_error).unwrap_or(StatusCode::FORBIDDEN);
        let mut response = match reply {
            Some(reply) => grpc::denial(&reply, status_on_error),
            None => {
                let mut response = Response::new(empty());
                *response.status_mut() = status_on_error;
                response
            }
        };
        add_flag(&mut response, Flag::UnauthorizedExternalService);
        Err(Box::new(response))
    }
}

/// The cluster the request is routed to, when the route names one or has a request header name it; a
/// weighted route picks its cluster later, so its requests are not counted there (a known difference).
fn routed_cluster(
    parts: &Parts,
    inputs: &crate::Inputs,
) -> Option<Arc<crate::upstream::ClusterState>> {
    use outrigger_config::model::route::{ClusterTarget, RouteAction};
    let matched = parts
        .extensions
        .get::<super::connection_manager::Matched>()?;
    let (_, _, route) = matched.route()?;
    let RouteAction::Route(forward) = &route.action else {
        return None;
    };
    let name = match &forward.target {
        ClusterTarget::Cluster(name) => &**name,
        ClusterTarget::ClusterHeader(header) => parts.headers.get(header)?.to_str().ok()?,
        ClusterTarget::WeightedClusters(_) => return None,
    };
    inputs.clusters.get(name)
}

/// The filter's shared state, as the authorization layer holds it.
pub type Shared = Arc<Checker>;
