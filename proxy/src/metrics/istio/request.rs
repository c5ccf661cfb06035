//! One HTTP request's end, read from its access-log record, as Istio's HTTP metrics count it.

use super::{ConnectionLabels, HttpEnd, UNKNOWN};
use crate::access_log::compiled::Key;
use crate::access_log::record::{Record, RequestHead};
use http::HeaderMap;

/// The request headers Istio's labels read: `:authority` (its `host` header on HTTP/1) and `content-type`.
pub const REQUEST_HEADERS: [http::HeaderName; 2] = [http::header::HOST, http::header::CONTENT_TYPE];

/// Records `record` (a request that ended) in `labels`' series.
pub fn report(labels: &ConnectionLabels, record: &Record) {
    let head = record.request.as_ref();
    let authority = head.and_then(|h| h.value(&Key::Authority));
    let grpc = head
        .and_then(|h| h.header(&http::header::CONTENT_TYPE))
        .is_some_and(|t| t.starts_with("application/grpc"));
    let grpc_status = grpc.then(|| grpc_status(record)).flatten();
    let response_head = record.response_head_size
        + record
            .response_trailers
            .as_ref()
            .map_or(0, |t| crate::http::headers::size(t) as u64 + 2);
    let end = HttpEnd {
        service: authority.map_or(UNKNOWN, host_of),
        upstream: record.upstream_peer.as_ref(),
        code: record.response_code,
        grpc,
        grpc_status,
        flags: record.flags,
        duration_ms: record.duration.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        request_bytes: record.bytes_received + head.map_or(0, request_head_size),
        // The status line as HTTP/1.1 writes it (`HTTP/1.1 200 OK\r\n`), when a response was sent.
        response_bytes: record.bytes_sent
            + if record.response_code == 0 {
                0
            } else {
                17 + response_head
            },
    };
    labels.request(&end);
}

/// The host of an authority (`reviews.shop:9080` -> `reviews.shop`; `[::1]:80` -> `[::1]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// `grpc-status` from the trailers (or a trailers-only response's headers); else Envoy's mapping of the HTTP
/// status (`Grpc::Utility::httpToGrpcStatus`, which `Grpc::Common::getGrpcStatus` falls back to); none when no
/// response was sent.
fn grpc_status(record: &Record) -> Option<u16> {
    const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    let read = |h: &HeaderMap| h.get(GRPC_STATUS)?.to_str().ok()?.parse().ok();
    if let Some(status) = record.response_trailers.as_ref().and_then(read) {
        return Some(status);
    }
    if let Some(status) = record
        .response_headers
        .as_ref()
        .and_then(|h| h.get_str(&GRPC_STATUS)?.parse().ok())
    {
        return Some(status);
    }
    Some(match record.response_code {
        0 => return None,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    })
}

/// The request line and headers as HTTP/1.1 writes them (Istio counts wire bytes, not only the body).
fn request_head_size(head: &RequestHead) -> u64 {
    let line = head.method.as_str().len() + head.path().len() + " HTTP/1.1\r\n".len() + 1;
    line as u64 + head.header_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_the_authority_without_its_port() {
        assert_eq!(host_of("reviews.shop:9080"), "reviews.shop");
        assert_eq!(host_of("reviews"), "reviews");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("198.18.0.2:8080"), "198.18.0.2");
    }

    #[test]
    fn grpc_status_comes_from_trailers_else_from_the_http_status() {
        let mut record = Record {
            response_code: 200,
            ..Record::default()
        };
        // Envoy's inference for a 200 without a status (a stream cut short): UNKNOWN.
        assert_eq!(grpc_status(&record), Some(2));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        record.response_trailers = Some(trailers);
        assert_eq!(grpc_status(&record), Some(5));
        record.response_trailers = None;
        record.response_code = 503;
        assert_eq!(grpc_status(&record), Some(14));
    }
}
