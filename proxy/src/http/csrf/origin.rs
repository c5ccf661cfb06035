//! The origins Envoy 1.40's CSRF filter compares: the `host[:port]` of an absolute URL as its URL parser
//! (`http_parser_parse_url`, not a browser's) reads it, or the value itself when it does not parse. Nothing is
//! normalised: no lower-casing, no default ports, IPv6 literals keep their brackets.

use http::HeaderMap;
use std::borrow::Cow;

/// `host[:port]` of `value` when it is an absolute URL (`scheme://[userinfo@]host[:port][/path][?query]...`),
/// else `value` unchanged; empty for an empty value.
pub fn host_and_port(value: &str) -> &str {
    authority(value).unwrap_or(value)
}

/// The source origin: from `Origin`, or from `Referer` when `Origin` is absent or empty. An `Origin` of
/// exactly `null` (a browser's opaque origin) is no source origin at all, whatever `Referer` says (Envoy 1.40).
pub fn source(headers: &HeaderMap) -> String {
    let origin = joined(headers, "origin");
    if origin == "null" {
        return String::new();
    }
    let from_origin = host_and_port(&origin);
    if !from_origin.is_empty() {
        return from_origin.to_string();
    }
    host_and_port(&joined(headers, "referer")).to_string()
}

/// The target origin: the request's host read as `http://<host>`; empty without one.
pub fn target(host: Option<&str>) -> String {
    match host {
        None | Some("") => String::new(),
        Some(host) => {
            let url = format!("http://{host}");
            host_and_port(&url).to_string()
        }
    }
}

/// Every value of `name`, joined with commas as Envoy joins a repeated header it keeps inline.
fn joined<'a>(headers: &'a HeaderMap, name: &str) -> Cow<'a, str> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Cow::Borrowed("");
    };
    let mut out = String::from_utf8_lossy(first.as_bytes());
    for more in values {
        let out = out.to_mut();
        out.push(',');
        out.push_str(&String::from_utf8_lossy(more.as_bytes()));
    }
    out
}

/// The authority of an absolute URL without its userinfo, or `None` when the URL parser refuses the value (a
/// value without a scheme, `null`, a port past 65535, an empty host or port).
fn authority(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    // RFC 3986's scheme: a letter, then letters, digits, `+`, `-` and `.` (Envoy 1.40 reads `h2c+x://a` as `a`).
    if !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = rest.strip_prefix("//")?;
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (server, tail) = rest.split_at(end);
    // The parser refuses a fragment straight after the authority, and control characters and spaces anywhere.
    if tail.starts_with('#') || tail.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    if !server
        .bytes()
        .all(|b| userinfo_char(b) || matches!(b, b'@' | b'[' | b']'))
    {
        return None;
    }
    let host_and_port = match server.split_once('@') {
        Some((_, after)) if after.contains('@') => return None,
        Some((_, after)) => after,
        None => server,
    };
    let port = if let Some(v6) = host_and_port.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let (address, zone) = inside.split_once('%').unwrap_or((inside, ""));
        let address_ok = !address.is_empty()
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        let zone_ok = zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'.' | b'-' | b'_' | b'~'));
        if !address_ok || !zone_ok || (inside.contains('%') && zone.is_empty()) {
            return None;
        }
        after
    } else {
        let end = host_and_port.find(':').unwrap_or(host_and_port.len());
        let (host, after) = host_and_port.split_at(end);
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return None;
        }
        after
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The parser converts the port and refuses one past 65535 (leading zeros are kept in the text).
        let value = digits.trim_start_matches('0');
        if value.len() > 5 || value.parse::<u32>().unwrap_or(0) > 0xffff {
            return None;
        }
    }
    Some(host_and_port)
}

/// What the URL parser lets into the authority before its `@` or as a host.
fn userinfo_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b';'
                | b':'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
        )
}
