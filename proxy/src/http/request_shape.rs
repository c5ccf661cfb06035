//! HTTP/1 request shapes Envoy's codec refuses and hyper lets through, each answered as Envoy answers it
//! (`400 Bad Request`, `Connection: close`, the connection closed):
//! - both `Content-Length` and `Transfer-Encoding` (the request-smuggling shape; hyper frames the body by
//!   `Transfer-Encoding` and would forward both);
//! - a request target that is neither a path (`/...`), `*`, nor an absolute URI (`GET abc HTTP/1.1`).
//!
//! Each refusal is logged at most once a second (`log_limit`); `downstream_rq_4xx` counts every one.

use super::header_limits::codec_reply;
use super::local_reply::ResponseBody;
use crate::log_limit;
use http::request::Parts;
use http::{Method, Response, StatusCode};

/// The reply for a request of a shape Envoy refuses, if it is one.
pub fn check(parts: &Parts) -> Option<Response<ResponseBody>> {
    if parts.version >= http::Version::HTTP_2 {
        return None;
    }
    let both_lengths = parts.headers.contains_key(http::header::CONTENT_LENGTH)
        && parts.headers.contains_key(http::header::TRANSFER_ENCODING);
    let target_ok = parts.method == Method::CONNECT
        || parts.uri.scheme().is_some()
        || parts.uri.path().starts_with('/')
        || (parts.method == Method::OPTIONS && parts.uri.path() == "*");
    if both_lengths || !target_ok {
        static REFUSED: log_limit::Once = log_limit::Once::per_second();
        if REFUSED.allow() {
            tracing::info!(
                reason = if both_lengths {
                    "both Content-Length and Transfer-Encoding"
                } else {
                    "a request target that is not a path"
                },
                "HTTP/1 request refused with 400 (at most one such line a second)"
            );
        }
        return Some(codec_reply(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            parts.version,
        ));
    }
    None
}
