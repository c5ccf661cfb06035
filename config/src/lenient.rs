//! The forgiving parts of Envoy's JSON reading, applied before the strict proto3 JSON mapping.
//!
//! Envoy reads YAML through protobuf's JSON parser with its lenient options, so configs in the wild rely on:
//! one value where a list is expected (`domains: "*"`), enum names in lower case (`lb_policy: round_robin`),
//! integral numbers written as floats (`8080.0`, `1e3`) and wrappers written as `{value: N}`. We accept the
//! same, by rewriting the parsed document against the message descriptors; everything else stays strict.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;

pub fn normalize(value: &mut Value, message: &MessageDescriptor) {
    let Value::Object(map) = value else { return };
    if message.full_name() == "google.protobuf.Any" {
        let type_name = map
            .get("@type")
            .and_then(Value::as_str)
            .and_then(|t| t.rsplit('/').next())
            .map(str::to_string);
        if let Some(inner) = type_name.and_then(|t| message.parent_pool().get_message_by_name(&t)) {
            normalize_fields(map, &inner);
        }
        return;
    }
    normalize_fields(map, message);
}

fn normalize_fields(map: &mut serde_json::Map<String, Value>, message: &MessageDescriptor) {
    for (key, item) in map.iter_mut() {
        let field = message
            .get_field_by_name(key)
            .or_else(|| message.get_field_by_json_name(key));
        if let Some(field) = field {
            normalize_field(item, &field);
        }
    }
}

fn normalize_field(value: &mut Value, field: &FieldDescriptor) {
    if field.is_map() {
        if let (Value::Object(entries), Kind::Message(entry)) = (value, field.kind())
            && let Some(value_field) = entry.get_field_by_name("value")
        {
            for item in entries.values_mut() {
                normalize_single(item, &value_field.kind());
            }
        }
        return;
    }
    if field.is_list() {
        let wrap = match (&*value, field.kind()) {
            (Value::Array(_) | Value::Null, _) => false,
            (Value::Object(_), Kind::Message(_)) => true,
            (Value::Object(_), _) => false,
            (_, Kind::Message(_)) => false,
            _ => true,
        };
        if wrap {
            *value = Value::Array(vec![value.take()]);
        }
        if let Value::Array(items) = value {
            for item in items {
                normalize_single(item, &field.kind());
            }
        }
        return;
    }
    normalize_single(value, &field.kind());
}

fn normalize_single(value: &mut Value, kind: &Kind) {
    match kind {
        Kind::Message(message) => {
            if is_wrapper(message)
                && let Value::Object(map) = value
                && map.len() == 1
                && let Some(inner) = map.remove("value")
            {
                *value = inner;
            }
            if is_wrapper(message) {
                if let Some(inner) = message.get_field_by_name("value") {
                    normalize_single(value, &inner.kind());
                }
                return;
            }
            normalize(value, message);
        }
        Kind::Enum(e) => {
            if let Value::String(name) = value
                && e.get_value_by_name(name).is_none()
                && let Some(v) = e.values().find(|v| v.name().eq_ignore_ascii_case(name))
            {
                *name = v.name().to_string();
            }
        }
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Fixed32
        | Kind::Fixed64
        | Kind::Sfixed32
        | Kind::Sfixed64 => {
            if let Value::Number(n) = value
                && !n.is_i64()
                && !n.is_u64()
                && let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = Value::from(f as i64);
            }
        }
        Kind::Bool => {
            if let Value::String(text) = value
                && let Some(b) = yaml_bool(text)
            {
                *value = Value::Bool(b);
            }
        }
        _ => {}
    }
}

/// Envoy's YAML reader (yaml-cpp) takes YAML 1.1's booleans: `y`, `yes`, `true`, `on` and `n`, `no`, `false`,
/// `off`, each in lower case, upper case or capitalised (`yes`, `YES`, `Yes`); a YAML 1.2 reader reads them as
/// strings. Checked with Envoy 1.40 on a bool field (`use_remote_address: yes` / `NO` / `Off` / `Y`).
fn yaml_bool(text: &str) -> Option<bool> {
    let mut chars = text.chars();
    let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let rest: String = chars.collect();
    let flexible = text.chars().all(|c| c.is_ascii_lowercase())
        || text.chars().all(|c| c.is_ascii_uppercase())
        || (first_upper && rest.chars().all(|c| c.is_ascii_lowercase()));
    if !flexible {
        return None;
    }
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "on" => Some(true),
        "n" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn is_wrapper(message: &MessageDescriptor) -> bool {
    let name = message.full_name();
    name.starts_with("google.protobuf.")
        && name.ends_with("Value")
        && name != "google.protobuf.Value"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors;

    fn normalized(message: &str, mut value: Value) -> Value {
        normalize(&mut value, &descriptors::message(message).unwrap());
        value
    }

    #[test]
    fn accepts_envoys_lenient_forms() {
        let v = normalized(
            "envoy.config.cluster.v3.Cluster",
            serde_json::json!({"lb_policy": "round_robin", "per_connection_buffer_limit_bytes": {"value": 1024.0}}),
        );
        assert_eq!(
            v,
            serde_json::json!({"lb_policy": "ROUND_ROBIN", "per_connection_buffer_limit_bytes": 1024})
        );
        let v = normalized(
            "envoy.config.route.v3.VirtualHost",
            serde_json::json!({"domains": "*"}),
        );
        assert_eq!(v, serde_json::json!({"domains": ["*"]}));
    }

    #[test]
    fn yaml_1_1_booleans_are_read_as_envoy_reads_them() {
        for (text, expected) in [
            ("yes", Some(true)),
            ("Yes", Some(true)),
            ("NO", Some(false)),
            ("Off", Some(false)),
            ("y", Some(true)),
            ("N", Some(false)),
            ("on", Some(true)),
            ("oN", None),
            ("enable", None),
            ("1", None),
        ] {
            assert_eq!(yaml_bool(text), expected, "{text}");
        }
        let v = normalized(
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            serde_json::json!({"use_remote_address": "yes", "stat_prefix": "no"}),
        );
        assert_eq!(
            v,
            serde_json::json!({"use_remote_address": true, "stat_prefix": "no"})
        );
    }

    #[test]
    fn a_string_for_a_list_of_messages_stays_an_error() {
        let v = normalized(
            "envoy.config.route.v3.RouteConfiguration",
            serde_json::json!({"virtual_hosts": "web"}),
        );
        assert_eq!(v, serde_json::json!({"virtual_hosts": "web"}));
    }
}
