//! `envoy.filters.http.compressor`: a response body compressed (gzip or brotli) when the client accepts the
//! encoding, as Envoy 1.40 decides it (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - the response must have no body-less end (a HEAD, a 204, an empty body), a `content-length` (when given) of
//!   at least `min_content_length` (`content_length_too_small` otherwise), an allowed content type (Envoy's list
//!   by default; no content type passes), no `Cache-Control: no-transform`, no `content-encoding`, no ETag with
//!   `disable_on_etag_header` (`not_compressed_etag`), no compressing `transfer-encoding`, and not be an upgrade;
//! - the encoding comes from `Accept-Encoding` (`compressor/choice.rs`), one decision for all the chain's
//!   compressors; each counts a `header_*` statistic, and only when the length and enablement allowed asking;
//! - a compressed response loses `content-length` and a strong ETag (a weak one stays) and gains
//!   `content-encoding`; every compressible response gains `Vary: Accept-Encoding`, compressed or not;
//! - a route's `CompressorPerRoute` (keyed by the filter's name) can disable the filter or switch
//!   `remove_accept_encoding_header`;
//! - `request.not_compressed` counts every request the filter saw (request compression is not configurable
//!   here: `request_direction_config` is refused by the support table).
//!
//! The stack runs every compressor outermost among the HTTP filters (`filter_chain.rs`): Envoy passes a local
//! reply of any filter through every encoder, also those after it whose request side never ran; such a filter
//! sees no `Accept-Encoding` (`LocalReplyAt` says where a reply was made).

mod body;
mod choice;
#[cfg(test)]
mod tests;

use super::filter_service::{BoxFuture, Next};
use super::local_reply::{LocalReplyAt, ResponseBody};
use crate::metrics::Metrics;
use crate::upstream::UpstreamBody;
use body::{ByteCounters, Compressed, Encoder};
use choice::{Decision, Peer, Reason};
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    TRANSFER_ENCODING, VARY,
};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use outrigger_config::model::http::{Compressor, HttpFilter};
use prometheus_client::metrics::counter::Counter;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One compressor filter config at run time, shared by every connection of its connection manager.
pub struct Compression {
    config: Compressor,
    /// Its place in the connection manager's `http_filters`.
    index: usize,
    /// Every compressor of the chain, in order (Envoy's per-request registry of compressors).
    peers: Arc<[Peer]>,
    stats: Stats,
}

struct Stats {
    request_not_compressed: Counter,
    compressed: Counter,
    not_compressed: Counter,
    content_length_too_small: Counter,
    bytes: ByteCounters,
    no_accept_header: Counter,
    header_identity: Counter,
    header_compressor_used: Counter,
    header_compressor_overshadowed: Counter,
    header_wildcard: Counter,
    header_not_valid: Counter,
    not_compressed_etag: Counter,
}

/// The compressors of a connection manager's filters, by index.
pub fn build(
    filters: &[HttpFilter],
    metrics: &Metrics,
    stat_prefix: &str,
) -> Vec<Arc<Compression>> {
    let peers: Arc<[Peer]> = filters
        .iter()
        .filter_map(|f| match f {
            HttpFilter::Compressor(c) => Some(Peer {
                encoding: c.library.encoding(),
                content_types: c.content_types.clone(),
                choose_first: c.choose_first,
            }),
            _ => None,
        })
        .collect();
    filters
        .iter()
        .enumerate()
        .filter_map(|(index, f)| match f {
            HttpFilter::Compressor(c) => Some(Arc::new(Compression::new(
                c,
                index,
                peers.clone(),
                metrics,
                stat_prefix,
            ))),
            _ => None,
        })
        .collect()
}

impl Compression {
    fn new(
        config: &Compressor,
        index: usize,
        peers: Arc<[Peer]>,
        metrics: &Metrics,
        stat_prefix: &str,
    ) -> Self {
        let scope = format!("{}.{}", config.name, config.library.stats_name());
        let response_scope = if config.response_scope {
            format!("{scope}.response")
        } else {
            scope.clone()
        };
        let request_scope = format!("{scope}.request");
        let f = &metrics.filters;
        let counter = |scope: &str, name: &str| f.compressor_counter(stat_prefix, scope, name);
        // Envoy shows the request direction's statistics even though nothing is compressed that way.
        for name in crate::metrics::filters::DIRECTION_STATS {
            counter(&request_scope, name);
        }
        Self {
            stats: Stats {
                request_not_compressed: counter(&request_scope, "not_compressed"),
                compressed: counter(&response_scope, "compressed"),
                not_compressed: counter(&response_scope, "not_compressed"),
                content_length_too_small: counter(&response_scope, "content_length_too_small"),
                bytes: ByteCounters {
                    uncompressed: counter(&response_scope, "total_uncompressed_bytes"),
                    compressed: counter(&response_scope, "total_compressed_bytes"),
                },
                no_accept_header: counter(&scope, "no_accept_header"),
                header_identity: counter(&scope, "header_identity"),
                header_compressor_used: counter(&scope, "header_compressor_used"),
                header_compressor_overshadowed: counter(&scope, "header_compressor_overshadowed"),
                header_wildcard: counter(&scope, "header_wildcard"),
                header_not_valid: counter(&scope, "header_not_valid"),
                not_compressed_etag: counter(&scope, "not_compressed_etag"),
            },
            config: config.clone(),
            index,
            peers,
        }
    }

    fn encoding(&self) -> &'static str {
        self.config.library.encoding()
    }

    /// The response's length as Envoy's check reads it: `content-length`, else (a reply the proxy made) the
    /// body's exact size; unknown passes.
    fn length_allowed(&self, headers: &HeaderMap, exact: Option<u64>) -> bool {
        let length = match headers.get(CONTENT_LENGTH) {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok()),
            // A reply without a body has no `content-length` in Envoy when the filters see it.
            None => match exact {
                Some(exact) if exact > 0 => Some(exact),
                _ => return true,
            },
        };
        let allowed = length.is_some_and(|n| n >= self.config.min_content_length);
        if !allowed {
            self.stats.content_length_too_small.inc();
        }
        allowed
    }

    fn content_type_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            Some(value) => {
                let media = choice::media_type(value);
                self.config.content_types.contains(&media)
            }
            None => true,
        }
    }

    fn etag_allowed(&self, headers: &HeaderMap) -> bool {
        let allowed = !(self.config.disable_on_etag_header && headers.contains_key(ETAG));
        if !allowed {
            self.stats.not_compressed_etag.inc();
        }
        allowed
    }

    /// Whether the client's `Accept-Encoding` chose this filter's encoding, counting the `header_*` statistic.
    fn accepted(&self, accept_encoding: Option<&str>, headers: &HeaderMap) -> bool {
        let Some(accept_encoding) = accept_encoding else {
            self.stats.no_accept_header.inc();
            return false;
        };
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let Decision { encoding, reason } =
            choice::choose(accept_encoding, content_type, &self.peers);
        let mine = encoding.eq_ignore_ascii_case(self.encoding());
        let s = &self.stats;
        match reason {
            Reason::Compressor if mine => s.header_compressor_used.inc(),
            Reason::Compressor => s.header_compressor_overshadowed.inc(),
            Reason::Identity => s.header_identity.inc(),
            Reason::Wildcard => s.header_wildcard.inc(),
            Reason::NotValid => s.header_not_valid.inc(),
        };
        mine
    }

    /// The response on its way out: compressed, or as it was, with `Vary` when it could have been.
    fn encode(
        &self,
        mut response: Response<ResponseBody>,
        accept_encoding: Option<&str>,
        head: bool,
        enabled: bool,
    ) -> Response<ResponseBody> {
        let end_stream = head || response.body().is_end_stream();
        let exact = response.body().size_hint().exact();
        let headers = response.headers();
        // Disabled for the route: not even the length is looked at (nor counted).
        let length_allowed = enabled && self.length_allowed(headers, exact);
        let compressible = length_allowed
            && !is_upgrade(headers)
            && self.content_type_allowed(headers)
            && !has_token(headers, &CACHE_CONTROL, "no-transform")
            && self.etag_allowed(headers)
            && !headers.contains_key(CONTENT_ENCODING);
        let compress = !end_stream
            && length_allowed
            && self.accepted(accept_encoding, headers)
            && compressible
            && transfer_encoding_allowed(headers, self.encoding());
        // An encoder that cannot be made (zstd out of memory) leaves the response as it is.
        let encoder = if compress {
            Encoder::new(&self.config.library).ok()
        } else {
            None
        };
        if let Some(encoder) = encoder {
            let headers = response.headers_mut();
            remove_strong_etag(headers);
            headers.remove(CONTENT_LENGTH);
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(self.encoding()));
            self.stats.compressed.inc();
            response = response
                .map(|body| Compressed::new(body, encoder, self.stats.bytes.clone()).boxed());
        } else {
            self.stats.not_compressed.inc();
        }
        if compressible {
            add_vary(response.headers_mut());
        }
        response
    }
}

/// `Connection: upgrade` with an `Upgrade` header.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && has_token(headers, &http::header::CONNECTION, "upgrade")
}

/// Whether a comma-separated header holds `token` (any case).
fn has_token(headers: &HeaderMap, name: &http::HeaderName, token: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// A response already compressed by its transfer encoding is left alone.
fn transfer_encoding_allowed(headers: &HeaderMap, own: &str) -> bool {
    let Some(value) = headers.get(TRANSFER_ENCODING).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    !value.split(',').map(str::trim).any(|t| {
        ["gzip", "br", "deflate", "compress", "zstd", own]
            .iter()
            .any(|c| t.eq_ignore_ascii_case(c))
    })
}

/// Envoy keeps a weak ETag (`W/"..."`) and removes a strong one from a compressed response.
fn remove_strong_etag(headers: &mut HeaderMap) {
    let strong = headers.get(ETAG).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() > 2 && !((v[0] == b'w' || v[0] == b'W') && v[1] == b'/')
    });
    if strong {
        headers.remove(ETAG);
    }
}

/// `Vary: Accept-Encoding`, appended to a `Vary` that does not name it yet.
fn add_vary(headers: &mut HeaderMap) {
    const ACCEPT: &str = "Accept-Encoding";
    match headers.get(VARY).and_then(|v| v.to_str().ok()) {
        Some(vary) => {
            if !vary.split(',').any(|t| t.trim() == ACCEPT)
                && let Ok(value) = HeaderValue::from_str(&format!("{vary}, {ACCEPT}"))
            {
                headers.insert(VARY, value);
            }
        }
        None => {
            headers.insert(VARY, HeaderValue::from_static(ACCEPT));
        }
    }
}

/// The filter on one connection.
#[derive(Clone)]
pub struct CompressorFilter<S> {
    inner: S,
    compression: Arc<Compression>,
}

impl<S> CompressorFilter<S> {
    pub fn new(inner: S, compression: Arc<Compression>) -> Self {
        Self { inner, compression }
    }
}

impl<S: Next + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for CompressorFilter<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let compression = self.compression.clone();
        // The route's `CompressorPerRoute` for this filter, if any.
        let per_route = request
            .extensions()
            .get::<super::connection_manager::Matched>()
            .and_then(|m| {
                let (_, _, route) = m.route()?;
                route
                    .compressors
                    .iter()
                    .find(|c| c.filter_name == compression.config.filter_name)
                    .cloned()
            });
        let enabled = per_route.as_ref().and_then(|c| c.enabled).unwrap_or(true);
        let remove_accept_encoding = per_route
            .as_ref()
            .and_then(|c| c.remove_accept_encoding_header)
            .unwrap_or(compression.config.remove_accept_encoding_header);
        let accept_encoding = request
            .headers()
            .get(ACCEPT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if enabled && remove_accept_encoding {
            request.headers_mut().remove(ACCEPT_ENCODING);
        }
        let head = request.method() == http::Method::HEAD;
        Box::pin(self.inner.call(request).map(move |result| {
            let Ok(response) = result;
            // A reply made by a filter before this one: in Envoy this filter's request side never ran.
            let decoded = response
                .extensions()
                .get::<LocalReplyAt>()
                .is_none_or(|at| at.0 > compression.index);
            let accept_encoding = if decoded {
                compression.stats.request_not_compressed.inc();
                accept_encoding.as_deref()
            } else {
                None
            };
            Ok(compression.encode(response, accept_encoding, head, enabled))
        }))
    }
}
