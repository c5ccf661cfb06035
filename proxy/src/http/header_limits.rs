//! The request header limits Envoy's codecs apply before the connection manager sees a request:
//! `max_request_headers_kb` and `common_http_protocol_options.max_headers_count`: either answers 431
//! `Request Header Fields Too Large` closing an HTTP/1 connection; an h2 stream is reset.

use super::headers;
use super::local_reply::{self, ResponseBody};
use super::stream_reset::ResetStream;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use outrigger_config::model::http::HttpConnectionManager;

/// The reply for a request over a limit, if it is.
pub fn check(parts: &Parts, hcm: &HttpConnectionManager) -> Option<Response<ResponseBody>> {
    let too_many = headers_count(parts) > hcm.max_headers_count as usize;
    let too_large = headers::size(&parts.headers) > hcm.max_request_headers_kb as usize * 1024;
    (too_many || too_large).then(|| {
        codec_reply(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
            parts.version,
        )
    })
}

/// Envoy's `max_headers_count` counts every header line, and on h2 the pseudo-headers too.
fn headers_count(parts: &Parts) -> usize {
    let pseudo = if parts.version == http::Version::HTTP_2 {
        let connect = parts.method == http::Method::CONNECT;
        let extended = parts.extensions.get::<hyper::ext::Protocol>().is_some();
        let authority = usize::from(parts.uri.authority().is_some());
        if connect && !extended {
            1 + authority
        } else {
            3 + authority + usize::from(extended)
        }
    } else {
        0
    };
    parts.headers.len() + pseudo
}

/// Envoy's codec refusing a request: HTTP/1 gets `status` with its reason as a text body, closing the
/// connection; an h2 stream is reset.
pub fn codec_reply(
    status: StatusCode,
    reason: &'static str,
    version: http::Version,
) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text(reason));
    *response.status_mut() = status;
    if version == http::Version::HTTP_2 {
        response.extensions_mut().insert(ResetStream);
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}
