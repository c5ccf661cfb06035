//! A record written in a parsed format: text, or one JSON object, each ending in a newline (Envoy adds the
//! newline to JSON lines; a text format carries its own).

use super::record::Record;
use outrigger_config::model::access_log::{Command, Format, JsonValue, Operator, Piece};
use std::fmt::Write as _;
use std::time::Duration;

/// One operator's value: text, a number, or unset (`-` in text, `null` in typed JSON).
enum Value {
    Text(String),
    Number(u64),
    Unset,
}

pub fn line(format: &Format, record: &Record) -> Vec<u8> {
    match format {
        Format::Text(pieces) => text(pieces, record).into_bytes(),
        Format::Json(fields) => {
            let mut line = serde_json::to_string(&object(fields, record)).unwrap_or_default();
            line.push('\n');
            line.into_bytes()
        }
    }
}

fn text(pieces: &[Piece], record: &Record) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Operator(op) => match value(op, record) {
                Value::Text(t) => out.push_str(&t),
                Value::Number(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Unset => out.push('-'),
            },
        }
    }
    out
}

fn object(fields: &[(String, JsonValue)], record: &Record) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (key, field) in fields {
        let value = match field {
            JsonValue::Template(pieces) => match pieces.as_slice() {
                // One operator alone keeps its type, as Envoy's typed JSON does.
                [Piece::Operator(op)] => match value(op, record) {
                    Value::Text(t) => serde_json::Value::String(t),
                    Value::Number(n) => serde_json::Value::from(n),
                    Value::Unset => serde_json::Value::Null,
                },
                _ => serde_json::Value::String(text(pieces, record)),
            },
            JsonValue::Literal(literal) => integral(literal),
            JsonValue::Object(inner) => object(inner, record),
        };
        map.insert(key.clone(), value);
    }
    serde_json::Value::Object(map)
}

/// A protobuf `Struct` number is a double; a whole one is written without a fraction.
fn integral(value: &serde_json::Value) -> serde_json::Value {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => serde_json::Value::from(f as i64),
        _ => value.clone(),
    }
}

fn millis(d: Option<Duration>) -> Value {
    d.map_or(Value::Unset, |d| {
        Value::Number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

fn text_of(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => Value::Text(s.to_string()),
        _ => Value::Unset,
    }
}

fn cut(value: Value, max: Option<usize>) -> Value {
    match (value, max) {
        (Value::Text(mut t), Some(max)) if t.len() > max => {
            let mut end = max;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            Value::Text(t)
        }
        (value, _) => value,
    }
}

fn header(
    headers: Option<&http::HeaderMap>,
    name: &str,
    alternative: &Option<String>,
) -> Option<String> {
    let headers = headers?;
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    get(name).or_else(|| alternative.as_deref().and_then(get))
}

fn value(op: &Operator, r: &Record) -> Value {
    use Command as C;
    let v = match &op.command {
        C::Req { name, alternative } => {
            let request = r.request.as_ref();
            let found = request
                .and_then(|q| q.get(name))
                .or_else(|| request.and_then(|q| q.get(alternative.as_deref()?)));
            text_of(found)
        }
        C::Resp { name, alternative } => {
            text_of(header(r.response_headers.as_ref(), name, alternative).as_deref())
        }
        C::Trailer { name, alternative } => {
            text_of(header(r.response_trailers.as_ref(), name, alternative).as_deref())
        }
        C::StartTime(format) => match r.start {
            Some(start) => Value::Text(super::time::format(start, format.as_deref())),
            None => Value::Unset,
        },
        C::Protocol => text_of(r.protocol),
        C::UpstreamProtocol => text_of(r.upstream_protocol),
        C::ResponseCode => Value::Number(u64::from(r.response_code)),
        C::ResponseCodeDetails => text_of(r.response_code_details.as_deref()),
        C::ResponseFlags => Value::Text(r.flags.short()),
        C::ResponseFlagsLong => Value::Text(r.flags.long()),
        C::BytesReceived => Value::Number(r.bytes_received),
        C::BytesSent => Value::Number(r.bytes_sent),
        C::Duration => millis(r.duration),
        C::RequestDuration => millis(r.request_duration),
        C::ResponseDuration => millis(r.response_duration),
        C::ResponseTxDuration => millis(r.response_tx_duration),
        C::UpstreamHost => address(r.upstream_host, true),
        C::UpstreamCluster | C::UpstreamClusterRaw => text_of(r.upstream_cluster.as_deref()),
        C::UpstreamLocalAddress => address(r.upstream_local, true),
        C::UpstreamTransportFailureReason => text_of(r.upstream_failure.as_deref()),
        C::UpstreamRequestAttemptCount => r
            .attempts
            .map_or(Value::Unset, |a| Value::Number(u64::from(a))),
        C::DownstreamRemoteAddress | C::DownstreamDirectRemoteAddress => {
            address(r.downstream_remote, true)
        }
        C::DownstreamRemoteAddressWithoutPort | C::DownstreamDirectRemoteAddressWithoutPort => {
            address(r.downstream_remote, false)
        }
        C::DownstreamLocalAddress => address(r.downstream_local, true),
        C::DownstreamLocalAddressWithoutPort => address(r.downstream_local, false),
        C::DownstreamPeerUriSan => text_of(r.peer_uri_san.as_deref()),
        C::RequestedServerName => text_of(r.server_name.as_deref()),
        C::RouteName => text_of(r.route_name.as_deref()),
        C::ConnectionTerminationDetails => text_of(r.termination_details.as_deref()),
        C::Hostname => text_of(hostname()),
    };
    cut(v, op.max_length)
}

fn address(a: Option<std::net::SocketAddr>, port: bool) -> Value {
    match a {
        Some(a) if port => Value::Text(a.to_string()),
        Some(a) => Value::Text(a.ip().to_string()),
        None => Value::Unset,
    }
}

fn hostname() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
    })
    .as_deref()
}
