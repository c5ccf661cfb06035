//! `envoy.filters.http.decompressor` (`Decompressor`) with a gzip, brotli or zstd `decompressor_library`, and
//! `envoy.filters.http.grpc_http1_bridge` (`Config`).

use super::super::{Out, bool_or, decode_any, type_name, u32_or};
use crate::diagnostic::Path;
use crate::model::http::{
    DecompressionDirection, Decompressor, DecompressorLibrary, GrpcHttp1Bridge,
};
use envoy_types::pb::envoy::extensions::compression::brotli::decompressor::v3 as brotli;
use envoy_types::pb::envoy::extensions::compression::gzip::decompressor::v3 as gzip;
use envoy_types::pb::envoy::extensions::compression::zstd::decompressor::v3 as zstd;
use envoy_types::pb::envoy::extensions::filters::http::decompressor::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::http::grpc_http1_bridge::v3 as bridge;

pub const GZIP: &str = "envoy.extensions.compression.gzip.decompressor.v3.Gzip";
pub const BROTLI: &str = "envoy.extensions.compression.brotli.decompressor.v3.Brotli";
pub const ZSTD: &str = "envoy.extensions.compression.zstd.decompressor.v3.Zstd";

pub fn decompressor(d: &pb::Decompressor, at: &Path, out: &mut Out) -> Option<Decompressor> {
    let library_at = at.field("decompressor_library");
    let Some(library) = &d.decompressor_library else {
        out.error(&library_at, "a decompressor needs its decompressor_library");
        return None;
    };
    let typed_at = library_at.field("typed_config");
    let Some(any) = &library.typed_config else {
        out.error(&typed_at, "a decompressor_library needs a typed_config");
        return None;
    };
    // Envoy's defaults: a 4096-byte output chunk, gzip's 15 window bits and an inflate ratio of 100.
    let library_config = match type_name(any) {
        GZIP => {
            decode_any::<gzip::Gzip>(any, &typed_at, out).map(|g| DecompressorLibrary::Gzip {
                window_bits: u32_or(&g.window_bits, 15),
                chunk_size: u32_or(&g.chunk_size, 4096),
                max_inflate_ratio: u32_or(&g.max_inflate_ratio, 100),
            })?
        }
        BROTLI => decode_any::<brotli::Brotli>(any, &typed_at, out).map(|b| {
            DecompressorLibrary::Brotli {
                chunk_size: u32_or(&b.chunk_size, 4096),
            }
        })?,
        ZSTD => {
            decode_any::<zstd::Zstd>(any, &typed_at, out).map(|z| DecompressorLibrary::Zstd {
                chunk_size: u32_or(&z.chunk_size, 4096),
            })?
        }
        other => {
            out.error(
                &typed_at,
                format!("decompressor library {other} is not supported; use gzip, brotli or zstd"),
            );
            return None;
        }
    };
    let direction = |common: Option<&pb::decompressor::CommonDirectionConfig>| {
        let Some(common) = common else {
            return DecompressionDirection::default();
        };
        DecompressionDirection {
            enabled: common
                .enabled
                .as_ref()
                .map(|flag| bool_or(&flag.default_value, true))
                .unwrap_or(true),
            ignore_no_transform_header: common.ignore_no_transform_header,
        }
    };
    let request = d.request_direction_config.as_ref();
    Some(Decompressor {
        name: library.name.clone(),
        library: library_config,
        request: direction(request.and_then(|r| r.common_config.as_ref())),
        response: direction(
            d.response_direction_config
                .as_ref()
                .and_then(|r| r.common_config.as_ref()),
        ),
        advertise_accept_encoding: bool_or(
            &request.and_then(|r| r.advertise_accept_encoding),
            true,
        ),
    })
}

pub fn grpc_http1_bridge(c: &bridge::Config) -> GrpcHttp1Bridge {
    GrpcHttp1Bridge {
        upgrade_protobuf_to_grpc: c.upgrade_protobuf_to_grpc,
        ignore_query_parameters: c.ignore_query_parameters,
    }
}
