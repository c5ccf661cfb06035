//! Provides the protobuf descriptor set that the YAML/JSON loader reflects over.
//!
//! The `envoy-types` package ships the descriptor set its Rust types were generated from
//! (`src/generated/types.bin`), so the descriptors and the generated structs always agree. We find that package
//! through `cargo metadata` instead of copying any third-party file into this repository, and drop the source
//! comments from it to keep the binary small.
//!
//! Two sets are embedded: the whole API, and a "core" that every load decodes (see `descriptors.rs`). The core
//! holds the messages the loader starts from and the `typed_config` types it implements, with every message
//! and enum their fields name, transitively (not whole files: a `Bootstrap` imports stats sinks, tracers and the
//! overload manager, most of which no field reaches), and keeps of the options only the `validate` rules the
//! loader checks. Decoded, the whole set takes about 16 MB and most of the start-up time; a config that names
//! only types of the core is read with the core, any other with the whole API.

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
    let core = prune(&set, &roots)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("envoy_descriptors_core.bin"), core)?;
    std::fs::write(out.join("envoy_descriptors_all.bin"), set.encode_to_vec())?;
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

/// The core set: the messages `roots` need and nothing else. A message is kept with every message and enum its
/// fields name, transitively, and with the messages it is nested in (whole, with their own fields' types);
/// everything a document of the roots' types can hold (without naming another type with `"@type"`) is there, and
/// each kept message is exactly as in the whole set. Besides the roots, the core keeps every `google.protobuf`
/// message (the JSON mapping's well-known types and the option messages) and every extension the kept files
/// declare at file level (`validate.rules` and the other annotations), with their types. Services are dropped;
/// a file left with nothing is dropped, and so is its name from the others' imports.
fn prune(set: &DynamicMessage, roots: &[String]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let files: Vec<DynamicMessage> = match set.get_field_by_name("file").as_deref() {
        Some(Value::List(files)) => files
            .iter()
            .filter_map(|f| f.as_message().cloned())
            .collect(),
        _ => return Err("the descriptor set has no files".into()),
    };
    let mut types = HashMap::new();
    for file in &files {
        let package = string_field(file, "package");
        for message in messages_field(file, "message_type") {
            index_message(&message, &package, None, &mut types);
        }
        for enumeration in messages_field(file, "enum_type") {
            let name = qualify(&package, &string_field(&enumeration, "name"));
            types.insert(name, TypeInfo::default());
        }
    }
    let mut todo: Vec<String> = roots.to_vec();
    for file in &files {
        let package = string_field(file, "package");
        for message in messages_field(file, "message_type") {
            if package == "google.protobuf" {
                todo.push(qualify(&package, &string_field(&message, "name")));
            }
        }
        for extension in messages_field(file, "extension") {
            todo.extend(field_types(&extension));
        }
    }
    let mut kept = BTreeSet::new();
    while let Some(name) = todo.pop() {
        let info = types
            .get(&name)
            .ok_or_else(|| format!("no type {name} in the Envoy descriptors"))?;
        if kept.insert(name.clone()) {
            todo.extend(info.uses.iter().cloned());
            todo.extend(info.parent.iter().cloned());
        }
    }
    let mut out = set.clone();
    let mut chosen = Vec::new();
    let mut dropped = BTreeSet::new();
    let validate = validate_options(&files);
    for file in &files {
        let package = string_field(file, "package");
        let mut file = file.clone();
        file.clear_field_by_name("service");
        strip_options(&mut file, "FileOptions", &validate);
        let mut left = keep_types(&mut file, "message_type", &package, &kept, &validate);
        left += keep_types(&mut file, "enum_type", &package, &kept, &validate);
        for_each_in(&mut file, "extension", |field| {
            strip_options(field, "FieldOptions", &validate)
        });
        left += messages_field(&file, "extension").len();
        if left == 0 {
            dropped.insert(string_field(&file, "name"));
            continue;
        }
        chosen.push(file);
    }
    for file in &mut chosen {
        drop_imports(file, &dropped);
    }
    out.set_field_by_name(
        "file",
        Value::List(chosen.into_iter().map(Value::Message).collect()),
    );
    Ok(out.encode_to_vec())
}

/// What keeping a message or enum takes: the types its fields name, and the message it is nested in.
#[derive(Default)]
struct TypeInfo {
    uses: Vec<String>,
    parent: Option<String>,
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

fn index_message(
    message: &DynamicMessage,
    scope: &str,
    parent: Option<&str>,
    out: &mut HashMap<String, TypeInfo>,
) {
    let full = qualify(scope, &string_field(message, "name"));
    let mut uses = Vec::new();
    for field in messages_field(message, "field")
        .iter()
        .chain(messages_field(message, "extension").iter())
    {
        uses.extend(field_types(field));
    }
    for inner in messages_field(message, "nested_type") {
        index_message(&inner, &full, Some(&full), out);
    }
    // Nested enums stay with their message: they are few and small.
    for enumeration in messages_field(message, "enum_type") {
        let name = qualify(&full, &string_field(&enumeration, "name"));
        out.insert(
            name.clone(),
            TypeInfo {
                uses: Vec::new(),
                parent: Some(full.clone()),
            },
        );
        uses.push(name);
    }
    out.insert(
        full,
        TypeInfo {
            uses,
            parent: parent.map(str::to_string),
        },
    );
}

/// The message or enum a field names (`type_name`, fully qualified with a leading dot in a compiled set) and,
/// for an extension, the message it extends.
fn field_types(field: &DynamicMessage) -> Vec<String> {
    ["type_name", "extendee"]
        .iter()
        .map(|name| string_field(field, name))
        .filter(|name| !name.is_empty())
        .map(|name| name.trim_start_matches('.').to_string())
        .collect()
}

/// Keeps in `list` (a file's or a message's `message_type`/`nested_type`/`enum_type`) only the kept types,
/// pruning kept messages' nested messages the same way. Returns how many are left.
fn keep_types(
    holder: &mut DynamicMessage,
    list: &str,
    scope: &str,
    kept: &BTreeSet<String>,
    validate: &BTreeSet<(String, u32)>,
) -> usize {
    let mut left = Vec::new();
    for mut item in messages_field(holder, list) {
        let full = qualify(scope, &string_field(&item, "name"));
        if !kept.contains(&full) {
            continue;
        }
        if list == "enum_type" {
            strip_enum_options(&mut item, validate);
        } else {
            keep_types(&mut item, "nested_type", &full, kept, validate);
            strip_message_options(&mut item, validate);
        }
        left.push(Value::Message(item));
    }
    let count = left.len();
    holder.set_field_by_name(list, Value::List(left));
    count
}

/// The options the loader reads: the `validate` extensions (`validate.rules` on fields, `validate.required` on
/// oneofs, `validate.disabled`/`ignored` on messages), as (options message, field number).
fn validate_options(files: &[DynamicMessage]) -> BTreeSet<(String, u32)> {
    let mut out = BTreeSet::new();
    for file in files
        .iter()
        .filter(|f| string_field(f, "package") == "validate")
    {
        for extension in messages_field(file, "extension") {
            let extendee = string_field(&extension, "extendee");
            let number = match extension.get_field_by_name("number").as_deref() {
                Some(Value::I32(n)) => *n as u32,
                _ => continue,
            };
            let options = extendee.trim_start_matches(".google.protobuf.").to_string();
            out.insert((options, number));
        }
    }
    out
}

/// Drops from `holder`'s options every extension but the `validate` ones; the options' own fields (`map_entry`,
/// `packed`...) stay, but for the two below. Envoy's other annotations (`udpa.annotations.versioning` on every message,
/// `sensitive`, `field_migrate`, `deprecated_at_minor_version`...) are never read by the loader, and building the
/// pool decodes and re-encodes each element's options: fewer options, less start-up. Options left empty go.
fn strip_options(holder: &mut DynamicMessage, kind: &str, validate: &BTreeSet<(String, u32)>) {
    let Some(Value::Message(options)) = holder.get_field_by_name("options").as_deref().cloned()
    else {
        return;
    };
    // A file's options (Java and Go package names) and a field's `deprecated` flag are read neither by the
    // loader nor by the JSON mapping; the whole API keeps them.
    if kind == "FileOptions" {
        holder.clear_field_by_name("options");
        return;
    }
    let mut options = options;
    if kind == "FieldOptions" {
        options.clear_field_by_name("deprecated");
    }
    let mut kept = Vec::new();
    for field in options.take_unknown_fields().collect::<Vec<_>>() {
        if validate.contains(&(kind.to_string(), field.number())) {
            field.encode(&mut kept);
        }
    }
    if options.merge(kept.as_slice()).is_err() {
        return;
    }
    if options.encoded_len() == 0 {
        holder.clear_field_by_name("options");
    } else {
        holder.set_field_by_name("options", Value::Message(options));
    }
}

fn strip_message_options(message: &mut DynamicMessage, validate: &BTreeSet<(String, u32)>) {
    strip_options(message, "MessageOptions", validate);
    for list in ["field", "extension"] {
        for_each_in(message, list, |field| {
            strip_options(field, "FieldOptions", validate)
        });
    }
    for_each_in(message, "oneof_decl", |oneof| {
        strip_options(oneof, "OneofOptions", validate)
    });
    for_each_in(message, "enum_type", |e| strip_enum_options(e, validate));
}

fn strip_enum_options(enumeration: &mut DynamicMessage, validate: &BTreeSet<(String, u32)>) {
    strip_options(enumeration, "EnumOptions", validate);
    for_each_in(enumeration, "value", |value| {
        strip_options(value, "EnumValueOptions", validate)
    });
}

/// Applies `change` to every message of the repeated field `list` of `holder`.
fn for_each_in(
    holder: &mut DynamicMessage,
    list: &str,
    mut change: impl FnMut(&mut DynamicMessage),
) {
    let mut items = messages_field(holder, list);
    if items.is_empty() {
        return;
    }
    items.iter_mut().for_each(&mut change);
    holder.set_field_by_name(
        list,
        Value::List(items.into_iter().map(Value::Message).collect()),
    );
}

/// Removes the dropped files from `file`'s imports, renumbering its public and weak imports (indexes into them).
fn drop_imports(file: &mut DynamicMessage, dropped: &BTreeSet<String>) {
    let imports = strings_field(file, "dependency");
    let mut new_index = HashMap::new();
    let mut left = Vec::new();
    for (i, import) in imports.iter().enumerate() {
        if !dropped.contains(import) {
            new_index.insert(i as i32, left.len() as i32);
            left.push(Value::String(import.clone()));
        }
    }
    file.set_field_by_name("dependency", Value::List(left));
    for list in ["public_dependency", "weak_dependency"] {
        let renumbered: Vec<Value> = match file.get_field_by_name(list).as_deref() {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| v.as_i32())
                .filter_map(|i| new_index.get(&i).copied())
                .map(Value::I32)
                .collect(),
            _ => Vec::new(),
        };
        file.set_field_by_name(list, Value::List(renumbered));
    }
}

fn messages_field(message: &DynamicMessage, name: &str) -> Vec<DynamicMessage> {
    match message.get_field_by_name(name).as_deref() {
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
