//! SkyWalking's cross-process header, `sw8`, as Envoy 1.40's SkyWalking tracer reads and writes it:
//! `<sample>-<trace id>-<parent segment id>-<parent span id>-<parent service>-<parent instance>-<parent
//! endpoint>-<target address>`, eight fields separated by `-`, the six strings base64-encoded (standard
//! alphabet, padded), the sample flag `0` or `1`, the span id a decimal integer.
//!
//! Checked with Envoy 1.40: a header that is not exactly that is ignored (Envoy logs "Invalid span context
//! format" and starts a new trace); the incoming sample flag does not decide anything, the connection manager's
//! decision does (a `0` is continued and reported like a `1`).

use http::HeaderName;

pub const HEADER: HeaderName = HeaderName::from_static("sw8");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub sampled: bool,
    pub trace_id: String,
    pub segment_id: String,
    pub span_id: i32,
    pub service: String,
    pub instance: String,
    /// The caller's endpoint (its entry span's operation name).
    pub endpoint: String,
    /// The address the caller used to reach us.
    pub target: String,
}

impl Context {
    pub fn encode(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}-{}-{}-{}",
            if self.sampled { 1 } else { 0 },
            encode(&self.trace_id),
            encode(&self.segment_id),
            self.span_id,
            encode(&self.service),
            encode(&self.instance),
            encode(&self.endpoint),
            encode(&self.target),
        )
    }

    /// None for anything but a well-formed header.
    pub fn decode(value: &str) -> Option<Self> {
        let fields: Vec<&str> = value.split('-').collect();
        let [
            sample,
            trace,
            segment,
            span,
            service,
            instance,
            endpoint,
            target,
        ] = fields[..]
        else {
            return None;
        };
        let text = |s: &str| decode(s).and_then(|b| String::from_utf8(b).ok());
        Some(Self {
            sampled: match sample {
                "0" => false,
                "1" => true,
                _ => return None,
            },
            trace_id: text(trace).filter(|t| !t.is_empty())?,
            segment_id: text(segment).filter(|s| !s.is_empty())?,
            span_id: span.parse().ok()?,
            service: text(service)?,
            instance: text(instance)?,
            endpoint: text(endpoint)?,
            target: text(target)?,
        })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64, standard alphabet, with padding.
pub fn encode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 with the standard alphabet; padding optional. None for anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "/parent/ep?x=1",
            "127.0.0.1:80",
        ] {
            assert_eq!(decode(&encode(s)).unwrap(), s.as_bytes(), "{s}");
        }
        // What Envoy 1.40 wrote for these (seen on the wire).
        assert_eq!(encode("svc-a"), "c3ZjLWE=");
        assert_eq!(encode("/a/b?x=1"), "L2EvYj94PTE=");
        assert_eq!(encode("127.0.0.1:41903"), "MTI3LjAuMC4xOjQxOTAz");
        assert_eq!(decode("c3ZjLWE").unwrap(), b"svc-a");
        assert!(decode("c3Zj*WE=").is_none());
        assert!(decode("a").is_none());
    }

    #[test]
    fn sw8_is_read_and_written_like_envoys() {
        // A header Envoy 1.40 sent upstream (exit span 1 of segment "seg" of trace "trace-abc").
        let header = "1-dHJhY2UtYWJj-c2Vn-1-c3ZjLWE=-aW5zdC1h-L2lu-MTI3LjAuMC4xOjQxOTAz";
        let c = Context::decode(header).expect("well-formed");
        assert_eq!(
            c,
            Context {
                sampled: true,
                trace_id: "trace-abc".into(),
                segment_id: "seg".into(),
                span_id: 1,
                service: "svc-a".into(),
                instance: "inst-a".into(),
                endpoint: "/in".into(),
                target: "127.0.0.1:41903".into(),
            }
        );
        assert_eq!(c.encode(), header);
        let zero = header.replacen('1', "0", 1);
        assert!(!Context::decode(&zero).expect("sample 0 is read").sampled);
    }

    #[test]
    fn malformed_sw8_is_ignored() {
        let good = "1-dHJhY2UtYWJj-c2Vn-1-c3ZjLWE=-aW5zdC1h-L2lu-MTI3LjAuMC4xOjQxOTAz";
        for bad in [
            "garbage",
            "",
            // Seven fields, nine fields.
            "1-dHJhY2UtYWJj-c2Vn-1-c3ZjLWE=-aW5zdC1h-L2lu",
            &format!("{good}-eA=="),
            // Sample flag, span id, base64.
            &good.replacen('1', "2", 1),
            &good.replace("-1-c3Zj", "-x-c3Zj"),
            &good.replace("dHJhY2UtYWJj", "dHJh*2UtYWJj"),
            // An empty trace id.
            &good.replace("dHJhY2UtYWJj", ""),
        ] {
            assert!(Context::decode(bad).is_none(), "{bad:?} was accepted");
        }
    }
}
