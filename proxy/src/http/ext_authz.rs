//! `envoy.filters.http.ext_authz` with an HTTP authorization service, reached through a cluster of the
//! configuration by our own upstream client. As in Envoy 1.40 (checked with real Envoy,
//! `tests/envoy_auth_filters.rs`):
//! - the check request has the request's method, `path_prefix` + the path with its query, `host`,
//!   `content-length: 0`, and of the request's headers `authorization` and those `allowed_headers` name;
//! - a 200 lets the request on, with the response headers `allowed_upstream_headers` name set on it (`ok`);
//! - a 5xx, a failed connection or a check past `timeout` is an `error`: `status_on_error` (403) with no body,
//!   or with `failure_mode_allow` the request goes on (`failure_mode_allowed` counted too);
//! - any other status is `denied`: the client gets that status and the service's body (text/plain), with the
//!   service's headers `allowed_client_headers` names (all of them when it is absent);
//! - a route's `ExtAuthzPerRoute` with `disabled: true` skips the check, counting nothing.

use super::local_reply::{Flag, ResponseBody, add_flag, empty, text};
use crate::Inputs;
use crate::metrics::Metrics;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use outrigger_config::model::core::StringMatcher;
use outrigger_config::model::ext_authz::ExtAuthz;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;

/// The reply to a request the filter refuses (boxed: it is the rare path).
pub type Reply = Box<Response<ResponseBody>>;

/// One ext_authz filter config at run time, with its statistics.
pub struct Checker {
    config: ExtAuthz,
    ok: Counter,
    denied: Counter,
    error: Counter,
    failure_mode_allowed: Counter,
}

/// Headers never passed on from the service's response (they describe its own message).
const OWN: &[&str] = &["content-length", "transfer-encoding", "connection", "host"];

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

    /// Asks the service about the request: `Ok` to go on (headers added to `parts`), `Err` with the reply.
    pub async fn check(&self, parts: &mut Parts, inputs: &Inputs) -> Result<(), Reply> {
        let answer = tokio::time::timeout(self.config.timeout, self.ask(parts, inputs)).await;
        let (status, headers, body) = match answer {
            Ok(Ok(answer)) if !answer.0.is_server_error() => answer,
            Ok(Ok((status, ..))) => return self.failed(&format!("the service answered {status}")),
            Ok(Err(e)) => return self.failed(&e),
            Err(_) => return self.failed("no answer within the timeout"),
        };
        if status == StatusCode::OK {
            self.ok.inc();
            for (name, value) in &headers {
                if named(&self.config.allowed_upstream_headers, name) {
                    parts.headers.insert(name.clone(), value.clone());
                }
            }
            return Ok(());
        }
        self.denied.inc();
        let has_body = !body.is_empty();
        let mut response = Response::new(if has_body { text(body) } else { empty() });
        *response.status_mut() = status;
        if has_body {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
        }
        for (name, value) in &headers {
            let allowed = match &self.config.allowed_client_headers {
                Some(list) => named(list, name),
                None => true,
            };
            if allowed && !OWN.contains(&name.as_str()) {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        add_flag(&mut response, Flag::UnauthorizedExternalService);
        Err(Box::new(response))
    }

    /// A failed check: the request goes on under `failure_mode_allow`, else `status_on_error`.
    fn failed(&self, why: &str) -> Result<(), Reply> {
        self.error.inc();
        tracing::debug!(cluster = %self.config.cluster, why, "ext_authz check failed");
        if self.config.failure_mode_allow {
            self.failure_mode_allowed.inc();
            return Ok(());
        }
        let mut response = Response::new(empty());
        *response.status_mut() =
            StatusCode::from_u16(self.config.status_on_error).unwrap_or(StatusCode::FORBIDDEN);
        add_flag(&mut response, Flag::UnauthorizedExternalService);
        Err(Box::new(response))
    }

    /// Sends the check request and reads the whole answer.
    async fn ask(
        &self,
        parts: &Parts,
        inputs: &Inputs,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), String> {
        let cluster = inputs
            .clusters
            .get(&self.config.cluster)
            .ok_or_else(|| format!("no cluster {:?}", self.config.cluster))?;
        let picked = cluster.pick(None, &[]).map_err(|e| e.to_string())?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{}{path}", self.config.path_prefix))
            .header(http::header::CONTENT_LENGTH, "0");
        if let Some(host) = super::headers::authority(parts) {
            request = request.header(http::header::HOST, host);
        }
        for (name, value) in &parts.headers {
            if name == http::header::AUTHORIZATION || named(&self.config.allowed_headers, name) {
                request = request.header(name, value);
            }
        }
        let body: crate::upstream::UpstreamBody = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed();
        let request = request.body(body).map_err(|e| e.to_string())?;
        let (response, _stream) = cluster
            .http
            .send(picked, request, http::Version::HTTP_11)
            .await
            .map_err(|e| e.to_string())?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((head.status, head.headers, body))
    }
}

fn named(list: &[StringMatcher], name: &HeaderName) -> bool {
    list.iter().any(|m| m.matches(name.as_str()))
}

/// The filter's shared state, as the authorization layer holds it.
pub type Shared = Arc<Checker>;
