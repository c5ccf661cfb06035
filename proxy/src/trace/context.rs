//! The trace context a request carries between hops: W3C `traceparent`/`tracestate` and Zipkin's B3 headers
//! (the multi-header form and the single `b3` header), read and written as Envoy's tracers do.

use http::HeaderMap;
use http::header::HeaderValue;

/// The context of the span a request continues, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: u128,
    /// The caller's span: our span's parent.
    pub span_id: u64,
    /// B3 only: the caller's own parent (kept when Zipkin shares the span context).
    pub parent_id: Option<u64>,
    /// The caller's sampling decision; none when it left the decision to us.
    pub sampled: Option<bool>,
    pub tracestate: Option<String>,
}

/// `traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. Envoy takes the sampled flag from it.
pub fn read_w3c(headers: &HeaderMap) -> Option<Incoming> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; a later version may add more, which we ignore.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = hex_u128(trace)?;
    let span_id = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == 0 || span_id == 0 || !is_lower_hex(trace) || !is_lower_hex(span) {
        return None;
    }
    let tracestate = headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    Some(Incoming {
        trace_id,
        span_id,
        parent_id: None,
        sampled: Some(flags & 1 == 1),
        tracestate: (!tracestate.is_empty()).then_some(tracestate),
    })
}

/// Writes `traceparent` (and `tracestate` when there is one) for the span `span_id`.
pub fn write_w3c(
    headers: &mut HeaderMap,
    trace_id: u128,
    span_id: u64,
    sampled: bool,
    tracestate: Option<&str>,
) {
    // `00-` + 32 + `-` + 16 + `-` + 2, written without formatting machinery (every request of a traced
    // connection manager carries one).
    let mut value = [b'-'; 55];
    value[..2].copy_from_slice(b"00");
    hex_into(&mut value[3..35], trace_id);
    hex_into(&mut value[36..52], u128::from(span_id));
    value[53..].copy_from_slice(if sampled { b"01" } else { b"00" });
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT, value);
    }
    if let Some(state) = tracestate.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(TRACESTATE, state);
    }
}

// Parsed once: a `&str` name is parsed again at every use, and these are read on every traced request.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// `number`'s low `out.len()` hex digits (lower case, zero-padded) into `out`.
fn hex_into(out: &mut [u8], number: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut rest = number;
    for place in out.iter_mut().rev() {
        *place = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
}

/// B3: the single `b3` header first (`{trace}-{span}[-{sampling}[-{parent}]]`, or just the sampling state),
/// else `x-b3-traceid` and `x-b3-spanid` (with `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`).
/// Returns the context, or only a sampling decision when the headers carry no ids.
pub fn read_b3(headers: &HeaderMap) -> (Option<Incoming>, Option<bool>) {
    if let Some(single) = headers.get("b3").and_then(|v| v.to_str().ok()) {
        return read_b3_single(single);
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let debug = get("x-b3-flags") == Some("1");
    let sampled = if debug {
        Some(true)
    } else {
        get("x-b3-sampled").and_then(sampling_state)
    };
    let ids = get("x-b3-traceid")
        .and_then(b3_trace_id)
        .zip(get("x-b3-spanid").and_then(b3_span_id));
    let Some((trace_id, span_id)) = ids else {
        return (None, sampled);
    };
    let parent_id = get("x-b3-parentspanid").and_then(b3_span_id);
    (
        Some(Incoming {
            trace_id,
            span_id,
            parent_id,
            sampled,
            tracestate: None,
        }),
        sampled,
    )
}

fn read_b3_single(value: &str) -> (Option<Incoming>, Option<bool>) {
    let fields: Vec<&str> = value.split('-').collect();
    match fields.as_slice() {
        [state] => (None, sampling_state(state)),
        [trace, span, rest @ ..] if rest.len() <= 2 => {
            let sampled = rest.first().and_then(|s| sampling_state(s));
            let parent_id = rest.get(1).and_then(|p| b3_span_id(p));
            let context = b3_trace_id(trace)
                .zip(b3_span_id(span))
                .map(|(trace_id, span_id)| Incoming {
                    trace_id,
                    span_id,
                    parent_id,
                    sampled,
                    tracestate: None,
                });
            (context, sampled)
        }
        _ => (None, None),
    }
}

/// `1`/`d`/`true` sample, `0`/`false` do not.
fn sampling_state(s: &str) -> Option<bool> {
    match s {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// 16 or 32 hex characters.
fn b3_trace_id(s: &str) -> Option<u128> {
    if s.len() != 16 && s.len() != 32 {
        return None;
    }
    hex_u128(s).filter(|id| *id != 0)
}

fn b3_span_id(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|id| *id != 0)
}

/// Writes the B3 multi headers: our span, its parent, and the decision (`x-b3-sampled: 0` too: Envoy
/// propagates the context of a request it does not sample). A 64-bit trace id is written as 16 hex digits.
pub fn write_b3(
    headers: &mut HeaderMap,
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    sampled: bool,
) {
    let trace = if trace_id >> 64 == 0 {
        format!("{trace_id:016x}")
    } else {
        format!("{trace_id:032x}")
    };
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-b3-traceid", trace);
    set("x-b3-spanid", format!("{span_id:016x}"));
    match parent_id {
        Some(parent) => set("x-b3-parentspanid", format!("{parent:016x}")),
        None => {
            headers.remove("x-b3-parentspanid");
        }
    }
    headers.insert(
        "x-b3-sampled",
        HeaderValue::from_static(if sampled { "1" } else { "0" }),
    );
}

fn hex_u128(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn traceparent_is_read_and_written_back() {
        let h = headers(&[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        let c = read_w3c(&h).unwrap();
        assert_eq!(c.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(c.span_id, 0xb7ad6b7169203331);
        assert_eq!(c.sampled, Some(true));
        assert_eq!(c.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        let mut out = HeaderMap::new();
        write_w3c(&mut out, c.trace_id, 0x1234, false, c.tracestate.as_deref());
        assert_eq!(
            out["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-0000000000001234-00"
        );
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
        write_w3c(&mut out, u128::MAX - 1, 0xa000_0000_0000_000b, true, None);
        assert_eq!(
            out["traceparent"],
            "00-fffffffffffffffffffffffffffffffe-a00000000000000b-01"
        );
        // Malformed: upper case, zero ids, wrong lengths.
        for bad in [
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            let mut h = HeaderMap::new();
            h.insert("traceparent", HeaderValue::from_static(bad));
            assert_eq!(read_w3c(&h), None, "{bad}");
        }
    }

    #[test]
    fn b3_single_and_multi_headers_are_read() {
        let (c, sampled) = read_b3(&headers(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]));
        let c = c.unwrap();
        assert_eq!(c.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(c.span_id, 0xe457b5a2e4d86bd1);
        assert_eq!(c.parent_id, Some(0x05e3ac9a4f6e3b90));
        assert_eq!(sampled, Some(true));
        assert_eq!(read_b3(&headers(&[("b3", "0")])), (None, Some(false)));
        let (c, sampled) = read_b3(&headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]));
        assert_eq!(c.unwrap().trace_id, 0x463ac35c9f6413ad);
        // Debug implies sampled.
        assert_eq!(sampled, Some(true));
        let mut out = HeaderMap::new();
        write_b3(
            &mut out,
            0x463ac35c9f6413ad,
            0x1,
            Some(0xa2fb4a1d1a96d312),
            false,
        );
        assert_eq!(out["x-b3-traceid"], "463ac35c9f6413ad");
        assert_eq!(out["x-b3-spanid"], "0000000000000001");
        assert_eq!(out["x-b3-parentspanid"], "a2fb4a1d1a96d312");
        assert_eq!(out["x-b3-sampled"], "0");
    }
}
