//! Responses the proxy makes itself, worded and flagged as Envoy does.

use crate::upstream::BoxError;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// Envoy's response flags, for logs and the `x-outrigger-response-flags` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// No route matched.
    NoRoute,
    /// No healthy upstream host.
    NoHealthyUpstream,
    /// The upstream connection failed.
    UpstreamConnectionFailure,
    /// The upstream timed out.
    UpstreamRequestTimeout,
    /// The upstream reset the stream.
    UpstreamRemoteReset,
    /// The route named a cluster that does not exist.
    NoClusterFound,
    /// Rate limited locally.
    RateLimited,
    /// A circuit breaker was full.
    UpstreamOverflow,
    /// Retries were exhausted; the last attempt's response went to the client.
    UpstreamRetryLimitExceeded,
    /// The fault filter delayed the request.
    DelayInjected,
    /// The fault filter aborted the request.
    FaultInjected,
    /// The external authorization service denied the request (or failed).
    UnauthorizedExternalService,
}

impl Flag {
    pub fn code(self) -> &'static str {
        match self {
            Flag::NoRoute => "NR",
            Flag::NoHealthyUpstream => "UH",
            Flag::UpstreamConnectionFailure => "UF",
            Flag::UpstreamRequestTimeout => "UT",
            Flag::UpstreamRemoteReset => "UR",
            Flag::NoClusterFound => "NC",
            Flag::RateLimited => "RL",
            Flag::UpstreamOverflow => "UO",
            Flag::UpstreamRetryLimitExceeded => "URX",
            Flag::DelayInjected => "DI",
            Flag::FaultInjected => "FI",
            Flag::UnauthorizedExternalService => "UAEX",
        }
    }
}

pub fn empty() -> ResponseBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn text(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn reply(status: StatusCode, flag: Flag, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(if message.is_empty() {
        empty()
    } else {
        text(message.to_string())
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !message.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
    }
    headers.insert(
        "x-outrigger-response-flags",
        http::HeaderValue::from_static(flag.code()),
    );
    response
        .extensions_mut()
        .insert(crate::access_log::record::Flags::named(flag.code()));
    response
}

/// Adds a flag to a response (an upstream one that a layer marked, such as `URX`): in its extensions for the
/// layers outside, and in `x-outrigger-response-flags` for the client.
pub fn add_flag<B>(response: &mut Response<B>, flag: Flag) {
    response.extensions_mut().insert(flag);
    let mut flags = response
        .extensions()
        .get::<crate::access_log::record::Flags>()
        .copied()
        .unwrap_or_default();
    flags.add(flag.code());
    response.extensions_mut().insert(flags);
    response.headers_mut().insert(
        "x-outrigger-response-flags",
        http::HeaderValue::from_static(flag.code()),
    );
}

/// On a reply an HTTP filter made itself: `LocalReply` when the filter made it, `LocalReplyAt` with the filter's
/// place in the chain once `filter_chain::Position` has seen it. Envoy passes such a reply through every
/// encoder, also those of filters after it whose request side never ran (the compressor reads this).
#[derive(Clone, Copy, Debug)]
pub struct LocalReply;

#[derive(Clone, Copy, Debug)]
pub struct LocalReplyAt(pub usize);

/// Marks a reply made by an HTTP filter.
pub fn from_filter(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response.extensions_mut().insert(LocalReply);
    response
}
