//! `envoy.filters.http.decompressor` and `envoy.filters.http.grpc_http1_bridge`.

use serde::Serialize;

/// `envoy.filters.http.decompressor`: request and response bodies whose `content-encoding` starts with the
/// library's encoding are decoded on their way through.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decompressor {
    /// `decompressor_library.name`: the statistics' scope, `http.<prefix>.decompressor.<name>.<library>.*`, and
    /// the trailers' names, `x-envoy-decompressor-<name>-{compressed,uncompressed}-bytes`.
    pub name: String,
    pub library: DecompressorLibrary,
    /// `request_direction_config.common_config`.
    pub request: DecompressionDirection,
    /// `response_direction_config.common_config`.
    pub response: DecompressionDirection,
    /// Envoy's default: true. While the response direction is enabled, the library's encoding is added to the
    /// request's `accept-encoding`.
    pub advertise_accept_encoding: bool,
}

/// One direction's `CommonDirectionConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DecompressionDirection {
    /// `enabled.default_value`; Envoy's default: true. (A `runtime_key` has no runtime layer to read here.)
    pub enabled: bool,
    /// Envoy's default: false (a `cache-control: no-transform` message is left encoded).
    pub ignore_no_transform_header: bool,
}

impl Default for DecompressionDirection {
    fn default() -> Self {
        Self {
            enabled: true,
            ignore_no_transform_header: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecompressorLibrary {
    Gzip {
        /// Envoy's default: 15 (9 to 15): the largest window the decoder accepts.
        window_bits: u32,
        /// Envoy's default: 4096: the output piece the ratio is checked after.
        chunk_size: u32,
        /// Envoy's default: 100. One read of input inflating past this many times its size stops decoding
        /// (`zlib_data_error`).
        max_inflate_ratio: u32,
    },
    Brotli {
        /// Envoy's default: 4096.
        chunk_size: u32,
    },
    Zstd {
        /// Envoy's default: 4096.
        chunk_size: u32,
    },
}

impl DecompressorLibrary {
    /// The `content-encoding` token.
    pub fn encoding(&self) -> &'static str {
        match self {
            DecompressorLibrary::Gzip { .. } => "gzip",
            DecompressorLibrary::Brotli { .. } => "br",
            DecompressorLibrary::Zstd { .. } => "zstd",
        }
    }

    /// The statistics' name of the library.
    pub fn stats_name(&self) -> &'static str {
        match self {
            DecompressorLibrary::Gzip { .. } => "gzip",
            DecompressorLibrary::Brotli { .. } => "brotli",
            DecompressorLibrary::Zstd { .. } => "zstd",
        }
    }
}

/// `envoy.filters.http.grpc_http1_bridge`: a gRPC request over HTTP/1.x gets its response buffered and its
/// trailers (`grpc-status`, `grpc-message`) as headers, a non-zero status as HTTP 503.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrpcHttp1Bridge {
    /// Envoy's default: false. `application/x-protobuf` requests become framed gRPC, and their responses plain
    /// protobuf again.
    pub upgrade_protobuf_to_grpc: bool,
    /// Envoy's default: false. With the upgrade, a request with a query string is upgraded too.
    pub ignore_query_parameters: bool,
}
