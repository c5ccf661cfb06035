//! One pass over a parsed message: Envoy's field constraints, and what Outrigger supports.

use crate::diagnostic::{Diagnostics, Path};
use crate::pgv::Rules;
use crate::support::{self, FieldSupport};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// Checks `message` and everything below it, `typed_config` payloads included.
pub fn check(message: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let rules = Rules::new(message.descriptor().parent_pool());
    walk(&rules, message, at, out);
}

fn walk(rules: &Rules, message: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let descriptor = message.descriptor();
    if descriptor.full_name() == "google.protobuf.Any" {
        walk_any(rules, message, at, out);
        return;
    }
    if descriptor.full_name() == "google.protobuf.Duration" {
        check_duration(message, at, out);
        return;
    }
    rules.check_message(message, at, out);
    for (field, value) in message.fields() {
        let path = at.field(field.name());
        match support::field_support(descriptor.full_name(), field.name()) {
            FieldSupport::Supported => walk_value(rules, value, &path, out),
            FieldSupport::Ignored(why) => out.warning(&path, format!("ignored: {why}")),
            FieldSupport::Unsupported => out.error(
                &path,
                format!(
                    "`{}` ({}) is a real Envoy field that Outrigger does not implement yet; remove it, or see the \
                     README's table of Envoy features",
                    field.name(),
                    descriptor.full_name()
                ),
            ),
        }
    }
}

fn walk_value(rules: &Rules, value: &Value, at: &Path, out: &mut Diagnostics) {
    match value {
        Value::Message(m) => walk(rules, m, at, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(rules, item, &at.index(i), out);
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                let key = match key {
                    prost_reflect::MapKey::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                walk_value(rules, item, &at.key(&key), out);
            }
        }
        _ => {}
    }
}

/// A `typed_config`: the named type must be one we implement; then its payload is checked like any message.
fn walk_any(rules: &Rules, any: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let type_url = match any.get_field_by_name("type_url").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let bytes = match any.get_field_by_name("value").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let type_name = type_url.rsplit('/').next().unwrap_or_default();
    if !support::type_supported(type_name) {
        out.error(
            at,
            format!(
                "extension type {type_name} is a real Envoy extension that Outrigger does not implement yet; \
                 supported here: see the README's table of Envoy features"
            ),
        );
        return;
    }
    let Some(descriptor) = any
        .descriptor()
        .parent_pool()
        .get_message_by_name(type_name)
    else {
        out.error(at, format!("unknown type {type_url}"));
        return;
    };
    match DynamicMessage::decode(descriptor, bytes) {
        Ok(inner) => walk(rules, &inner, at, out),
        Err(e) => out.error(
            at,
            format!("the {type_name} payload cannot be decoded: {e}"),
        ),
    }
}

/// Envoy refuses negative durations everywhere, whatever the field's own rules say.
fn check_duration(duration: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let negative = duration.fields().any(|(_, v)| match v {
        Value::I64(n) => *n < 0,
        Value::I32(n) => *n < 0,
        _ => false,
    });
    if negative {
        out.error(at, "durations cannot be negative; write 0s or more");
    }
}
