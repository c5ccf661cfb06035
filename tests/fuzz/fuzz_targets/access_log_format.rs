//! Access-log format strings: the loader's parser (`%COMMAND(args):max%` between text), then each parsed format
//! written for a request whose path and header values come from the input too, as a text line and as a typed
//! JSON field. Input: the format, then after a 0x1E byte the text for the path and headers.
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use outrigger_config::fuzzing::access_log_format;
use outrigger_config::model::access_log::{Format, JsonValue};
use outrigger_proxy::access_log::captured::Captured;
use outrigger_proxy::access_log::record::{Record, RequestHead};
use outrigger_proxy::fuzzing::access_log_line;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (format, value) = text.split_once('\x1e').unwrap_or((&text, "x"));
    let Ok(pieces) = access_log_format(format) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        for name in [
            "user-agent",
            "x-forwarded-for",
            "x-request-id",
            "host",
            "x-envoy-original-path",
        ] {
            headers.append(name, v.clone());
        }
    }
    let record = Record {
        start: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(value.len() as u64 * 7919)),
        protocol: Some("HTTP/1.1"),
        request: Some(RequestHead {
            method: Method::GET,
            uri: uri(value),
            headers: Captured::all(&headers),
            header_bytes: 0,
        }),
        response_headers: Some(Captured::all(&headers)),
        response_trailers: Some(headers),
        response_code: 200,
        response_code_details: Some(value.to_string().into()),
        bytes_received: u64::MAX,
        duration: Some(Duration::MAX),
        upstream_cluster: Some(value.into()),
        route_name: Some(value.to_string()),
        ..Record::default()
    };
    let line = access_log_line(&Format::Text(pieces.clone()), &record);
    assert!(
        std::str::from_utf8(&line).is_ok(),
        "a text line that is not UTF-8"
    );
    let json = Format::Json(vec![("f".into(), JsonValue::Template(pieces))]);
    let line = access_log_line(&json, &record);
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&line);
    assert!(
        parsed.is_ok(),
        "a JSON line that is not JSON: {:?}",
        String::from_utf8_lossy(&line)
    );
});

/// A URI whose authority and path are `value` when it makes a valid one (a request's URI always is).
fn uri(value: &str) -> http::Uri {
    let path = if value.starts_with('/') {
        value.to_string()
    } else {
        format!("/{value}")
    };
    http::Uri::builder()
        .scheme("http")
        .authority(value)
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| http::Uri::from_static("http://x/"))
}
