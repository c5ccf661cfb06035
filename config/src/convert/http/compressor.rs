//! `envoy.filters.http.compressor` (`Compressor`) with a gzip, brotli or zstd `compressor_library`. The encoder's
//! tuning knobs Outrigger does not pass on (gzip `memory_level`, `window_bits`, `compression_strategy`,
//! `chunk_size`; brotli `encoder_mode`, `input_block_bits`, `chunk_size`, `disable_literal_context_modeling`; zstd
//! `chunk_size`) are accepted with the support table's warning: they change the compressed bytes, never the body a
//! client decodes.

use super::super::{Out, decode_any, type_name, u32_or};
use crate::diagnostic::Path;
use crate::model::http::{Compressor, CompressorLibrary, DEFAULT_COMPRESSED_TYPES};
use envoy_types::pb::envoy::extensions::compression::brotli::compressor::v3 as brotli;
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3 as gzip;
use envoy_types::pb::envoy::extensions::compression::zstd::compressor::v3 as zstd;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3 as pb;

pub const GZIP: &str = "envoy.extensions.compression.gzip.compressor.v3.Gzip";
pub const BROTLI: &str = "envoy.extensions.compression.brotli.compressor.v3.Brotli";
pub const ZSTD: &str = "envoy.extensions.compression.zstd.compressor.v3.Zstd";

pub fn compressor(c: &pb::Compressor, at: &Path, out: &mut Out) -> Option<Compressor> {
    let library_at = at.field("compressor_library");
    let Some(library) = &c.compressor_library else {
        out.error(&library_at, "a compressor needs its compressor_library");
        return None;
    };
    let Some(any) = &library.typed_config else {
        out.error(
            &library_at.field("typed_config"),
            "a compressor_library needs a typed_config",
        );
        return None;
    };
    let typed_at = library_at.field("typed_config");
    let library_config = match type_name(any) {
        GZIP => decode_any::<gzip::Gzip>(any, &typed_at, out).map(|g| {
            // DEFAULT_COMPRESSION (0) is zlib's level 6; the others name their level.
            let level = u32::try_from(g.compression_level)
                .ok()
                .filter(|level| (1..=9).contains(level))
                .unwrap_or(6);
            CompressorLibrary::Gzip { level }
        })?,
        BROTLI => decode_any::<brotli::Brotli>(any, &typed_at, out).map(|b| {
            CompressorLibrary::Brotli {
                quality: u32_or(&b.quality, 3),
                window_bits: u32_or(&b.window_bits, 18),
            }
        })?,
        // Envoy's default level is zstd's own, 3; level 0 asks zstd for that default too.
        ZSTD => decode_any::<zstd::Zstd>(any, &typed_at, out).map(|z| CompressorLibrary::Zstd {
            level: u32_or(&z.compression_level, 3),
            checksum: z.enable_checksum,
            strategy: u32::try_from(z.strategy).unwrap_or(0),
        })?,
        other => {
            out.error(
                &typed_at,
                format!("compressor library {other} is not supported; use gzip, brotli or zstd"),
            );
            return None;
        }
    };
    // `response_direction_config`, when set, replaces the deprecated fields of the filter itself.
    let (common, disable_on_etag_header, remove_accept_encoding_header) =
        match &c.response_direction_config {
            Some(r) => (
                r.common_config.clone().unwrap_or_default(),
                r.disable_on_etag_header,
                r.remove_accept_encoding_header,
            ),
            None => (
                pb::compressor::CommonDirectionConfig {
                    min_content_length: c.content_length,
                    content_type: c.content_type.clone(),
                    ..Default::default()
                },
                c.disable_on_etag_header,
                c.remove_accept_encoding_header,
            ),
        };
    let content_types = if common.content_type.is_empty() {
        DEFAULT_COMPRESSED_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect()
    } else {
        common
            .content_type
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    // Envoy: 0 means the default.
    let min_content_length = match u32_or(&common.min_content_length, 0) {
        0 => 30,
        n => u64::from(n),
    };
    Some(Compressor {
        filter_name: String::new(),
        name: library.name.clone(),
        library: library_config,
        min_content_length,
        content_types,
        disable_on_etag_header,
        remove_accept_encoding_header,
        response_scope: c.response_direction_config.is_some(),
        choose_first: c.choose_first,
    })
}

pub const PER_ROUTE: &str = "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute";

/// A route's `CompressorPerRoute` for the filter named `filter_name`.
pub fn per_route(
    c: &pb::CompressorPerRoute,
    filter_name: &str,
    at: &Path,
    out: &mut Out,
) -> Option<crate::model::http::CompressorRoute> {
    use pb::compressor_per_route::Override;
    let (enabled, remove_accept_encoding_header) = match &c.r#override {
        Some(Override::Disabled(true)) => (Some(false), None),
        Some(Override::Disabled(false)) => (None, None),
        Some(Override::Overrides(o)) => match &o.response_direction_config {
            Some(r) => (
                Some(true),
                r.remove_accept_encoding_header.as_ref().map(|v| v.value),
            ),
            None => (None, None),
        },
        None => {
            out.error(at, "a CompressorPerRoute needs `disabled` or `overrides`");
            return None;
        }
    };
    Some(crate::model::http::CompressorRoute {
        filter_name: filter_name.to_string(),
        enabled,
        remove_accept_encoding_header,
    })
}
