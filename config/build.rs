//! Provides the protobuf descriptor set that the YAML/JSON loader reflects over.
//!
//! The `envoy-types` package ships the descriptor set its Rust types were generated from
//! (`src/generated/types.bin`), so the descriptors and the generated structs always agree. We find that package
//! through `cargo metadata` instead of copying any third-party file into this repository, and drop the source
//! comments from it to keep the binary small.
//!
//! The set is split in two, by file: the "core" files (those defining the messages the loader starts from, the
//! `typed_config` types it implements, and everything they import) and the rest. Decoded, the whole set takes
//! about 16 MB and most of the start-up time; the core is what every config that names only implemented types
//! needs, and the rest is decoded on top of it only when a config names another type (see `descriptors.rs`).

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Messages the loader parses documents into, besides the `typed_config` types of the support table.
const TOP_LEVEL_MESSAGES: &[&str] = &[
    "envoy.config.bootstrap.v3.Bootstrap",
    "envoy.service.discovery.v3.DiscoveryResponse",
    "envoy.config.listener.v3.Listener",
    "envoy.config.cluster.v3.Cluster",
    "envoy.config.route.v3.RouteConfiguration",
    "envoy.config.endpoint.v3.ClusterLoadAssignment",
    "envoy.extensions.transport_sockets.tls.v3.Secret",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    let package_dir = envoy_types_dir()?;
    let source = package_dir.join("src/generated/types.bin");
    println!("cargo:rerun-if-changed={}", source.display());
    // A dynamic message keeps the custom options (`validate.rules` and friends) as unknown fields; decoding
    // into `prost_types` would drop them.
    let set_descriptor = DescriptorPool::global()
        .get_message_by_name("google.protobuf.FileDescriptorSet")
        .ok_or("no FileDescriptorSet descriptor")?;
    let mut set = DynamicMessage::decode(set_descriptor, std::fs::read(&source)?.as_slice())?;
    if let Some(Value::List(files)) = set.get_field_by_name_mut("file") {
        for file in files {
            if let Value::Message(file) = file {
                file.clear_field_by_name("source_code_info");
            }
        }
    }
    let support_table = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("src/support.rs");
    println!("cargo:rerun-if-changed={}", support_table.display());
    let mut roots = supported_types(&std::fs::read_to_string(&support_table)?)?;
    roots.extend(TOP_LEVEL_MESSAGES.iter().map(|s| s.to_string()));
    let (core, rest) = split(&set, &roots)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("envoy_descriptors_core.bin"), core)?;
    std::fs::write(out.join("envoy_descriptors_rest.bin"), rest)?;
    Ok(())
}

/// The strings of `SUPPORTED_TYPES` in the support table's source. A unit test (`descriptors.rs`) checks that
/// every type of the table, and every message it lists, is in the core set, so a change this misses fails there.
fn supported_types(source: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let start = source
        .find("pub const SUPPORTED_TYPES: &[&str] = &[")
        .ok_or("support.rs: no SUPPORTED_TYPES")?;
    let body = &source[start..];
    let end = body
        .find("];")
        .ok_or("support.rs: SUPPORTED_TYPES is not closed")?;
    let types: Vec<String> = body[..end]
        .lines()
        .skip(1)
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix('"')?;
            Some(line.split('"').next()?.to_string())
        })
        .collect();
    if types.is_empty() {
        return Err("support.rs: SUPPORTED_TYPES is empty".into());
    }
    Ok(types)
}

/// Splits the set into the files `roots` need (their own and every file they import, transitively) and the
/// others, both encoded as file descriptor sets in the original order (which already lists imports first).
fn split(
    set: &DynamicMessage,
    roots: &[String],
) -> Result<(Vec<u8>, Vec<u8>), Box<dyn std::error::Error>> {
    let files: Vec<DynamicMessage> = match set.get_field_by_name("file").as_deref() {
        Some(Value::List(files)) => files
            .iter()
            .filter_map(|f| f.as_message().cloned())
            .collect(),
        _ => return Err("the descriptor set has no files".into()),
    };
    let mut file_of_message = HashMap::new();
    let mut imports = HashMap::new();
    for file in &files {
        let name = string_field(file, "name");
        let package = string_field(file, "package");
        for message in messages(file) {
            collect_message_names(&message, &package, &name, &mut file_of_message);
        }
        imports.insert(name, strings_field(file, "dependency"));
    }
    let mut needed = BTreeSet::new();
    let mut todo: Vec<String> = Vec::new();
    for root in roots {
        let file = file_of_message
            .get(root.as_str())
            .ok_or_else(|| format!("no message {root} in the Envoy descriptors"))?;
        todo.push(file.clone());
    }
    while let Some(file) = todo.pop() {
        if needed.insert(file.clone()) {
            todo.extend(imports.get(&file).cloned().unwrap_or_default());
        }
    }
    let encode = |keep: bool| {
        let mut out = set.clone();
        let chosen: Vec<Value> = files
            .iter()
            .filter(|f| needed.contains(&string_field(f, "name")) == keep)
            .map(|f| Value::Message(f.clone()))
            .collect();
        out.set_field_by_name("file", Value::List(chosen));
        out.encode_to_vec()
    };
    Ok((encode(true), encode(false)))
}

fn collect_message_names(
    message: &DynamicMessage,
    scope: &str,
    file: &str,
    out: &mut HashMap<String, String>,
) {
    let name = string_field(message, "name");
    let full = if scope.is_empty() {
        name
    } else {
        format!("{scope}.{name}")
    };
    if let Some(Value::List(nested)) = message.get_field_by_name("nested_type").as_deref() {
        for inner in nested.iter().filter_map(Value::as_message) {
            collect_message_names(inner, &full, file, out);
        }
    }
    out.insert(full, file.to_string());
}

fn messages(file: &DynamicMessage) -> Vec<DynamicMessage> {
    match file.get_field_by_name("message_type").as_deref() {
        Some(Value::List(list)) => list
            .iter()
            .filter_map(|m| m.as_message().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn strings_field(message: &DynamicMessage, name: &str) -> Vec<String> {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::List(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The folder of the `envoy-types` package this build resolved.
fn envoy_types_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let target = std::env::var("TARGET")?;
    let metadata = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &target,
            "--manifest-path",
        ]);
        cmd.arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output()
    };
    // Offline first: it is fast and enough once dev-dependencies are downloaded too. A plain `cargo build`
    // has not downloaded them, and then only an online resolution can answer.
    let mut output = metadata(true)?;
    if !output.status.success() {
        output = metadata(false)?;
    }
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    for package in packages {
        if package["name"] == "envoy-types" {
            let manifest_path = package["manifest_path"]
                .as_str()
                .ok_or("envoy-types: no manifest_path")?;
            let dir = Path::new(manifest_path)
                .parent()
                .ok_or("envoy-types: bad manifest_path")?;
            return Ok(dir.to_path_buf());
        }
    }
    Err("the envoy-types package was not found by cargo metadata".into())
}
