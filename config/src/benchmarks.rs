//! What the micro-benchmarks (`benches/benches/convert.rs`) measure that no public API isolates. Not an API: it
//! may change with the benchmarks.

/// Decodes the core of Envoy's descriptors, as every load of a configuration or an xDS response does, and
/// returns how many messages it holds.
pub fn decode_core_descriptors() -> Result<usize, String> {
    crate::descriptors::core_pool().map(|pool| pool.all_messages().count())
}
