//! The HTTP connection manager: hyper serves HTTP/1.1 and h2 on the connection, and every request goes
//! through the route table to the router.

mod client_cert;
mod forward;
mod headers;
pub mod local_reply;
pub mod route;

use crate::metrics::{self, Labels};
use crate::{Inputs, drain::ConnectionGuard};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use local_reply::{Flag, ResponseBody, reply};
use outrigger_config::model::http::{CodecType, HttpConnectionManager, RouteSource};
use outrigger_config::model::route::RouteAction;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a request handler knows about its connection.
pub struct Connection {
    pub hcm: Arc<HttpConnectionManager>,
    pub inputs: Arc<Inputs>,
    pub peer: SocketAddr,
    /// The original destination (or the local address when there was no redirect).
    pub destination: SocketAddr,
    pub own_addresses: Vec<SocketAddr>,
    pub labels: Labels,
    /// Set when the connection arrived over TLS.
    pub tls: Option<crate::tls::Session>,
}

pub async fn serve(stream: crate::io::Stream, connection: Connection, _guard: ConnectionGuard) {
    let connection = Arc::new(connection);
    let hcm = connection.hcm.clone();
    let drain = connection.inputs.drain.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size((hcm.max_request_headers_kb as usize * 1024).max(8192))
        .header_read_timeout(hcm.request_headers_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(hcm.http2.max_concurrent_streams)
        .initial_stream_window_size(hcm.http2.initial_stream_window_size)
        .initial_connection_window_size(hcm.http2.initial_connection_window_size);
    let builder = match hcm.codec_type {
        CodecType::Auto => builder,
        CodecType::Http1 => builder.http1_only(),
        CodecType::Http2 => builder.http2_only(),
    };
    let service = hyper::service::service_fn(move |request| {
        let connection = connection.clone();
        async move { Ok::<_, Infallible>(handle(request, &connection).await) }
    });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        () = drain.started() => {}
    }
    // Draining: HTTP/1 answers with `Connection: close`, h2 sends GOAWAY; requests in flight finish.
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(
        hcm.drain_timeout.max(std::time::Duration::from_secs(1)) * 12,
        served,
    )
    .await;
}

async fn handle(request: Request<Incoming>, connection: &Connection) -> Response<ResponseBody> {
    let metrics = &connection.inputs.metrics;
    metrics.http_rq.get_or_create(&connection.labels).inc();
    let active = metrics
        .http_rq_active
        .get_or_create(&connection.labels)
        .clone();
    active.inc();
    let mut response = route_and_forward(request, connection).await;
    active.dec();
    if connection.inputs.drain.is_draining() && response.version() != http::Version::HTTP_2 {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    if let Ok(server) = http::HeaderValue::from_str(&connection.hcm.server_name) {
        response.headers_mut().insert(http::header::SERVER, server);
    }
    let status = response.status().as_u16();
    metrics
        .http_rq_xx
        .get_or_create(&metrics::with_class(connection.labels.clone(), status))
        .inc();
    response
}

async fn route_and_forward(
    mut request: Request<Incoming>,
    connection: &Connection,
) -> Response<ResponseBody> {
    // An upgrade the connection manager allows (`upgrade_configs`) keeps its hop-by-hop headers.
    let upgrade = headers::upgrade_type(request.headers()).filter(|kind| {
        request.version() == http::Version::HTTP_11 && connection.hcm.upgrade_types.contains(kind)
    });
    let on_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    if headers::size(&parts.headers) > connection.hcm.max_request_headers_kb as usize * 1024 {
        let mut response = Response::new(local_reply::empty());
        *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        return response;
    }
    headers::prepare_request(&mut parts, connection);
    let RouteSource::Static(config) = &connection.hcm.routes else {
        return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
    };
    let host = headers::authority(&parts).unwrap_or_default();
    let Some(vhost) = route::virtual_host(config, &host) else {
        return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
    };
    let Some(matched) = route::route(vhost, &parts) else {
        return reply(StatusCode::NOT_FOUND, Flag::NoRoute, "");
    };
    let levels = [&matched.headers, &vhost.headers, &config.headers];
    let mut response = match &matched.action {
        RouteAction::DirectResponse(direct) => {
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
                if let Ok(location) = http::HeaderValue::from_str(&location) {
                    response
                        .headers_mut()
                        .insert(http::header::LOCATION, location);
                }
            }
            if direct.body.is_some() {
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain"),
                );
            }
            response
        }
        RouteAction::Redirect(redirect) => headers::redirect(&parts, redirect, matched),
        RouteAction::Route(forward) => {
            for level in levels {
                headers::mutate_request(&mut parts.headers, level);
            }
            if let Some(kind) = &upgrade {
                headers::restore_upgrade(&mut parts.headers, kind);
            }
            forward::forward(parts, body, forward, matched, connection, on_upgrade).await
        }
    };
    for level in levels {
        headers::mutate_response(response.headers_mut(), level);
    }
    response
}
