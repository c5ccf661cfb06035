//! `envoy.filters.http.grpc_http1_bridge`: an HTTP/1.x client posting `application/grpc` gets a response it can
//! read without trailers, as Envoy 1.40 does it (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - the response body is held until its trailers; their `grpc-status` and `grpc-message` become headers, a
//!   status other than `0` (or not a number) turns the HTTP status into 503, and the body gets a `content-length`;
//! - a response ending with its headers (gRPC's trailers-only reply) and one ending without trailers pass as
//!   they are;
//! - with `upgrade_protobuf_to_grpc`, an `application/x-protobuf` request becomes one gRPC message (the 5-byte
//!   frame header before the whole body, `content-type: application/grpc`, no `content-length`), and its bridged
//!   response loses the frame header (its `content-type` stays the backend's);
//! - with `ignore_query_parameters`, a gRPC request (upgraded or not) loses its path's query.
//!
//! A response past the listener's buffer limit (`per_connection_buffer_limit_bytes`, 1 MiB by default) is
//! replaced, as Envoy's local reply for a gRPC request: 200, `grpc-status: 2`, `grpc-message: Internal Server
//! Error`, no body. A request over HTTP/2 is not bridged (only upgraded).

use super::filter_service::{BoxFuture, Next};
use super::local_reply::ResponseBody;
use crate::upstream::{BoxError, UpstreamBody};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use outrigger_config::model::http::GrpcHttp1Bridge;
use std::convert::Infallible;
use std::task::{Context, Poll};

const GRPC: &str = "application/grpc";
const PROTOBUF: &str = "application/x-protobuf";

/// `application/grpc` or `application/grpc+<codec>` (not `application/grpc-web`), as Envoy reads it.
fn is_grpc(request: &Request<UpstreamBody>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t == GRPC
                || t.strip_prefix(GRPC)
                    .is_some_and(|rest| rest.starts_with('+'))
        })
}

fn is_protobuf(request: &Request<UpstreamBody>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROTOBUF.as_bytes())
}

/// The filter on one connection.
#[derive(Clone)]
pub struct BridgeFilter<S> {
    inner: S,
    config: GrpcHttp1Bridge,
    /// The listener's `per_connection_buffer_limit_bytes`: how much of a response the bridge may hold.
    limit: u32,
}

impl<S> BridgeFilter<S> {
    pub fn new(inner: S, config: GrpcHttp1Bridge, limit: u32) -> Self {
        Self {
            inner,
            config,
            limit,
        }
    }
}

impl<S: Next + Send + 'static> tower_service::Service<Request<UpstreamBody>> for BridgeFilter<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let framing = self.config.upgrade_protobuf_to_grpc && is_protobuf(&request);
        if framing {
            upgrade(&mut request);
        }
        let grpc = is_grpc(&request);
        if grpc && self.config.ignore_query_parameters {
            remove_query(&mut request);
        }
        let bridging = request.version() < http::Version::HTTP_2 && grpc;
        let limit = self.limit as usize;
        Box::pin(self.inner.call(request).then(move |result| async move {
            let Ok(response) = result;
            if !bridging || response.body().is_end_stream() {
                return Ok(response);
            }
            Ok(bridge(response, framing, limit).await)
        }))
    }
}

/// The request's path without its query.
fn remove_query(request: &mut Request<UpstreamBody>) {
    if let Some(path) = request.uri().path_and_query()
        && path.query().is_some()
    {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = path.path().parse().ok();
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// The request as one framed gRPC message.
fn upgrade(request: &mut Request<UpstreamBody>) {
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC));
    headers.remove(CONTENT_LENGTH);
    let body = std::mem::replace(request.body_mut(), empty());
    let framed = futures_util::stream::once(async move {
        let message = body.collect().await?.to_bytes();
        Ok::<_, BoxError>(http_body::Frame::data(frame(&message)))
    });
    *request.body_mut() = http_body_util::StreamBody::new(framed).boxed();
}

fn empty() -> UpstreamBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// gRPC's length-prefixed message: no compression flag, the length big-endian, the message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 5);
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// The whole response with its trailers as headers.
async fn bridge(
    response: Response<ResponseBody>,
    framing: bool,
    limit: usize,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    let (mut bytes, trailers) = match hold(body, limit).await {
        Held::Whole(bytes, trailers) => (bytes, trailers),
        Held::TooLarge => return too_large(),
        // The upstream went away mid-body: the client sees the response cut short, as with Envoy's reset.
        Held::Failed(e) => {
            let failed =
                futures_util::stream::once(async move { Err::<http_body::Frame<Bytes>, _>(e) });
            return Response::from_parts(parts, http_body_util::StreamBody::new(failed).boxed());
        }
    };
    let Some(trailers) = trailers else {
        // No trailers: Envoy's buffered body goes on as it is.
        return Response::from_parts(parts, full(bytes));
    };
    if let Some(status) = trailers.get("grpc-status") {
        let ok = std::str::from_utf8(status.as_bytes())
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            == Some(0);
        if !ok {
            parts.status = StatusCode::SERVICE_UNAVAILABLE;
        }
        parts.headers.insert("grpc-status", status.clone());
    }
    if let Some(message) = trailers.get("grpc-message") {
        parts.headers.insert("grpc-message", message.clone());
    }
    // Envoy 1.40 leaves the response's `content-type` (`application/grpc`) as the backend sent it.
    if framing {
        bytes = bytes.slice(bytes.len().min(5)..);
    }
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, full(bytes))
}

enum Held {
    Whole(Bytes, Option<http::HeaderMap>),
    TooLarge,
    Failed(BoxError),
}

/// The whole body and its trailers, unless it grows past `limit`.
async fn hold(mut body: ResponseBody, limit: usize) -> Held {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Held::Failed(e),
        };
        match frame.into_data() {
            Ok(data) => {
                if bytes.len() + data.len() > limit {
                    return Held::TooLarge;
                }
                bytes.put(data);
            }
            Err(frame) => return Held::Whole(bytes.freeze(), frame.into_trailers().ok()),
        }
    }
    Held::Whole(bytes.freeze(), None)
}

/// Envoy's local reply when a held response outgrows the buffer: its 500, as gRPC answers it (status 2,
/// `UNKNOWN`), in the headers alone.
fn too_large() -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC));
    headers.insert("grpc-status", HeaderValue::from_static("2"));
    headers.insert(
        "grpc-message",
        HeaderValue::from_static("Internal Server Error"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}
