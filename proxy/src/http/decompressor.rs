//! `envoy.filters.http.decompressor`: request and response bodies decoded on their way through, as Envoy 1.40
//! does it (checked with real Envoy, `tests/envoy_http_filters.rs`):
//! - a message is decoded when its direction is enabled, it has a body, no `cache-control: no-transform` (unless
//!   `ignore_no_transform_header`), and the first token of its `content-encoding` is the library's encoding (any
//!   case); that token leaves `content-encoding` (the header goes when it was the only one), and so does
//!   `content-length`. Each message with a body counts `decompressed` or `not_decompressed`, a body-less one
//!   neither;
//! - while the response direction is enabled and `advertise_accept_encoding` holds, the request's
//!   `accept-encoding` gains the encoding: its other tokens kept (trimmed, joined by `,`), the same token
//!   (case-sensitive, whatever its q-value) dropped, the encoding last;
//! - the decoders and their limits are in `decompressor/inflate.rs`, the byte counts and trailers in
//!   `decompressor/body.rs` (the trailers' names are the process's first decompressor's, `TRAILER_NAMES`); the
//!   libraries' statistics appear with the first decoder, as Envoy creates them.
//!
//! The filter runs at its place in the chain. A local reply made by a filter before it still passes its response
//! side in Envoy (counted `not_decompressed`); `filter_chain.rs` wraps the chain with `LocalReplies` for that.

mod body;
mod inflate;
#[cfg(test)]
mod tests;

use super::filter_service::{BoxFuture, Next};
use super::local_reply::{LocalReplyAt, ResponseBody};
use crate::metrics::Metrics;
use crate::upstream::UpstreamBody;
use body::{Decompressed, Tally};
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use inflate::{Inflater, LibraryStats};
use outrigger_config::model::http::{
    DecompressionDirection, Decompressor, DecompressorLibrary, HttpFilter,
};
use prometheus_client::metrics::counter::Counter;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

/// The byte-count trailers' names of every decompressor in the process: Envoy 1.40 builds them once, in a
/// function-local static, from the first decompressor filter that a stream creates, and every decompressor uses
/// those names from then on (checked with two decompressors in one chain, `tests/envoy_http_filters/`).
static TRAILER_NAMES: OnceLock<Arc<(HeaderName, HeaderName)>> = OnceLock::new();

/// One decompressor filter config at run time, shared by every connection of its connection manager.
pub struct Decompression {
    config: Decompressor,
    /// Its place in the connection manager's `http_filters`.
    pub index: usize,
    request: DirectionStats,
    response: DirectionStats,
    /// Made with the first decoder (Envoy shows them from then on).
    library: OnceLock<LibraryStats>,
    library_scope: (String, String),
    families: crate::metrics::filters::Families,
    trailer_names: Arc<(HeaderName, HeaderName)>,
}

struct DirectionStats {
    decompressed: Counter,
    not_decompressed: Counter,
    total_compressed_bytes: Counter,
    total_uncompressed_bytes: Counter,
}

impl DirectionStats {
    fn new(metrics: &Metrics, prefix: &str, scope: &str) -> Self {
        let counter = |name: &str| metrics.filters.decompressor_counter(prefix, scope, name);
        Self {
            decompressed: counter("decompressed"),
            not_decompressed: counter("not_decompressed"),
            total_compressed_bytes: counter("total_compressed_bytes"),
            total_uncompressed_bytes: counter("total_uncompressed_bytes"),
        }
    }
}

/// The decompressors of a connection manager's filters, in chain order.
pub fn build(
    filters: &[HttpFilter],
    metrics: &Metrics,
    stat_prefix: &str,
) -> Vec<Arc<Decompression>> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(index, f)| match f {
            HttpFilter::Decompressor(d) => {
                Some(Arc::new(Decompression::new(d, index, metrics, stat_prefix)))
            }
            _ => None,
        })
        .collect()
}

impl Decompression {
    fn new(config: &Decompressor, index: usize, metrics: &Metrics, prefix: &str) -> Self {
        let scope = format!("{}.{}", config.name, config.library.stats_name());
        // Envoy's trailer names come from the library's name as written; a name no header can carry gets none.
        let trailer = |kind: &str| {
            HeaderName::from_bytes(
                format!("x-envoy-decompressor-{}-{kind}-bytes", config.name)
                    .to_ascii_lowercase()
                    .as_bytes(),
            )
            .unwrap_or_else(|_| HeaderName::from_static("x-envoy-decompressor-bytes"))
        };
        Self {
            request: DirectionStats::new(metrics, prefix, &format!("{scope}.request")),
            response: DirectionStats::new(metrics, prefix, &format!("{scope}.response")),
            library: OnceLock::new(),
            library_scope: (prefix.to_string(), format!("{scope}.decompressor_library")),
            families: metrics.filters.clone(),
            trailer_names: Arc::new((trailer("compressed"), trailer("uncompressed"))),
            config: config.clone(),
            index,
        }
    }

    fn encoding(&self) -> &'static str {
        self.config.library.encoding()
    }

    /// The library's statistics, all created together on first use (as Envoy's decoder factory does).
    fn library_stats(&self) -> LibraryStats {
        self.library
            .get_or_init(|| {
                let (prefix, scope) = &self.library_scope;
                let f = &self.families;
                let names: &[&str] = match self.config.library {
                    DecompressorLibrary::Gzip { .. } => &[
                        "zlib_errno",
                        "zlib_stream_error",
                        "zlib_data_error",
                        "zlib_mem_error",
                        "zlib_buf_error",
                        "zlib_version_error",
                    ],
                    DecompressorLibrary::Brotli { .. } => &[
                        "brotli_error",
                        "brotli_output_overflow",
                        "brotli_redundant_input",
                    ],
                    DecompressorLibrary::Zstd { .. } => &[
                        "zstd_generic_error",
                        "zstd_dictionary_error",
                        "zstd_checksum_wrong_error",
                        "zstd_memory_error",
                    ],
                };
                let mut stats = LibraryStats::default();
                for name in names {
                    let counter = f.decompressor_counter(prefix, scope, name);
                    match *name {
                        "zlib_data_error" => stats.zlib_data_error = counter,
                        "brotli_error" => stats.brotli_error = counter,
                        "brotli_output_overflow" => stats.brotli_output_overflow = counter,
                        "brotli_redundant_input" => stats.brotli_redundant_input = counter,
                        "zstd_generic_error" => stats.zstd_generic_error = counter,
                        _ => {}
                    }
                }
                stats
            })
            .clone()
    }

    fn inflater(&self) -> Inflater {
        match self.config.library {
            DecompressorLibrary::Gzip {
                window_bits,
                chunk_size,
                max_inflate_ratio,
            } => Inflater::gzip(window_bits, chunk_size, max_inflate_ratio),
            DecompressorLibrary::Brotli { chunk_size } => Inflater::brotli(chunk_size),
            DecompressorLibrary::Zstd { chunk_size } => Inflater::zstd(chunk_size),
        }
    }

    /// Envoy's `maybeInitDecompress` for a message with a body: whether to decode it, its headers updated if so.
    fn start(
        &self,
        headers: &mut HeaderMap,
        direction: DecompressionDirection,
        stats: &DirectionStats,
    ) -> Option<Tally> {
        let decode = direction.enabled
            && (direction.ignore_no_transform_header || !no_transform(headers))
            && first_coding_is(headers, self.encoding());
        if !decode {
            stats.not_decompressed.inc();
            return None;
        }
        stats.decompressed.inc();
        headers.remove(CONTENT_LENGTH);
        drop_first_coding(headers);
        Some(Tally {
            compressed: stats.total_compressed_bytes.clone(),
            uncompressed: stats.total_uncompressed_bytes.clone(),
            library: self.library_stats(),
            trailer_names: TRAILER_NAMES
                .get_or_init(|| self.trailer_names.clone())
                .clone(),
        })
    }

    /// The request side: `accept-encoding` advertised, the body decoded when it qualifies.
    fn decode(&self, request: Request<UpstreamBody>) -> Request<UpstreamBody> {
        let (mut parts, body) = request.into_parts();
        if self.config.response.enabled && self.config.advertise_accept_encoding {
            advertise(&mut parts.headers, self.encoding());
        }
        if body.is_end_stream() {
            return Request::from_parts(parts, body);
        }
        match self.start(&mut parts.headers, self.config.request, &self.request) {
            Some(tally) => {
                let body = Decompressed::new(body, self.inflater(), tally).boxed();
                Request::from_parts(parts, body)
            }
            None => Request::from_parts(parts, body),
        }
    }

    /// The response side.
    pub fn encode(&self, response: Response<ResponseBody>, head: bool) -> Response<ResponseBody> {
        if head || response.body().is_end_stream() {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        match self.start(&mut parts.headers, self.config.response, &self.response) {
            Some(tally) => {
                let body = Decompressed::new(body, self.inflater(), tally).boxed();
                Response::from_parts(parts, body)
            }
            None => Response::from_parts(parts, body),
        }
    }
}

/// `cache-control` holding `no-transform` (any case).
fn no_transform(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("no-transform"))
    })
}

fn content_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Whether the first `content-encoding` token is `encoding` (any case, spaces ignored).
fn first_coding_is(headers: &HeaderMap, encoding: &str) -> bool {
    content_encoding(headers).is_some_and(|value| {
        let first = value.split(',').next().unwrap_or_default().trim();
        first.eq_ignore_ascii_case(encoding)
    })
}

/// The first `content-encoding` token removed: the header keeps the rest (trimmed), or goes.
fn drop_first_coding(headers: &mut HeaderMap) {
    let Some(value) = content_encoding(headers) else {
        return;
    };
    let all = value.trim();
    let rest = all.split_once(',').map(|(_, rest)| rest.trim());
    match rest.and_then(|rest| HeaderValue::from_str(rest).ok()) {
        Some(rest) => {
            headers.insert(CONTENT_ENCODING, rest);
        }
        None => {
            headers.remove(CONTENT_ENCODING);
        }
    }
}

/// Envoy's `addEncodingToAcceptEncoding`: the other tokens (trimmed, empty ones dropped, every value of the
/// header), then `encoding`.
fn advertise(headers: &mut HeaderMap, encoding: &str) {
    let mut tokens: Vec<String> = Vec::new();
    for value in headers.get_all(ACCEPT_ENCODING) {
        for token in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let token = token.trim();
            let coding = token.split(';').next().unwrap_or_default().trim();
            if token.is_empty() || coding == encoding {
                continue;
            }
            tokens.push(token.to_string());
        }
    }
    tokens.push(encoding.to_string());
    if let Ok(value) = HeaderValue::from_str(&tokens.join(",")) {
        headers.insert(ACCEPT_ENCODING, value);
    }
}

/// The filter on one connection, at its place in the chain.
#[derive(Clone)]
pub struct DecompressorFilter<S> {
    inner: S,
    decompression: Arc<Decompression>,
}

impl<S> DecompressorFilter<S> {
    pub fn new(inner: S, decompression: Arc<Decompression>) -> Self {
        Self {
            inner,
            decompression,
        }
    }
}

impl<S: Next + Send + 'static> tower_service::Service<Request<UpstreamBody>>
    for DecompressorFilter<S>
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let decompression = self.decompression.clone();
        // A stream creates its decompressors in chain order, which this call follows.
        TRAILER_NAMES.get_or_init(|| decompression.trailer_names.clone());
        let head = request.method() == http::Method::HEAD;
        let request = decompression.decode(request);
        Box::pin(self.inner.call(request).map(move |result| {
            let Ok(response) = result;
            Ok(decompression.encode(response, head))
        }))
    }
}

/// Outside the chain (inside the compressors): the response side of every decompressor for a local reply made
/// by a filter before it, which in Envoy still passes every encoder.
#[derive(Clone)]
pub struct LocalReplies<S> {
    inner: S,
    decompressions: Arc<[Arc<Decompression>]>,
}

impl<S> LocalReplies<S> {
    pub fn new(inner: S, decompressions: Arc<[Arc<Decompression>]>) -> Self {
        Self {
            inner,
            decompressions,
        }
    }
}

impl<S: Next + Send + 'static> tower_service::Service<Request<UpstreamBody>> for LocalReplies<S> {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<UpstreamBody>) -> Self::Future {
        use futures_util::FutureExt;
        let decompressions = self.decompressions.clone();
        let head = request.method() == http::Method::HEAD;
        Box::pin(self.inner.call(request).map(move |result| {
            let Ok(mut response) = result;
            let at = response.extensions().get::<LocalReplyAt>().map(|at| at.0);
            if let Some(at) = at {
                // Those after the filter that replied never saw the reply; encoders run from the last filter
                // to the first.
                for d in decompressions.iter().rev().filter(|d| d.index > at) {
                    response = d.encode(response, head);
                }
            }
            Ok(response)
        }))
    }
}
