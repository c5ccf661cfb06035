//! The protobuf descriptors of Envoy's v3 API, for reflection over YAML, JSON and `Any` payloads.

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// Descriptors of every Envoy API file the `envoy-types` crate was generated from (see `build.rs`).
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The pool, decoded anew: decoded it takes about 16 MB, which a running proxy should not keep once its
/// configuration is loaded, so it lives only as long as the descriptors taken from it. The bytes were produced
/// by our own build script, so a decode failure is a build defect, reported as an error rather than a panic.
pub fn pool() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(DESCRIPTOR_SET)
        .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))
}

/// The descriptor of a message by its full protobuf name (`envoy.config.cluster.v3.Cluster`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, String> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("built-in Envoy descriptors lack {full_name}"))
}
