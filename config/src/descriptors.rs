//! The protobuf descriptors of Envoy's v3 API, for reflection over YAML, JSON and `Any` payloads.
//!
//! They come in two sets (see `build.rs`): the core, which holds every message the loader parses documents
//! into and every `typed_config` type Outrigger implements, with every message and enum their fields name
//! (each exactly as in Envoy's API, but for options other than the `validate` rules, which nothing reads); and
//! the whole of Envoy's API. Decoding everything takes about 16 MB and most of the start-up time, so a document
//! that names only types of the core is read with the core alone. One that names any other type (an extension
//! Outrigger refuses, or a misspelt one) is read with the whole API, exactly as before the core existed: the
//! same type errors, the same field errors inside the unsupported payload, in the same order.

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// The core, decoded on every load (see `build.rs`).
const CORE_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors_core.bin"));

/// The whole Envoy API, decoded instead of the core when a document needs it.
const ALL_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors_all.bin"));

/// The core pool, decoded anew: it lives only as long as the descriptors taken from it, so a running proxy does
/// not keep it once its configuration is loaded. The bytes were produced by our own build script, so a decode
/// failure is a build defect, reported as an error rather than a panic.
pub fn core_pool() -> Result<DescriptorPool, String> {
    if let Some(kept) = KEPT.get() {
        return Ok(kept.clone());
    }
    DescriptorPool::decode(CORE_SET)
        .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))
}

/// Every Envoy message.
pub fn pool() -> Result<DescriptorPool, String> {
    if let Some(kept) = KEPT.get() {
        return Ok(kept.clone());
    }
    whole_pool()
}

fn whole_pool() -> Result<DescriptorPool, String> {
    DescriptorPool::decode(ALL_SET)
        .map_err(|e| format!("built-in Envoy descriptors are unreadable: {e}"))
}

/// Set only by the fuzz targets (`crate::fuzzing::keep_descriptors`): the whole pool decoded once and shared by
/// every load (then also standing in for the core: it holds every core message), so a load costs what its
/// input costs rather than the decode. The proxy never sets it.
static KEPT: std::sync::OnceLock<DescriptorPool> = std::sync::OnceLock::new();

/// Decodes the whole pool once and keeps it for the life of the process.
pub fn keep() -> Result<(), String> {
    let _ = KEPT.set(whole_pool()?);
    Ok(())
}

/// The descriptor of a message by its full protobuf name (`envoy.config.cluster.v3.Cluster`), from the core
/// when it is there.
#[cfg(test)]
pub fn message(full_name: &str) -> Result<MessageDescriptor, String> {
    if let Some(found) = core_pool()?.get_message_by_name(full_name) {
        return Ok(found);
    }
    lookup(&pool()?, full_name)
}

/// The descriptor of `full_name` to read `document` with: from the core pool when every `"@type"` in the
/// document names a message of the core, else from the whole API.
pub fn message_for_document(
    full_name: &str,
    document: &serde_json::Value,
) -> Result<MessageDescriptor, String> {
    let core = core_pool()?;
    if core.get_message_by_name(full_name).is_some() && only_core_types(document, &core) {
        return lookup(&core, full_name);
    }
    lookup(&pool()?, full_name)
}

fn lookup(pool: &DescriptorPool, full_name: &str) -> Result<MessageDescriptor, String> {
    pool.get_message_by_name(full_name)
        .ok_or_else(|| format!("built-in Envoy descriptors lack {full_name}"))
}

/// Whether every `"@type"` key below `value` names a message of `core`, the way the JSON reader resolves a type
/// URL (the part after the last `/`). Any doubt (a `"@type"` that is not a string, a URL without `/`) answers
/// no, so the whole API reads the document and reports what it always did.
fn only_core_types(value: &serde_json::Value, core: &DescriptorPool) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            let this = match map.get("@type") {
                None => true,
                Some(serde_json::Value::String(url)) => url
                    .rsplit_once('/')
                    .is_some_and(|(_, name)| core.get_message_by_name(name).is_some()),
                Some(_) => false,
            };
            this && map.values().all(|v| only_core_types(v, core))
        }
        serde_json::Value::Array(items) => items.iter().all(|v| only_core_types(v, core)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::{SUPPORTED_TYPES, messages, proxyless_messages};

    /// The split must not change what a supported config reads: every type the loader starts from or
    /// implements, and every message of the support table, is in the core.
    #[test]
    fn the_core_holds_every_message_the_loader_reads() {
        let core = core_pool().unwrap();
        let listed = messages()
            .chain(proxyless_messages())
            .map(|entry| entry.message);
        for name in SUPPORTED_TYPES.iter().copied().chain(listed) {
            assert!(
                core.get_message_by_name(name).is_some(),
                "{name} is not in the core descriptors"
            );
        }
        for name in [
            "envoy.config.bootstrap.v3.Bootstrap",
            "envoy.service.discovery.v3.DiscoveryResponse",
            "google.protobuf.Struct",
        ] {
            assert!(core.get_message_by_name(name).is_some(), "{name}");
        }
        assert!(core.get_extension_by_name("validate.rules").is_some());
    }

    /// Pruning keeps messages whole: every message of the core has the fields, oneofs, nested enums and
    /// `validate` rules it has in the whole API, so reading a document with either gives the same result.
    #[test]
    fn each_core_message_is_as_in_the_whole_api() {
        let core = core_pool().unwrap();
        let all = pool().unwrap();
        let rules = |pool: &DescriptorPool, options: prost_reflect::DynamicMessage| {
            let rules = pool.get_extension_by_name("validate.rules").unwrap();
            options.has_extension(&rules).then(|| {
                let value = options.get_extension(&rules);
                value.as_message().map(prost::Message::encode_to_vec)
            })
        };
        for message in core.all_messages() {
            let whole = all.get_message_by_name(message.full_name()).unwrap();
            let shape = |m: &MessageDescriptor| {
                m.fields()
                    .map(|f| {
                        let kind = match f.kind() {
                            prost_reflect::Kind::Message(m) => m.full_name().to_string(),
                            prost_reflect::Kind::Enum(e) => e.full_name().to_string(),
                            other => format!("{other:?}"),
                        };
                        let oneof = f.containing_oneof().map(|o| o.name().to_string());
                        let name = (f.name().to_string(), f.json_name().to_string());
                        (
                            f.number(),
                            name,
                            kind,
                            f.cardinality(),
                            f.is_packed(),
                            oneof,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(shape(&message), shape(&whole), "{}", message.full_name());
            for (field, whole_field) in message.fields().zip(whole.fields()) {
                assert_eq!(
                    rules(&core, field.options()),
                    rules(&all, whole_field.options()),
                    "{}",
                    field.full_name()
                );
            }
        }
        for enumeration in core.all_enums() {
            let whole = all.get_enum_by_name(enumeration.full_name()).unwrap();
            let values = |e: &prost_reflect::EnumDescriptor| {
                e.values()
                    .map(|v| (v.number(), v.name().to_string()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&enumeration), values(&whole));
        }
    }

    /// The core is smaller than the whole, and the whole still has the extensions Outrigger refuses by name.
    #[test]
    fn the_whole_api_holds_the_extensions_outrigger_does_not_implement() {
        let core = core_pool().unwrap();
        let all = pool().unwrap();
        const LUA: &str = "envoy.extensions.filters.http.lua.v3.Lua";
        assert!(core.get_message_by_name(LUA).is_none());
        assert!(all.get_message_by_name(LUA).is_some());
        assert!(all.all_messages().count() > 2 * core.all_messages().count());
    }

    #[test]
    fn a_document_naming_a_type_outside_the_core_is_read_with_the_whole_api() {
        const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";
        let core_only = serde_json::json!({"x": [{"typed_config": {"@type":
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]});
        let lua = serde_json::json!({"x": [{"typed_config": {"@type":
            "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}}]});
        let no_slash =
            serde_json::json!({"@type": "envoy.extensions.filters.http.router.v3.Router"});
        let not_a_string = serde_json::json!({"@type": 7});
        let all_count = pool().unwrap().all_messages().count();
        let count = |doc: &serde_json::Value| {
            message_for_document(BOOTSTRAP, doc)
                .unwrap()
                .parent_pool()
                .all_messages()
                .count()
        };
        assert!(count(&core_only) < all_count);
        assert_eq!(count(&lua), all_count);
        assert_eq!(count(&no_slash), all_count);
        assert_eq!(count(&not_a_string), all_count);
    }
}
