//! The protobuf descriptors of Envoy's v3 API, for reflection over YAML, JSON and `Any` payloads.

use prost_reflect::{DescriptorPool, MessageDescriptor};
use std::sync::OnceLock;

/// Descriptors of every Envoy API file the `envoy-types` crate was generated from (see `build.rs`).
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The shared pool. The bytes were produced by our own build script, so a decode failure is a build defect,
/// reported as an error rather than a panic.
pub fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTOR_SET)
            .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The descriptor of a message by its full protobuf name (`envoy.config.cluster.v3.Cluster`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, String> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("built-in Envoy descriptors lack {full_name}"))
}
