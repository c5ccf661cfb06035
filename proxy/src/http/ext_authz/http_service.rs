//! The HTTP authorization service, reached through a cluster of the configuration by our own upstream client.
//! As in Envoy 1.40: the check request has the request's method, `path_prefix` + the path with its query,
//! `host`, `content-length: 0`, and of the request's headers `authorization` and those `allowed_headers` name;
//! a 200 allows, with the response headers `allowed_upstream_headers` names set on the request; a 5xx is an
//! error; any other status denies with the service's body (text/plain) and the headers `allowed_client_headers`
//! names (all of them when it is absent).

use super::super::local_reply::{empty, text};
use super::Verdict;
use super::mutation::{Action, HeaderOp, RequestChanges};
use crate::Inputs;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use outrigger_config::model::core::StringMatcher;
use outrigger_config::model::ext_authz::ExtAuthz;

/// Headers never passed on from the service's response (they describe its own message).
const OWN: &[&str] = &["content-length", "transfer-encoding", "connection", "host"];

pub(super) async fn ask(config: &ExtAuthz, parts: &Parts, inputs: &Inputs) -> Verdict {
    let (status, headers, body) = match send(config, parts, inputs).await {
        Ok(answer) if !answer.0.is_server_error() => answer,
        Ok((status, ..)) => return Verdict::Error(format!("the service answered {status}")),
        Err(e) => return Verdict::Error(e),
    };
    if status == StatusCode::OK {
        let mut request = RequestChanges::default();
        for (name, value) in &headers {
            if named(&config.allowed_upstream_headers, name) {
                request.headers.push(HeaderOp {
                    name: name.clone(),
                    value: value.clone(),
                    action: Action::OverwriteOrAdd,
                });
            }
        }
        return Verdict::Ok {
            request,
            response_headers: Vec::new(),
        };
    }
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
        let allowed = match &config.allowed_client_headers {
            Some(list) => named(list, name),
            None => true,
        };
        if allowed && !OWN.contains(&name.as_str()) {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Verdict::Denied(Box::new(response))
}

/// Sends the check request and reads the whole answer.
async fn send(
    config: &ExtAuthz,
    parts: &Parts,
    inputs: &Inputs,
) -> Result<(StatusCode, HeaderMap, bytes::Bytes), String> {
    let cluster = inputs
        .clusters
        .get(&config.cluster)
        .ok_or_else(|| format!("no cluster {:?}", config.cluster))?;
    let picked = cluster.pick(None, &[]).map_err(|e| e.to_string())?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", config.path_prefix))
        .header(http::header::CONTENT_LENGTH, "0");
    if let Some(host) = super::super::headers::authority(parts) {
        request = request.header(http::header::HOST, host);
    }
    for (name, value) in &parts.headers {
        if name == http::header::AUTHORIZATION || named(&config.allowed_headers, name) {
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

fn named(list: &[StringMatcher], name: &HeaderName) -> bool {
    list.iter().any(|m| m.matches(name.as_str()))
}
