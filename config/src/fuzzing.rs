//! What the fuzz targets (`tests/fuzz/`) call and no public API offers: the access-log format parser, which
//! otherwise runs only inside a whole configuration. Not an API: it may change with the targets.

use crate::model::access_log::Piece;

/// The pieces of an access-log format string (`%COMMAND(args):max%` between literal text), as the loader
/// parses `text_format`, `text_format_source.inline_string` and the strings of a `json_format`.
pub fn access_log_format(text: &str) -> Result<Vec<Piece>, String> {
    crate::convert::access_log::format::parse(text)
}

/// Keeps one decoded descriptor pool for every later load and conversion, instead of decoding the 16 MB pool
/// per call as the proxy does (it frees the memory between configurations; a fuzzer loads millions).
pub fn keep_descriptors() -> Result<(), String> {
    crate::descriptors::keep()
}
