//! What one request (or TCP connection) tells its access log: filled along the way, formatted at the end.

use http::HeaderMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Envoy's response flags, as bits in Envoy's own order (the order `%RESPONSE_FLAGS%` lists them in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u32);

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
        FLAG_NAMES
            .iter()
            .position(|(short, _)| *short == code)
            .map_or(Flags(0), |i| Flags(1 << i))
    }

    pub fn add(&mut self, code: &str) {
        self.0 |= Flags::named(code).0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, code: &str) -> bool {
        let bit = Flags::named(code).0;
        bit != 0 && self.0 & bit != 0
    }

    /// `UF,URX`, or `-` when none.
    pub fn short(self) -> String {
        self.join(|(short, _)| short, ",")
    }

    /// `UpstreamConnectionFailure,UpstreamRetryLimitExceeded`, or `-`.
    pub fn long(self) -> String {
        self.join(|(_, long)| long, ",")
    }

    fn join(
        self,
        pick: impl Fn(&(&'static str, &'static str)) -> &'static str,
        sep: &str,
    ) -> String {
        if self.is_empty() {
            return "-".into();
        }
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, names)| pick(names))
            .collect::<Vec<_>>()
            .join(sep)
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
    pub response_headers: Option<HeaderMap>,
    pub response_trailers: Option<HeaderMap>,
    /// 0: no response was sent.
    pub response_code: u16,
    pub response_code_details: Option<String>,
    pub flags: Flags,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Option<Duration>,
    pub request_duration: Option<Duration>,
    pub response_duration: Option<Duration>,
    pub response_tx_duration: Option<Duration>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<String>,
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
    pub trace: Option<crate::trace::Active>,
}

/// The request line and headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: http::Method,
    pub path: String,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    pub headers: HeaderMap,
}

impl RequestHead {
    /// `name` (lower case; `:method`, `:path`, `:authority`, `:scheme` too).
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            ":method" => Some(self.method.as_str()),
            ":path" => Some(&self.path),
            ":authority" => self
                .authority
                .as_deref()
                .or_else(|| self.headers.get(http::header::HOST)?.to_str().ok()),
            ":scheme" => self.scheme.as_deref(),
            "host" => self.get(":authority"),
            _ => self.headers.get(name)?.to_str().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_envoys_order() {
        let mut flags = Flags::default();
        assert_eq!(flags.short(), "-");
        flags.add("URX");
        flags.add("UF");
        assert_eq!(flags.short(), "UF,URX");
        assert_eq!(
            flags.long(),
            "UpstreamConnectionFailure,UpstreamRetryLimitExceeded"
        );
        assert!(flags.contains("URX") && !flags.contains("NR"));
    }
}
