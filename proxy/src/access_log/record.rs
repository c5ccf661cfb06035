//! What one request (or TCP connection) tells its access log: filled along the way, formatted at the end.

use super::captured::Captured;
use super::compiled::Key;
use http::HeaderMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Envoy's response flags: which are set, and the order they were set in (`%RESPONSE_FLAGS%` lists them in
/// that order, as Envoy 1.40 does: a connect failure whose retries ran out is `URX,UF`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// Bit `i`: `FLAG_NAMES[i]` is set.
    bits: u32,
    /// The first `ORDER_SLOTS` flags set, in order: `index + 1` in 5-bit slots, the first in the lowest.
    order: u64,
}

const ORDER_SLOTS: u32 = 12;

/// Short and long names, in Envoy's order.
pub const FLAG_NAMES: &[(&str, &str)] = &[
    ("LH", "FailedLocalHealthCheck"),
    ("UH", "NoHealthyUpstream"),
    ("UT", "UpstreamRequestTimeout"),
    ("LR", "LocalReset"),
    ("UR", "UpstreamRemoteReset"),
    ("UF", "UpstreamConnectionFailure"),
    ("UC", "UpstreamConnectionTermination"),
    ("UO", "UpstreamOverflow"),
    ("NR", "NoRouteFound"),
    ("DI", "DelayInjected"),
    ("FI", "FaultInjected"),
    ("RL", "RateLimited"),
    ("UAEX", "UnauthorizedExternalService"),
    ("RLSE", "RateLimitServiceError"),
    ("DC", "DownstreamConnectionTermination"),
    ("URX", "UpstreamRetryLimitExceeded"),
    ("SI", "StreamIdleTimeout"),
    ("IH", "InvalidEnvoyRequestHeaders"),
    ("DPE", "DownstreamProtocolError"),
    ("UMSDR", "UpstreamMaxStreamDurationReached"),
    ("RFCF", "ResponseFromCacheFilter"),
    ("NFCF", "NoFilterConfigFound"),
    ("DT", "DurationTimeout"),
    ("UPE", "UpstreamProtocolError"),
    ("NC", "NoClusterFound"),
    ("OM", "OverloadManagerTerminated"),
    ("DF", "DnsResolutionFailed"),
    ("DO", "DropOverload"),
    ("DR", "DownstreamRemoteReset"),
    ("UDO", "UnconditionalDropOverload"),
];

impl Flags {
    /// The flag with this short name (`UF`).
    pub fn named(code: &str) -> Flags {
        let mut flags = Flags::default();
        flags.add(code);
        flags
    }

    pub fn add(&mut self, code: &str) {
        if let Some(i) = FLAG_NAMES.iter().position(|(short, _)| *short == code) {
            self.add_index(i as u32);
        }
    }

    fn add_index(&mut self, i: u32) {
        if self.bits & (1 << i) != 0 {
            return;
        }
        let slot = self.bits.count_ones();
        self.bits |= 1 << i;
        if slot < ORDER_SLOTS {
            self.order |= u64::from(i + 1) << (5 * slot);
        }
    }

    /// Adds `other`'s flags after this one's, in `other`'s order.
    pub fn merge(&mut self, other: Flags) {
        for i in other.indices() {
            self.add_index(i);
        }
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    pub fn contains(self, code: &str) -> bool {
        FLAG_NAMES
            .iter()
            .position(|(short, _)| *short == code)
            .is_some_and(|i| self.bits & (1 << i) != 0)
    }

    /// The flags' indices in `FLAG_NAMES`, in the order they were set (past `ORDER_SLOTS` flags, the rest in
    /// the table's order).
    fn indices(self) -> impl Iterator<Item = u32> {
        let ordered = (0..ORDER_SLOTS)
            .map(move |slot| ((self.order >> (5 * slot)) & 0x1f) as u32)
            .take_while(|&v| v != 0)
            .map(|v| v - 1);
        let rest = (self.bits.count_ones() > ORDER_SLOTS)
            .then(move || {
                let mut in_order = 0u32;
                for slot in 0..ORDER_SLOTS {
                    let v = ((self.order >> (5 * slot)) & 0x1f) as u32;
                    if v != 0 {
                        in_order |= 1 << (v - 1);
                    }
                }
                (0..FLAG_NAMES.len() as u32).filter(move |i| self.bits & !in_order & (1 << i) != 0)
            })
            .into_iter()
            .flatten();
        ordered.chain(rest)
    }

    /// `URX,UF`, or `-` when none.
    pub fn short(self) -> String {
        self.join(|(short, _)| short)
    }

    /// `UpstreamRetryLimitExceeded,UpstreamConnectionFailure`, or `-`.
    pub fn long(self) -> String {
        self.join(|(_, long)| long)
    }

    fn join(self, pick: impl Fn(&(&'static str, &'static str)) -> &'static str) -> String {
        if self.is_empty() {
            return "-".into();
        }
        let mut out = String::new();
        for i in self.indices() {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(pick(&FLAG_NAMES[i as usize]));
        }
        out
    }
}

/// `%RESPONSE_CODE_DETAILS%` a layer knows better than the flags tell (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct Details(pub &'static str);

/// One request or connection, as the access log sees it at the end.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub start: Option<SystemTime>,
    /// `HTTP/1.1`, `HTTP/2`; none for TCP.
    pub protocol: Option<&'static str>,
    pub upstream_protocol: Option<&'static str>,
    /// The request as the connection manager prepared it (request id, forwarding headers), with its
    /// pseudo-headers.
    pub request: Option<RequestHead>,
    /// The response headers the access logs read (`%RESP(X)%`) and `grpc-status`; not all of them.
    pub response_headers: Option<Captured>,
    /// The size of all the response headers as HTTP/1.1 writes them (`name: value\r\n` each and the blank line;
    /// Istio's `response_bytes` counts them; 0 without Istio's metrics).
    pub response_head_size: u64,
    pub response_trailers: Option<HeaderMap>,
    /// 0: no response was sent.
    pub response_code: u16,
    pub response_code_details: Option<std::borrow::Cow<'static, str>>,
    pub flags: Flags,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Option<Duration>,
    pub request_duration: Option<Duration>,
    pub response_duration: Option<Duration>,
    pub response_tx_duration: Option<Duration>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<std::sync::Arc<str>>,
    pub upstream_local: Option<SocketAddr>,
    pub upstream_failure: Option<String>,
    /// The SPIFFE IDs of the upstream connection's two sides (Istio's metrics read them).
    pub upstream_peer: Option<crate::metrics::istio::UpstreamPeer>,
    pub attempts: Option<u32>,
    pub downstream_remote: Option<SocketAddr>,
    pub downstream_local: Option<SocketAddr>,
    pub peer_uri_san: Option<String>,
    pub server_name: Option<String>,
    pub route_name: Option<String>,
    pub termination_details: Option<String>,
    /// The request's span, when its connection manager traces it and it is sampled.
    /// (Boxed: most requests are not sampled, and the record is moved several times.)
    pub trace: Option<Box<crate::trace::Active>>,
}

/// The request line, and the headers read later (those the access logs, Istio's labels and a sampled span read).
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: http::Method,
    /// The request's URI as the connection manager left it (its path, and for h2 its authority and scheme);
    /// a clone shares the request's bytes instead of copying them.
    pub uri: http::Uri,
    pub headers: Captured,
    /// The size of all the request's headers as HTTP/1.1 writes them (Istio's `request_bytes`); 0 when
    /// nothing reads it.
    pub header_bytes: u64,
}

impl RequestHead {
    /// `name` (lower case; `:method`, `:path`, `:authority`, `:scheme` too).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.value(&Key::request(name))
    }

    /// The header (or pseudo-header) `key`; `:authority` is the request's authority, else its `host` header.
    pub fn value(&self, key: &Key) -> Option<&str> {
        match key {
            Key::Method => Some(self.method.as_str()),
            Key::Path => Some(self.path()),
            Key::Authority => self
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| self.header(&http::header::HOST)),
            Key::Scheme => self.uri.scheme_str(),
            Key::Header(name) => self.header(name),
            Key::Nothing => None,
        }
    }

    /// The path with its query (`/` when the URI has none, as for `CONNECT`).
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Changes the path (a route's rewrite); the rest of the URI stays.
    pub fn set_path(&mut self, path: Option<http::uri::PathAndQuery>) {
        let mut parts = self.uri.clone().into_parts();
        parts.path_and_query = path;
        if let Ok(uri) = http::Uri::from_parts(parts) {
            self.uri = uri;
        }
    }

    pub fn header(&self, name: &http::HeaderName) -> Option<&str> {
        self.headers.get_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_the_order_they_were_set_like_envoy() {
        let mut flags = Flags::default();
        assert_eq!(flags.short(), "-");
        flags.add("URX");
        flags.add("UF");
        flags.add("URX");
        assert_eq!(flags.short(), "URX,UF");
        assert_eq!(
            flags.long(),
            "UpstreamRetryLimitExceeded,UpstreamConnectionFailure"
        );
        assert!(flags.contains("URX") && !flags.contains("NR"));
        let mut merged = Flags::named("UF");
        merged.merge(flags);
        assert_eq!(merged.short(), "UF,URX");
        assert_ne!(merged, flags, "the same flags set in another order");
    }

    #[test]
    fn more_flags_than_order_slots_are_all_listed() {
        let mut flags = Flags::default();
        for (short, _) in FLAG_NAMES.iter().rev() {
            flags.add(short);
        }
        let listed: Vec<String> = flags.short().split(',').map(String::from).collect();
        assert_eq!(listed.len(), FLAG_NAMES.len());
        assert_eq!(listed[0], "UDO", "the first one set comes first");
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), FLAG_NAMES.len(), "each once: {listed:?}");
    }
}
