//! The gRPC authorization service: `envoy.service.auth.v3.Authorization/Check` with the attributes Envoy 1.40
//! fills (checked with real Envoy, `tests/envoy_auth_filters.rs`), and the answer as a `Verdict`:
//! gRPC status OK allows (with `ok_response`'s header and query changes), an `error_response` is an error
//! (with its own reply),
//! any other status denies (403 unless `denied_response.status` says otherwise, with its headers and body);
//! a failed call is an error.

use super::channel::ClusterChannel;
use super::mutation::{HeaderOp, RequestChanges};
use super::{Context, Verdict};
use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, SocketAddress, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse,
};
use envoy_types::pb::google::protobuf::Timestamp;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use outrigger_config::model::ext_authz::ExtAuthz;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Envoy's header on the check when the body it carries was cut at `max_request_bytes`.
const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

pub(super) async fn ask(config: &ExtAuthz, parts: &Parts, context: &Context<'_>) -> Verdict {
    let request = check_request(config, parts, context);
    let channel = ClusterChannel {
        inputs: context.connection.inputs.clone(),
        cluster: config.cluster.clone(),
        timeout: config.timeout,
        streaming: false,
    };
    let mut client = AuthorizationClient::new(channel);
    match client.check(request).await {
        Ok(answer) => verdict(answer.into_inner()),
        Err(status) => Verdict::Error(format!(
            "the call failed: {:?} {}",
            status.code(),
            status.message()
        )),
    }
}

fn check_request(config: &ExtAuthz, parts: &Parts, context: &Context<'_>) -> CheckRequest {
    let connection = context.connection;
    let tls = connection.tls.as_ref();
    let source = Peer {
        address: Some(address_of(connection.peer)),
        principal: tls
            .and_then(|t| t.peer.as_ref())
            .map(|p| p.uris.first().cloned().unwrap_or_else(|| p.subject.clone()))
            .unwrap_or_default(),
        ..Default::default()
    };
    let destination = Peer {
        address: Some(address_of(connection.destination)),
        principal: tls.and_then(|t| t.local_uri.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut headers: HashMap<String, String> = HashMap::new();
    let authority = super::super::headers::authority(parts)
        .unwrap_or_default()
        .to_string();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    headers.insert(":authority".into(), authority.clone());
    headers.insert(":method".into(), parts.method.as_str().into());
    headers.insert(":path".into(), path.clone());
    headers.insert(":scheme".into(), scheme.into());
    for (name, value) in &parts.headers {
        if name == http::header::HOST {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut http = HttpRequest {
        id: fastrand::u64(..).to_string(),
        method: parts.method.as_str().to_string(),
        path,
        host: authority,
        scheme: scheme.to_string(),
        protocol: protocol(parts.version).to_string(),
        ..Default::default()
    };
    if let Some(body) = context.body {
        http.size = i64::try_from(body.held).unwrap_or(i64::MAX);
        headers.insert(PARTIAL_BODY.into(), body.partial.to_string());
        let packed = config.with_request_body.is_some_and(|b| b.pack_as_bytes);
        if packed {
            http.raw_body = body.bytes.to_vec();
        } else {
            http.body = String::from_utf8_lossy(&body.bytes).into_owned();
        }
    }
    http.headers = headers;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(source),
            destination: Some(destination),
            request: Some(Request {
                time: Some(Timestamp {
                    seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
                }),
                http: Some(http),
            }),
            context_extensions: context
                .context_extensions
                .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            // Envoy 1.40 sends both, empty, when no namespaces are configured.
            metadata_context: Some(Metadata::default()),
            route_metadata_context: Some(Metadata::default()),
            ..Default::default()
        }),
    }
}

fn address_of(a: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(a.port()))),
            ..Default::default()
        })),
    }
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The service's answer as the filter acts on it.
fn verdict(answer: CheckResponse) -> Verdict {
    let ok = answer.status.as_ref().is_none_or(|s| s.code == 0);
    match answer.http_response {
        _ if ok => {
            let mut request = RequestChanges::default();
            let mut response_headers = Vec::new();
            if let Some(HttpResponse::OkResponse(o)) = &answer.http_response {
                request.headers = o.headers.iter().filter_map(HeaderOp::from_proto).collect();
                request.remove = o
                    .headers_to_remove
                    .iter()
                    .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                    .collect();
                request.query_set = o
                    .query_parameters_to_set
                    .iter()
                    .map(|q| (q.key.clone(), q.value.clone()))
                    .collect();
                request.query_remove = o.query_parameters_to_remove.clone();
                response_headers = o
                    .response_headers_to_add
                    .iter()
                    .filter_map(HeaderOp::from_proto)
                    .collect();
            }
            Verdict::Ok {
                request,
                response_headers,
            }
        }
        Some(HttpResponse::ErrorResponse(error)) => Verdict::ErrorReply(error),
        Some(HttpResponse::DeniedResponse(denied)) => {
            Verdict::Denied(Box::new(denial(&denied, StatusCode::FORBIDDEN)))
        }
        _ => Verdict::Denied(Box::new(denial(
            &DeniedHttpResponse::default(),
            StatusCode::FORBIDDEN,
        ))),
    }
}

/// The local reply of a denial (or an `error_response`): its status (`default` when unset), body (text/plain)
/// and headers, which replace those of the reply with the same name.
pub(super) fn denial(
    denied: &DeniedHttpResponse,
    default: StatusCode,
) -> Response<super::super::local_reply::ResponseBody> {
    use super::super::local_reply::{empty, text};
    let status = denied
        .status
        .as_ref()
        .and_then(|s| u16::try_from(s.code).ok())
        .filter(|c| *c > 0)
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(default);
    let has_body = !denied.body.is_empty();
    let mut response = Response::new(if has_body {
        text(bytes::Bytes::from(denied.body.clone()))
    } else {
        empty()
    });
    *response.status_mut() = status;
    if has_body {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    let ops: Vec<HeaderOp> = denied
        .headers
        .iter()
        .filter_map(HeaderOp::from_proto)
        .collect();
    for op in &ops {
        response.headers_mut().remove(&op.name);
    }
    for op in &ops {
        response
            .headers_mut()
            .append(op.name.clone(), op.value.clone());
    }
    response
}
