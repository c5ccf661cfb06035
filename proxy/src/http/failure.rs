//! Why an upstream request got no response, and the local reply Envoy sends for each reason.

use super::local_reply::{Flag, ResponseBody, reply};
use http::{HeaderValue, Response, StatusCode};
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No host to send to (none healthy, no original destination, or the destination is the proxy itself).
    #[error("no healthy upstream: {0}")]
    NoHealthyUpstream(String),
    /// A circuit breaker was full.
    #[error("circuit breaker overflow")]
    Overflow,
    /// The connection (TCP or TLS) to `host` failed, or was not made within the cluster's `connect_timeout`.
    #[error("connecting to {host}: {detail}")]
    Connect {
        host: SocketAddr,
        detail: String,
        timed_out: bool,
    },
    /// The upstream reset the stream or closed the connection before the response headers.
    #[error("{host} reset the request: {detail}")]
    Reset {
        host: SocketAddr,
        detail: String,
        /// An h2 `REFUSED_STREAM`: the upstream did not process the request.
        refused_stream: bool,
    },
    /// The per-try timeout fired before the response headers.
    #[error("per-try timeout waiting for {host}")]
    PerTryTimeout { host: SocketAddr },
    /// The route's timeout fired (all attempts and back-offs included).
    #[error("route timeout")]
    RouteTimeout,
}

impl Failure {
    /// The host this failure happened on, if one was chosen.
    pub fn host(&self) -> Option<SocketAddr> {
        match self {
            Failure::Connect { host, .. }
            | Failure::Reset { host, .. }
            | Failure::PerTryTimeout { host } => Some(*host),
            Failure::NoHealthyUpstream(_) | Failure::Overflow | Failure::RouteTimeout => None,
        }
    }

    /// Envoy's local reply: status, flag and body.
    pub fn into_response(self, cluster: &str) -> Response<ResponseBody> {
        match self {
            Failure::NoHealthyUpstream(why) => {
                tracing::debug!(cluster, reason = %why, "no upstream for the request");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Flag::NoHealthyUpstream,
                    "no healthy upstream",
                )
            }
            Failure::Overflow => {
                tracing::debug!(cluster, "circuit breaker full; request refused");
                let mut response = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Flag::UpstreamOverflow,
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow",
                );
                response.headers_mut().insert(
                    super::envoy_headers::OVERLOADED,
                    HeaderValue::from_static("true"),
                );
                response
            }
            Failure::Connect {
                host,
                detail,
                timed_out,
            } => {
                tracing::debug!(cluster, %host, %detail, "upstream connect failure");
                // Envoy's details name the reset reason and, for a refused connection, the socket's error.
                let details = if timed_out {
                    "upstream_reset_before_response_started{connection_timeout}"
                } else if detail.to_ascii_lowercase().contains("connection refused") {
                    "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
                } else {
                    "upstream_reset_before_response_started{remote_connection_failure}"
                };
                let mut response = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Flag::UpstreamConnectionFailure,
                    if timed_out {
                        "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
                    } else {
                        // Envoy 1.40's words (checked with tests/access_log.rs: 98 bytes).
                        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
                    },
                );
                response
                    .extensions_mut()
                    .insert(crate::access_log::record::Details(details));
                if !timed_out && detail.to_ascii_lowercase().contains("connection refused") {
                    // `%UPSTREAM_TRANSPORT_FAILURE_REASON%`, as Envoy 1.40 writes it.
                    response.extensions_mut().insert(TransportFailure(
                        "delayed_connect_error:_Connection_refused",
                    ));
                }
                response
            }
            Failure::Reset { host, detail, .. } => {
                tracing::debug!(cluster, %host, %detail, "upstream reset");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Flag::UpstreamRemoteReset,
                    "upstream connect error or disconnect/reset before headers. reset reason: remote reset",
                )
            }
            Failure::PerTryTimeout { .. } | Failure::RouteTimeout => reply(
                StatusCode::GATEWAY_TIMEOUT,
                Flag::UpstreamRequestTimeout,
                "upstream request timeout",
            ),
        }
    }
}

/// Why the upstream connection failed, for `%UPSTREAM_TRANSPORT_FAILURE_REASON%` (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct TransportFailure(pub &'static str);
