//! Provides the protobuf descriptor set that the YAML/JSON loader reflects over.
//!
//! The `envoy-types` package ships the descriptor set its Rust types were generated from
//! (`src/generated/types.bin`), so the descriptors and the generated structs always agree. We find that package
//! through `cargo metadata` instead of copying any third-party file into this repository, and drop the source
//! comments from it to keep the binary small.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy_descriptors.bin");
    std::fs::write(out, set.encode_to_vec())?;
    Ok(())
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
