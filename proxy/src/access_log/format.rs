//! A record written in a parsed format: text, or one JSON object, each ending in a newline (Envoy adds the
//! newline to JSON lines; a text format carries its own).

use super::compiled::{Compiled, Field, Key, Op, Part};
use super::record::Record;
use outrigger_config::model::access_log::{Command, Format};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// One operator's value: text (borrowed from the record where it can be: a line is written per request),
/// a number, or unset (`-` in text, `null` in typed JSON).
enum Value<'a> {
    Text(Cow<'a, str>),
    Number(u64),
    Unset,
}

impl Value<'_> {
    fn owned(self) -> serde_json::Value {
        match self {
            Value::Text(t) => serde_json::Value::String(t.into_owned()),
            Value::Number(n) => serde_json::Value::from(n),
            Value::Unset => serde_json::Value::Null,
        }
    }
}

/// One line of `record` in the loader's `format` (built for this line alone; the fuzz target's way in).
pub fn line(format: &Format, record: &Record) -> Vec<u8> {
    let mut out = String::new();
    write_line(&Compiled::new(format), record, &mut out);
    out.into_bytes()
}

/// Appends the record's line, newline included, to `out`.
pub fn write_line(format: &Compiled, record: &Record, out: &mut String) {
    match format {
        Compiled::Text(parts) => text(parts, record, out),
        Compiled::Json(fields) => {
            let _ = serde_json::to_writer(Utf8Sink(out), &object(fields, record));
            out.push('\n');
        }
    }
}

/// `serde_json` writes valid UTF-8; this lets it write into the line's `String`.
struct Utf8Sink<'a>(&'a mut String);

impl std::io::Write for Utf8Sink<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn text(parts: &[Part], record: &Record, out: &mut String) {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Operator(op) => write_value(op, record, out),
        }
    }
}

/// One operator into a text line; most values are written in place, without a `String` of their own.
fn write_value(op: &Op, r: &Record, out: &mut String) {
    use Command as C;
    let start = out.len();
    let written = match &op.command {
        C::StartTime(format) => r.start.map(|start| {
            super::time::write(start, format.as_deref(), out);
        }),
        C::UpstreamHost => r.upstream_host.map(|a| write_address(a, out)),
        C::UpstreamLocalAddress => r.upstream_local.map(|a| write_address(a, out)),
        C::DownstreamRemoteAddress | C::DownstreamDirectRemoteAddress => {
            r.downstream_remote.map(|a| write_address(a, out))
        }
        C::DownstreamLocalAddress => r.downstream_local.map(|a| write_address(a, out)),
        _ => {
            match value(op, r) {
                Value::Text(t) => out.push_str(&t),
                Value::Number(n) => out.push_str(itoa::Buffer::new().format(n)),
                Value::Unset => out.push('-'),
            }
            // `value` has cut its text already.
            return;
        }
    };
    match written {
        None => out.push('-'),
        Some(()) => {
            if let Some(max) = op.max_length
                && out.len() - start > max
            {
                let mut end = start + max;
                while !out.is_char_boundary(end) {
                    end -= 1;
                }
                out.truncate(end);
            }
        }
    }
}

fn object(fields: &[(String, Field)], record: &Record) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (key, field) in fields {
        let value = match field {
            Field::Template(parts) => match parts.as_slice() {
                // One operator alone keeps its type, as Envoy's typed JSON does.
                [Part::Operator(op)] => value(op, record).owned(),
                _ => {
                    let mut line = String::new();
                    text(parts, record, &mut line);
                    serde_json::Value::String(line)
                }
            },
            Field::Literal(literal) => integral(literal),
            Field::Object(inner) => object(inner, record),
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

fn millis(d: Option<Duration>) -> Value<'static> {
    d.map_or(Value::Unset, |d| {
        Value::Number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

fn text_of(s: Option<&str>) -> Value<'_> {
    match s {
        Some(s) if !s.is_empty() => Value::Text(Cow::Borrowed(s)),
        _ => Value::Unset,
    }
}

fn cut(value: Value<'_>, max: Option<usize>) -> Value<'_> {
    match (value, max) {
        (Value::Text(t), Some(max)) if t.len() > max => {
            let mut end = max;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            Value::Text(match t {
                Cow::Borrowed(b) => Cow::Borrowed(&b[..end]),
                Cow::Owned(mut o) => {
                    o.truncate(end);
                    Cow::Owned(o)
                }
            })
        }
        (value, _) => value,
    }
}

/// The first of `keys` the response's kept headers have.
fn response_header<'a>(
    headers: Option<&'a super::captured::Captured>,
    keys: &[Key; 2],
) -> Option<&'a str> {
    let headers = headers?;
    keys.iter().find_map(|key| match key {
        Key::Header(name) => headers.get_str(name),
        _ => None,
    })
}

/// The first of `keys` the trailers have.
fn trailer<'a>(trailers: Option<&'a http::HeaderMap>, keys: &[Key; 2]) -> Option<&'a str> {
    let trailers = trailers?;
    keys.iter().find_map(|key| match key {
        Key::Header(name) => trailers.get(name)?.to_str().ok(),
        _ => None,
    })
}

fn value<'a>(op: &Op, r: &'a Record) -> Value<'a> {
    use Command as C;
    let v = match &op.command {
        C::Req { .. } => {
            let request = r.request.as_ref();
            text_of(request.and_then(|q| op.headers.iter().find_map(|key| q.value(key))))
        }
        C::Resp { .. } => text_of(response_header(r.response_headers.as_ref(), &op.headers)),
        C::Trailer { .. } => text_of(trailer(r.response_trailers.as_ref(), &op.headers)),
        C::StartTime(format) => match r.start {
            Some(start) => Value::Text(Cow::Owned(super::time::format(start, format.as_deref()))),
            None => Value::Unset,
        },
        C::Protocol => text_of(r.protocol),
        C::UpstreamProtocol => text_of(r.upstream_protocol),
        C::ResponseCode => Value::Number(u64::from(r.response_code)),
        C::ResponseCodeDetails => text_of(r.response_code_details.as_deref()),
        C::ResponseFlags if r.flags.is_empty() => Value::Text(Cow::Borrowed("-")),
        C::ResponseFlags => Value::Text(Cow::Owned(r.flags.short())),
        C::ResponseFlagsLong if r.flags.is_empty() => Value::Text(Cow::Borrowed("-")),
        C::ResponseFlagsLong => Value::Text(Cow::Owned(r.flags.long())),
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

/// `ip:port` (`[ip]:port` for IPv6); an IPv4 address, the common case, is written without `core::fmt`.
fn write_address(a: std::net::SocketAddr, out: &mut String) {
    match a {
        std::net::SocketAddr::V4(v4) => {
            let mut number = itoa::Buffer::new();
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(number.format(octet));
            }
            out.push(':');
            out.push_str(number.format(v4.port()));
        }
        std::net::SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

fn address(a: Option<std::net::SocketAddr>, port: bool) -> Value<'static> {
    match a {
        Some(a) if port => Value::Text(Cow::Owned(a.to_string())),
        Some(a) => Value::Text(Cow::Owned(a.ip().to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_rust_displays_them() {
        for a in [
            "198.18.0.1:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:80",
            "[fe80::1]:443",
        ] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            write_address(a, &mut out);
            assert_eq!(out, a.to_string());
        }
    }
}
