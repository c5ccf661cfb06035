//! The test's own `envoy.service.auth.v3.Authorization` server (tonic, with the service envoy-types
//! generates): it keeps a flat view of every CheckRequest it receives and answers by the request's path.
//! - `/slow...`: OK after 1 s;
//! - `...deny-bare...`: PERMISSION_DENIED with no HTTP response;
//! - `...deny...`: PERMISSION_DENIED, 401 with `x-reason: policy` and a body;
//! - `...error-response...`: an `error_response` with a status, a header and a body;
//! - `...grpc-fail...`: the call fails (UNAVAILABLE);
//! - anything else: OK, setting `x-auth-user` (default action), appending to `x-app` (`append: true`),
//!   `x-ifabsent` (ADD_IF_ABSENT), `x-overwrite` (OVERWRITE_IF_EXISTS), removing `x-remove`, adding `x-resp`
//!   to the response; under `/query` also setting `added=1` and removing `drop` from the query.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, QueryParameter, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc::Status;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A CheckRequest as `field -> value`, with what differs between runs masked: ports, ids, times.
pub type View = BTreeMap<String, String>;

pub struct GrpcAuthService {
    pub port: u16,
    seen: Arc<Mutex<Vec<View>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcAuthService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcAuthService {
    pub async fn start() -> GrpcAuthService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<View>>> = Arc::default();
        let judge = Judge { seen: seen.clone() };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AuthorizationServer::new(judge))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await;
        });
        GrpcAuthService { port, seen, task }
    }

    pub fn take(&self) -> Vec<View> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

struct Judge {
    seen: Arc<Mutex<Vec<View>>>,
}

fn header(key: &str, value: &str) -> HeaderValue {
    HeaderValue {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[allow(deprecated)]
fn option(
    key: &str,
    value: &str,
    append: Option<bool>,
    action: HeaderAppendAction,
) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(header(key, value)),
        append: append.map(|value| BoolValue { value }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn status(code: i32) -> Option<Status> {
    Some(Status {
        code,
        ..Default::default()
    })
}

#[tonic::async_trait]
impl Authorization for Judge {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let metadata = request.metadata().clone().into_headers();
        let request = request.into_inner();
        let mut view = view(&request);
        // The call's own headers (the gRPC metadata), as the proxy sent them.
        for (name, value) in &metadata {
            // Envoy puts its node's own address here; Outrigger, which has no such address, sends none.
            if name == "x-forwarded-for" {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            view.insert(format!("call {name}"), value);
        }
        let path = view.get("path").cloned().unwrap_or_default();
        self.seen.lock().unwrap().push(view);
        use HeaderAppendAction::*;
        let answer = if path.contains("grpc-fail") {
            return Err(tonic::Status::unavailable(
                "the authorization service is failing",
            ));
        } else if path.contains("error-response") {
            CheckResponse {
                status: status(13),
                http_response: Some(HttpResponse::ErrorResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 502 }),
                    headers: vec![option("x-reason", "broken", None, AppendIfExistsOrAdd)],
                    body: "the service broke".into(),
                })),
                ..Default::default()
            }
        } else if path.contains("deny-bare") {
            CheckResponse {
                status: status(7),
                ..Default::default()
            }
        } else if path.contains("deny") {
            CheckResponse {
                status: status(7),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 401 }),
                    headers: vec![option("x-reason", "policy", None, AppendIfExistsOrAdd)],
                    body: "denied by grpc authz".into(),
                })),
                ..Default::default()
            }
        } else {
            if path.starts_with("/slow") {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let query = path.starts_with("/query");
            CheckResponse {
                status: status(0),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![
                        option("x-auth-user", "alice", None, AppendIfExistsOrAdd),
                        option("x-app", "added", Some(true), AppendIfExistsOrAdd),
                        option("x-ifabsent", "service", None, AddIfAbsent),
                        option("x-overwrite", "service", None, OverwriteIfExists),
                        option("x-missing", "service", None, OverwriteIfExists),
                    ],
                    headers_to_remove: vec!["x-remove".into()],
                    response_headers_to_add: vec![option(
                        "x-resp",
                        "r1",
                        None,
                        AppendIfExistsOrAdd,
                    )],
                    query_parameters_to_set: if query {
                        vec![QueryParameter {
                            key: "added".into(),
                            value: "1".into(),
                        }]
                    } else {
                        Vec::new()
                    },
                    query_parameters_to_remove: if query {
                        vec!["drop".into()]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                })),
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(answer))
    }
}

/// `127.0.0.1:<port>` for any port.
fn mask_port(s: &str) -> String {
    match s.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            format!("{host}:<port>")
        }
        _ => s.to_string(),
    }
}

fn view(request: &CheckRequest) -> View {
    let mut v = View::new();
    let Some(a) = &request.attributes else {
        v.insert("attributes".into(), "absent".into());
        return v;
    };
    for (side, peer) in [("source", &a.source), ("destination", &a.destination)] {
        let Some(peer) = peer else {
            continue;
        };
        if let Some(address::Address::SocketAddress(s)) =
            peer.address.as_ref().and_then(|x| x.address.as_ref())
        {
            let port = match s.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) if p > 0 => "<port>",
                _ => "none",
            };
            v.insert(format!("{side}.address"), format!("{}:{port}", s.address));
        }
        v.insert(format!("{side}.principal"), peer.principal.clone());
        v.insert(format!("{side}.service"), peer.service.clone());
        v.insert(format!("{side}.labels"), format!("{:?}", peer.labels));
        v.insert(format!("{side}.certificate"), peer.certificate.clone());
    }
    if let Some(r) = &a.request {
        v.insert("time".into(), r.time.is_some().to_string());
        if let Some(h) = &r.http {
            v.insert("id".into(), (!h.id.is_empty()).to_string());
            v.insert("method".into(), h.method.clone());
            v.insert("path".into(), h.path.clone());
            v.insert("host".into(), mask_port(&h.host));
            v.insert("scheme".into(), h.scheme.clone());
            v.insert("query".into(), h.query.clone());
            v.insert("fragment".into(), h.fragment.clone());
            v.insert("size".into(), h.size.to_string());
            v.insert("protocol".into(), h.protocol.clone());
            v.insert("body".into(), h.body.clone());
            v.insert(
                "raw_body".into(),
                String::from_utf8_lossy(&h.raw_body).into_owned(),
            );
            v.insert("header_map".into(), h.header_map.is_some().to_string());
            for (name, value) in &h.headers {
                let value = match name.as_str() {
                    "x-request-id" => "<id>".to_string(),
                    ":authority" | "host" => mask_port(value),
                    _ => value.clone(),
                };
                v.insert(format!("header {name}"), value);
            }
        }
    }
    for (k, value) in &a.context_extensions {
        v.insert(format!("context {k}"), value.clone());
    }
    v.insert(
        "metadata_context".into(),
        format!("{:?}", a.metadata_context),
    );
    v.insert(
        "route_metadata_context".into(),
        format!("{:?}", a.route_metadata_context),
    );
    v.insert("tls_session".into(), format!("{:?}", a.tls_session));
    v
}
