//! Envoy's field constraints (`validate.rules` annotations in its API protos), checked by reflection.
//!
//! Envoy validates every message with code generated from these annotations (protoc-gen-validate). We read
//! the same annotations from the descriptors at run time instead, so one walker enforces all of them, for files
//! and for xDS alike, and stays right when the protos change.

use crate::diagnostic::{Diagnostics, Path};
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    Value,
};
use std::borrow::Cow;

/// The extensions that carry the rules. Missing extensions mean no rules (never a failure).
pub struct Rules {
    field: Option<ExtensionDescriptor>,
    oneof_required: Option<ExtensionDescriptor>,
    message_disabled: Option<ExtensionDescriptor>,
}

impl Rules {
    pub fn new(pool: &prost_reflect::DescriptorPool) -> Self {
        Self {
            field: pool.get_extension_by_name("validate.rules"),
            oneof_required: pool.get_extension_by_name("validate.required"),
            message_disabled: pool.get_extension_by_name("validate.disabled"),
        }
    }

    /// Checks the message's own fields (not its children: the walker in `check` descends).
    pub fn check_message(&self, message: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
        let descriptor = message.descriptor();
        if self.is_disabled(&descriptor) {
            return;
        }
        if let Some(required) = &self.oneof_required {
            for oneof in descriptor.oneofs() {
                let options = oneof.options();
                let is_required = options.has_extension(required)
                    && matches!(*options.get_extension(required), Value::Bool(true));
                if is_required && !oneof.fields().any(|f| message.has_field(&f)) {
                    let names: Vec<String> = oneof.fields().map(|f| f.name().to_string()).collect();
                    out.error(
                        at,
                        format!("one of these fields is required: {}", names.join(", ")),
                    );
                }
            }
        }
        let Some(rules_ext) = &self.field else { return };
        for field in descriptor.fields() {
            let options = field.options();
            if !options.has_extension(rules_ext) {
                continue;
            }
            let rules = options.get_extension(rules_ext);
            let Value::Message(rules) = rules.as_ref() else {
                continue;
            };
            check_field(message, &field, rules, &at.field(field.name()), out);
        }
    }

    fn is_disabled(&self, descriptor: &MessageDescriptor) -> bool {
        let Some(ext) = &self.message_disabled else {
            return false;
        };
        let options = descriptor.options();
        options.has_extension(ext) && matches!(*options.get_extension(ext), Value::Bool(true))
    }
}

fn check_field(
    message: &DynamicMessage,
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    at: &Path,
    out: &mut Diagnostics,
) {
    let present = message.has_field(field);
    // A oneof member's rules apply only when that member is the one set.
    if field.containing_oneof().is_some() && !present {
        return;
    }
    // Message-level `required` sits beside the type rules.
    if let Some(message_rules) = sub(rules, "message")
        && flag(&message_rules, "required")
        && !present
    {
        out.error(at, "this field is required");
        return;
    }
    let Some((kind, type_rules)) = type_rules(rules) else {
        return;
    };
    let value = message.get_field(field);
    if field.is_list() {
        if kind == "repeated" {
            check_repeated(&value, &type_rules, at, out);
        }
        return;
    }
    if field.is_map() {
        if kind == "map" {
            check_map(&value, &type_rules, at, out);
        }
        return;
    }
    // Fields with presence (messages, oneof members, proto3 `optional`) are only checked when set.
    if field.supports_presence() && !present {
        if matches!(kind, "duration" | "any" | "timestamp") && flag(&type_rules, "required") {
            out.error(at, "this field is required");
        }
        return;
    }
    check_value(&value, field.kind(), kind, &type_rules, at, out);
}

/// The `type` oneof of `FieldRules`: which kind of rule is set, and its message.
fn type_rules(rules: &DynamicMessage) -> Option<(&'static str, DynamicMessage)> {
    const KINDS: &[&str] = &[
        "float",
        "double",
        "int32",
        "int64",
        "uint32",
        "uint64",
        "sint32",
        "sint64",
        "fixed32",
        "fixed64",
        "sfixed32",
        "sfixed64",
        "bool",
        "string",
        "bytes",
        "enum",
        "repeated",
        "map",
        "any",
        "duration",
        "timestamp",
    ];
    KINDS
        .iter()
        .find_map(|kind| sub(rules, kind).map(|m| (*kind, m)))
}

fn check_value(
    value: &Value,
    field_kind: Kind,
    kind: &str,
    rules: &DynamicMessage,
    at: &Path,
    out: &mut Diagnostics,
) {
    // A wrapper (`google.protobuf.UInt32Value`) carries scalar rules for its inner `value`.
    let value = match (value, &field_kind) {
        (Value::Message(m), Kind::Message(d))
            if is_wrapper(d) && !matches!(kind, "any" | "duration" | "timestamp") =>
        {
            match d.get_field_by_name("value") {
                Some(inner) => Cow::Owned(m.get_field(&inner).into_owned()),
                None => return,
            }
        }
        _ => Cow::Borrowed(value),
    };
    match kind {
        "string" => {
            if let Value::String(s) = value.as_ref() {
                check_string(s, rules, at, out);
            }
        }
        "bytes" => {
            if let Value::Bytes(b) = value.as_ref() {
                check_length(b.len(), "bytes", rules, "min_len", "max_len", at, out);
            }
        }
        "enum" => {
            if let (Value::EnumNumber(n), Kind::Enum(e)) = (value.as_ref(), &field_kind) {
                if flag(rules, "defined_only") && e.get_value(*n).is_none() {
                    out.error(at, format!("{n} is not a value of {}", e.name()));
                }
                check_in_lists(&Value::I32(*n), rules, at, out);
            }
        }
        "duration" => {
            if let Value::Message(m) = value.as_ref()
                && let Some(nanos) = duration_nanos(m)
            {
                check_bounds(
                    nanos as f64,
                    rules,
                    at,
                    out,
                    |r| {
                        sub(rules, r)
                            .and_then(|d| duration_nanos(&d))
                            .map(|n| n as f64)
                    },
                    format_nanos,
                );
            }
        }
        "any" => {
            if let Value::Message(m) = value.as_ref() {
                let type_url = string_field(m, "type_url");
                let allowed = strings(rules, "in");
                if !allowed.is_empty() && !allowed.contains(&type_url) {
                    out.error(
                        at,
                        format!(
                            "type {type_url} is not allowed here; allowed: {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        "repeated" | "map" | "timestamp" | "bool" => {}
        _ => {
            if let Some(number) = as_f64(value.as_ref()) {
                check_bounds(
                    number,
                    rules,
                    at,
                    out,
                    |r| get_number(rules, r),
                    format_number,
                );
                check_in_lists(value.as_ref(), rules, at, out);
            }
        }
    }
}

fn check_repeated(value: &Value, rules: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let Value::List(items) = value else { return };
    if flag(rules, "ignore_empty") && items.is_empty() {
        return;
    }
    check_length(
        items.len(),
        "items",
        rules,
        "min_items",
        "max_items",
        at,
        out,
    );
    if flag(rules, "unique") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                out.error(
                    &at.index(i),
                    "duplicate entry: the entries of this list must be unique",
                );
            }
        }
    }
    if let Some(item_rules) = sub(rules, "items")
        && let Some((kind, type_rules)) = type_rules(&item_rules)
    {
        for (i, item) in items.iter().enumerate() {
            let item_kind = match item {
                Value::Message(m) => Kind::Message(m.descriptor()),
                _ => Kind::String,
            };
            check_value(item, item_kind, kind, &type_rules, &at.index(i), out);
        }
    }
}

fn check_map(value: &Value, rules: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let Value::Map(entries) = value else { return };
    if flag(rules, "ignore_empty") && entries.is_empty() {
        return;
    }
    check_length(
        entries.len(),
        "entries",
        rules,
        "min_pairs",
        "max_pairs",
        at,
        out,
    );
    if let Some(key_rules) = sub(rules, "keys")
        && let Some(("string", string_rules)) = type_rules(&key_rules)
    {
        for key in entries.keys() {
            if let prost_reflect::MapKey::String(k) = key {
                check_string(k, &string_rules, &at.key(k), out);
            }
        }
    }
}

fn check_string(s: &str, rules: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    if flag(rules, "ignore_empty") && s.is_empty() {
        return;
    }
    check_length(
        s.chars().count(),
        "characters",
        rules,
        "min_len",
        "max_len",
        at,
        out,
    );
    check_length(s.len(), "bytes", rules, "min_bytes", "max_bytes", at, out);
    if let Some(len) = get_number(rules, "len")
        && s.chars().count() as f64 != len
    {
        out.error(at, format!("must be exactly {len} characters long"));
    }
    if let Some(prefix) = opt_string(rules, "prefix")
        && !s.starts_with(&prefix)
    {
        out.error(at, format!("must start with {prefix:?}"));
    }
    if let Some(suffix) = opt_string(rules, "suffix")
        && !s.ends_with(&suffix)
    {
        out.error(at, format!("must end with {suffix:?}"));
    }
    if let Some(needle) = opt_string(rules, "contains")
        && !s.contains(&needle)
    {
        out.error(at, format!("must contain {needle:?}"));
    }
    if let Some(pattern) = opt_string(rules, "pattern")
        && let Ok(re) = regex::Regex::new(&pattern)
        && !re.is_match(s)
    {
        out.error(at, format!("{s:?} does not match the pattern {pattern}"));
    }
    let allowed = strings(rules, "in");
    if !allowed.is_empty() && !allowed.iter().any(|a| a == s) {
        out.error(
            at,
            format!("{s:?} is not allowed; allowed: {}", allowed.join(", ")),
        );
    }
    if strings(rules, "not_in").iter().any(|a| a == s) {
        out.error(at, format!("{s:?} is not allowed here"));
    }
    if let Some(Value::EnumNumber(n)) = rules
        .get_field_by_name("well_known_regex")
        .map(Cow::into_owned)
    {
        // HTTP_HEADER_NAME (1) and HTTP_HEADER_VALUE (2). Never NUL, CR or LF; in strict mode (the default) a
        // name is also a non-empty token, optionally after one `:` (pseudo-headers).
        let strict = rules
            .get_field_by_name("strict")
            .is_none_or(|v| matches!(*v, Value::Bool(true)));
        let has_control = s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n');
        let token = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~`".contains(&b))
        };
        let bad = match n {
            1 if strict => !token(s.strip_prefix(':').unwrap_or(s)),
            1 | 2 => has_control,
            _ => false,
        };
        if bad {
            let what = if n == 1 {
                "an HTTP header name"
            } else {
                "an HTTP header value"
            };
            out.error(at, format!("{s:?} is not {what}"));
        }
    }
}

fn check_length(
    len: usize,
    unit: &str,
    rules: &DynamicMessage,
    min: &str,
    max: &str,
    at: &Path,
    out: &mut Diagnostics,
) {
    if let Some(min) = get_number(rules, min)
        && (len as f64) < min
    {
        let noun = if unit == "characters" || unit == "bytes" {
            "long"
        } else {
            ""
        };
        let message = if unit == "items" || unit == "entries" {
            format!("must have at least {min} {unit}")
        } else {
            format!("must be at least {min} {unit} {noun}")
        };
        out.error(at, message.trim_end().to_string());
    }
    if let Some(max) = get_number(rules, max)
        && (len as f64) > max
    {
        out.error(at, format!("must have at most {max} {unit}"));
    }
}

/// `const`, `lt`, `lte`, `gt`, `gte`, with protoc-gen-validate's meaning of an inverted range
/// (`gt` above `lt` means "outside").
fn check_bounds(
    value: f64,
    _rules: &DynamicMessage,
    at: &Path,
    out: &mut Diagnostics,
    bound: impl Fn(&str) -> Option<f64>,
    show: fn(f64) -> String,
) {
    if let Some(c) = bound("const")
        && value != c
    {
        out.error(at, format!("must be {}", show(c)));
    }
    let lower = bound("gt")
        .map(|v| (v, false))
        .or_else(|| bound("gte").map(|v| (v, true)));
    let upper = bound("lt")
        .map(|v| (v, false))
        .or_else(|| bound("lte").map(|v| (v, true)));
    let above = |(b, inclusive): (f64, bool)| if inclusive { value >= b } else { value > b };
    let below = |(b, inclusive): (f64, bool)| if inclusive { value <= b } else { value < b };
    let describe_lower = |(b, inclusive): (f64, bool)| {
        if inclusive {
            format!("at least {}", show(b))
        } else {
            format!("greater than {}", show(b))
        }
    };
    let describe_upper = |(b, inclusive): (f64, bool)| {
        if inclusive {
            format!("at most {}", show(b))
        } else {
            format!("less than {}", show(b))
        }
    };
    match (lower, upper) {
        (Some(l), Some(u)) if l.0 > u.0 => {
            if !(above(l) || below(u)) {
                out.error(
                    at,
                    format!("must be {} or {}", describe_upper(u), describe_lower(l)),
                );
            }
        }
        (l, u) => {
            if let Some(l) = l
                && !above(l)
            {
                out.error(at, format!("must be {}", describe_lower(l)));
            }
            if let Some(u) = u
                && !below(u)
            {
                out.error(at, format!("must be {}", describe_upper(u)));
            }
        }
    }
}

fn check_in_lists(value: &Value, rules: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let Some(number) = as_f64(value) else { return };
    let list = |name: &str| -> Vec<f64> {
        match rules.get_field_by_name(name).map(Cow::into_owned) {
            Some(Value::List(items)) => items.iter().filter_map(as_f64).collect(),
            _ => Vec::new(),
        }
    };
    let allowed = list("in");
    if !allowed.is_empty() && !allowed.contains(&number) {
        out.error(at, format!("{number} is not allowed; allowed: {allowed:?}"));
    }
    if list("not_in").contains(&number) {
        out.error(at, format!("{number} is not allowed here"));
    }
}

fn is_wrapper(descriptor: &MessageDescriptor) -> bool {
    let name = descriptor.full_name();
    name.starts_with("google.protobuf.")
        && name.ends_with("Value")
        && name != "google.protobuf.Value"
}

fn duration_nanos(message: &DynamicMessage) -> Option<i128> {
    let seconds = match message.get_field_by_name("seconds")?.as_ref() {
        Value::I64(s) => *s,
        _ => return None,
    };
    let nanos = match message.get_field_by_name("nanos")?.as_ref() {
        Value::I32(n) => *n,
        _ => return None,
    };
    Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn format_nanos(nanos: f64) -> String {
    format!("{}s", nanos / 1e9)
}

fn format_number(n: f64) -> String {
    format!("{n}")
}

fn as_f64(value: &Value) -> Option<f64> {
    Some(match value {
        Value::I32(v) => f64::from(*v),
        Value::I64(v) => *v as f64,
        Value::U32(v) => f64::from(*v),
        Value::U64(v) => *v as f64,
        Value::F32(v) => f64::from(*v),
        Value::F64(v) => *v,
        Value::EnumNumber(v) => f64::from(*v),
        _ => return None,
    })
}

/// A set sub-message of a rules message.
fn sub(rules: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    let field = rules.descriptor().get_field_by_name(name)?;
    if !rules.has_field(&field) {
        return None;
    }
    match rules.get_field(&field).into_owned() {
        Value::Message(m) => Some(m),
        _ => None,
    }
}

fn flag(rules: &DynamicMessage, name: &str) -> bool {
    matches!(
        rules.get_field_by_name(name).as_deref(),
        Some(Value::Bool(true))
    )
}

/// A numeric rule that is set (rules use proto2 `optional`, so presence is known).
fn get_number(rules: &DynamicMessage, name: &str) -> Option<f64> {
    let field = rules.descriptor().get_field_by_name(name)?;
    if !rules.has_field(&field) {
        return None;
    }
    as_f64(&rules.get_field(&field))
}

fn opt_string(rules: &DynamicMessage, name: &str) -> Option<String> {
    let field = rules.descriptor().get_field_by_name(name)?;
    if !rules.has_field(&field) {
        return None;
    }
    match rules.get_field(&field).into_owned() {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn strings(rules: &DynamicMessage, name: &str) -> Vec<String> {
    match rules.get_field_by_name(name).map(Cow::into_owned) {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
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
