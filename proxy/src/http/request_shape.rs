//! HTTP/1 request shapes Envoy's codec refuses and hyper lets through, each answered as Envoy answers it
//! (`400 Bad Request`, `Connection: close`, the connection closed):
//! - both `Content-Length` and `Transfer-Encoding` (the request-smuggling shape; hyper frames the body by
//!   `Transfer-Encoding` and would forward both);
//! - a request target that is neither a path (`/...`), `*`, nor an absolute URI (`GET abc HTTP/1.1`);
//! - a method Envoy 1.40's HTTP/1 codec does not know (`QUERY`, `FOO`, lower-case `get`; checked one by one
//!   against Envoy: it knows the 34 of `KNOWN_METHODS`). Over h2 any method goes through, as in Envoy.
//!
//! Each refusal is logged at most once a second (`log_limit`); `downstream_rq_4xx` counts every one.

use super::header_limits::codec_reply;
use super::local_reply::ResponseBody;
use crate::log_limit;
use http::request::Parts;
use http::{Method, Response, StatusCode};

/// The methods Envoy 1.40's HTTP/1 codec takes (as it spells them: upper case); any other is a 400.
const KNOWN_METHODS: [&str; 34] = [
    "ACL",
    "BIND",
    "CHECKOUT",
    "CONNECT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MOVE",
    "MSEARCH",
    "NOTIFY",
    "OPTIONS",
    "PATCH",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "PURGE",
    "PUT",
    "REBIND",
    "REPORT",
    "SEARCH",
    "SOURCE",
    "SUBSCRIBE",
    "TRACE",
    "UNBIND",
    "UNLINK",
    "UNLOCK",
    "UNSUBSCRIBE",
];

/// The common methods are compared as `http`'s own constants first, without a string comparison.
fn known_method(method: &Method) -> bool {
    let common = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
    ];
    common.contains(method) || KNOWN_METHODS.contains(&method.as_str())
}

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
    let method_known = known_method(&parts.method);
    if both_lengths || !target_ok || !method_known {
        static REFUSED: log_limit::Once = log_limit::Once::per_second();
        if REFUSED.allow() {
            tracing::info!(
                reason = if both_lengths {
                    "both Content-Length and Transfer-Encoding"
                } else if !target_ok {
                    "a request target that is not a path"
                } else {
                    "a method Envoy's HTTP/1 codec does not know"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_known_as_envoys_http1_codec_knows_them() {
        for known in [
            "GET",
            "POST",
            "OPTIONS",
            "PATCH",
            "PROPFIND",
            "MSEARCH",
            "UNSUBSCRIBE",
        ] {
            assert!(
                known_method(&Method::from_bytes(known.as_bytes()).unwrap()),
                "{known}"
            );
        }
        for unknown in ["QUERY", "FOO", "get", "M-SEARCH", "PRI", "DESCRIBE"] {
            assert!(
                !known_method(&Method::from_bytes(unknown.as_bytes()).unwrap()),
                "{unknown}"
            );
        }
    }
}
