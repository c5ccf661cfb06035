//! Text in, protobuf out: YAML or JSON -> proto3 JSON mapping (through reflection, so `typed_config` with
//! `"@type"` works) -> a dynamic message -> the `envoy-types` struct.

use crate::diagnostic::{Diagnostics, Path};
use crate::{descriptors, lenient};
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage};

/// Larger inputs are refused before parsing. Envoy has no such limit, but a sidecar config of this size is a
/// mistake (or an attack), and refusing it is kinder than running out of memory.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;

/// How the text is written. Envoy decides by the file extension; so do we, and anything other than `.json`
/// is read as YAML (a superset of JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    pub fn from_file_name(name: &str) -> Self {
        if name.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Parses bytes into the dynamic message `message_name`, reporting the first problem with its path.
pub fn parse_dynamic(
    bytes: &[u8],
    format: Format,
    message_name: &str,
) -> Result<DynamicMessage, Diagnostics> {
    let mut diagnostics = Diagnostics::default();
    let top = Path::root();
    if bytes.len() > MAX_INPUT_BYTES {
        diagnostics.error(
            &top,
            format!(
                "the input is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                bytes.len()
            ),
        );
        return Err(diagnostics);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            diagnostics.error(
                &top,
                format!(
                    "the input is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                    e.valid_up_to()
                ),
            );
            return Err(diagnostics);
        }
    };
    let mut value = match parse_text(text, format) {
        Ok(value) => value,
        Err(message) => {
            diagnostics.error(&top, message);
            return Err(diagnostics);
        }
    };
    let descriptor = descriptors::message_for_document(message_name, &value).map_err(|e| {
        diagnostics.error(&top, e);
        diagnostics.clone()
    })?;
    if !value.is_object() {
        diagnostics.error(
            &top,
            format!(
                "expected a map of {} fields, found {}",
                short_name(message_name),
                json_kind(&value)
            ),
        );
        return Err(diagnostics);
    }
    lenient::normalize(&mut value, &descriptor);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
    match DynamicMessage::deserialize_with_options(
        descriptor,
        deserializer,
        &DeserializeOptions::new(),
    ) {
        Ok(message) => Ok(message),
        Err(e) => {
            let path =
                Path::from_label(track.path().to_string().trim_start_matches('.').to_string());
            let path = if path.as_str() == "?" { top } else { path };
            diagnostics.error(&path, explain_deserialize_error(&e.to_string()));
            Err(diagnostics)
        }
    }
}

/// Converts a dynamic message into the generated `envoy-types` struct.
pub fn to_struct<T: Message + Default>(message: &DynamicMessage) -> Result<T, String> {
    T::decode(message.encode_to_vec().as_slice())
        .map_err(|e| format!("internal protobuf conversion failed: {e}"))
}

/// JSON goes through the YAML reader too: JSON is YAML's flow style, and that reader is as forgiving as Envoy's
/// (trailing commas, single quotes, unquoted keys).
fn parse_text(text: &str, format: Format) -> Result<serde_json::Value, String> {
    let kind = match format {
        Format::Json => "JSON",
        Format::Yaml => "YAML",
    };
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && l != "---"
    });
    if !has_content {
        return Err(format!("the file is empty: it holds no {kind} document"));
    }
    serde_yaml_ng::from_str(text).map_err(|e| format!("invalid {kind}: {e}"))
}

/// Rewords prost-reflect's serde messages into what a user of Envoy configs needs to act on.
fn explain_deserialize_error(message: &str) -> String {
    if let Some(field) = message.strip_prefix("unrecognized field name ") {
        return format!(
            "unknown field {field}; check the spelling against the Envoy v3 API for this message"
        );
    }
    if message.contains("failed to parse duration") {
        return "invalid duration: write it as seconds with an `s` suffix, like \"5s\" or \"0.25s\"".to_string();
    }
    if let Some(value) = message.strip_prefix("unrecognized enum value ") {
        return format!(
            "unknown enum value {value}; use one of the names the Envoy v3 API defines for this field"
        );
    }
    message.to_string()
}

fn short_name(full_name: &str) -> &str {
    full_name.rsplit('.').next().unwrap_or(full_name)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing (null)",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}
