//! The HTTP filters added for real-world configurations: `compressor`, `health_check`, `buffer`.

use super::super::route::HeaderMatcher;
use serde::Serialize;

/// `envoy.filters.http.compressor`: response bodies compressed by the encoding the client prefers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compressor {
    /// The filter's `name` in the chain: routes' `typed_per_filter_config` is keyed by it.
    pub filter_name: String,
    /// `compressor_library.name`: the statistics' scope, `http.<prefix>.compressor.<name>.<library>.*`.
    pub name: String,
    pub library: CompressorLibrary,
    /// Envoy's default: 30 bytes. A response with a smaller `content-length` is sent as it is.
    pub min_content_length: u64,
    /// Lower-cased; empty never happens (Envoy's default list applies when none is given).
    pub content_types: Vec<String>,
    /// Envoy's default: false (a strong ETag is removed from a compressed response, a weak one kept).
    pub disable_on_etag_header: bool,
    /// Envoy's default: false.
    pub remove_accept_encoding_header: bool,
    /// Whether `response_direction_config` was set: then the response statistics gain a `response.` scope.
    pub response_scope: bool,
    /// Envoy's default: false. Wins a tie of q-values against other compressors.
    pub choose_first: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressorLibrary {
    Gzip {
        /// 1 to 9; Envoy's default (`DEFAULT_COMPRESSION`) is zlib's 6.
        level: u32,
    },
    Brotli {
        /// Envoy's default: 3.
        quality: u32,
        /// Envoy's default: 18.
        window_bits: u32,
    },
    Zstd {
        /// Envoy's default: 3 (zstd's `ZSTD_CLEVEL_DEFAULT`).
        level: u32,
        /// Envoy's default: false. A content checksum ends each frame.
        checksum: bool,
        /// `strategy`: 0 (`DEFAULT`, the level's own) or zstd's `ZSTD_strategy` 1 to 9.
        strategy: u32,
    },
}

impl CompressorLibrary {
    /// The `content-encoding` token.
    pub fn encoding(&self) -> &'static str {
        match self {
            CompressorLibrary::Gzip { .. } => "gzip",
            CompressorLibrary::Brotli { .. } => "br",
            CompressorLibrary::Zstd { .. } => "zstd",
        }
    }

    /// The statistics' name of the library.
    pub fn stats_name(&self) -> &'static str {
        match self {
            CompressorLibrary::Gzip { .. } => "gzip",
            CompressorLibrary::Brotli { .. } => "brotli",
            CompressorLibrary::Zstd { .. } => "zstd",
        }
    }
}

/// Envoy's content types compressed when `content_type` is empty.
pub const DEFAULT_COMPRESSED_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
    "application/grpc-web",
    "application/grpc-web+proto",
];

/// `envoy.filters.http.health_check`: requests matching `headers` are health checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthCheck {
    /// false: the proxy answers (200, or 503 once `/healthcheck/fail` was posted); true: the request goes on
    /// upstream and only the failed state is answered by the proxy.
    pub pass_through_mode: bool,
    /// Every one must match (pseudo-headers `:path`, `:method`, `:authority`, `:scheme` included).
    pub headers: Vec<HeaderMatcher>,
}

/// `envoy.filters.http.buffer`: the whole request body is read before the request goes on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Buffer {
    /// Past it the request is answered 413.
    pub max_request_bytes: u32,
}

/// A route's `CompressorPerRoute` for one compressor filter (by the filter's name).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompressorRoute {
    pub filter_name: String,
    /// `disabled: true` is false; `overrides.response_direction_config` (even empty) is true.
    pub enabled: Option<bool>,
    pub remove_accept_encoding_header: Option<bool>,
}
