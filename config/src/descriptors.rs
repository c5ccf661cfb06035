//! The protobuf descriptors of Envoy's v3 API, for reflection over YAML, JSON and `Any` payloads.

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// Descriptors of every Envoy API file the `envoy-types` crate was generated from (see `build.rs`).
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The pool, decoded anew: decoded it takes about 16 MB, which a running proxy should not keep once its
/// configuration is loaded, so it lives only as long as the descriptors taken from it. The bytes were produced
/// by our own build script, so a decode failure is a build defect, reported as an error rather than a panic.
pub fn pool() -> Result<DescriptorPool, String> {
    if let Some(kept) = KEPT.get() {
        return Ok(kept.clone());
    }
    DescriptorPool::decode(DESCRIPTOR_SET)
        .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))
}

/// Set only by the fuzz targets (`crate::fuzzing::keep_descriptors`): one decoded pool shared by every load,
/// so a load costs what its input costs rather than the 16 MB decode. The proxy never sets it.
static KEPT: std::sync::OnceLock<DescriptorPool> = std::sync::OnceLock::new();

/// Decodes the pool once and keeps it for the life of the process.
pub fn keep() -> Result<(), String> {
    let pool = DescriptorPool::decode(DESCRIPTOR_SET)
        .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))?;
    let _ = KEPT.set(pool);
    Ok(())
}

/// The descriptor of a message by its full protobuf name (`envoy.config.cluster.v3.Cluster`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, String> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("built-in Envoy descriptors lack {full_name}"))
}
