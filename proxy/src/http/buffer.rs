//! `envoy.filters.http.buffer`: the whole request body is read before the request goes on, as Envoy 1.40 does
//! (checked with real Envoy, `tests/envoy_http_filters.rs`): a body past `max_request_bytes` (declared by its
//! `content-length` or found while reading) is answered 413 `Payload Too Large` and the HTTP/1 connection closes;
//! a body within it goes on whole, with a `content-length` when it came chunked.

use super::filter_service::{BoxFuture, Next};
use super::local_reply::{self, ResponseBody, text};
use crate::upstream::UpstreamBody;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use std::convert::Infallible;
use std::task::{Context, Poll};

/// The filter on one connection.
#[derive(Clone)]
pub struct BufferFilter<S> {
    inner: S,
    max_request_bytes: u32,
}

impl<S> BufferFilter<S> {
    pub fn new(inner: S, max_request_bytes: u32) -> Self {
        Self {
            inner,
            max_request_bytes,
        }
    }
}

/// Envoy's reply to a body over the limit (also ext_authz's, `with_request_body`).
pub(super) fn too_large(http1: bool) -> Response<ResponseBody> {
    let mut response = Response::new(text("Payload Too Large"));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    // The rest of the body is never read: the connection cannot carry another request.
    if http1 {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    local_reply::from_filter(response)
}

impl<S: Next + Clone + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for BufferFilter<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        let max = self.max_request_bytes as usize;
        let http1 = request.version() <= http::Version::HTTP_11;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Box::pin(async move { Ok(too_large(http1)) });
        }
        // A request without a body goes on as it is (Envoy adds no `content-length` to it).
        if http_body::Body::is_end_stream(request.body()) {
            return Box::pin(self.inner.call(request));
        }
        // The inner service was made ready for this call; the clone is driven to readiness after the body.
        // Combinators rather than an async block: rustc cannot prove an async block holding `S::Future` `Send`
        // here (as in `fault.rs`).
        use futures_util::FutureExt;
        use futures_util::future::Either;
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let (parts, body) = request.into_parts();
        Box::pin(
            Limited::new(body, max)
                .collect()
                .then(move |collected| match collected {
                    // Over the limit, or the client went away: either way the request does not go on.
                    Err(_) => Either::Left(std::future::ready(Ok(too_large(http1)))),
                    Ok(collected) => {
                        let request = whole(parts, collected);
                        Either::Right(tower::ServiceExt::oneshot(inner, request))
                    }
                }),
        )
    }
}

/// The request with its whole body, a `content-length` in place of a chunked framing (as Envoy sends it on).
fn whole(
    mut parts: http::request::Parts,
    collected: http_body_util::Collected<Bytes>,
) -> Request<UpstreamBody> {
    let trailers = collected.trailers().cloned();
    let bytes: Bytes = collected.to_bytes();
    if !parts.headers.contains_key(http::header::CONTENT_LENGTH) && trailers.is_none() {
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    let body: UpstreamBody = match trailers {
        Some(trailers) => http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, crate::upstream::BoxError>(http_body::Frame::data(bytes)),
            Ok(http_body::Frame::trailers(trailers)),
        ]))
        .boxed(),
        None => Full::new(bytes).map_err(|never| match never {}).boxed(),
    };
    Request::from_parts(parts, body)
}
