//! One pass over a parsed message: Envoy's field constraints, and what Outrigger supports.

use crate::diagnostic::{Diagnostics, Path};
use crate::pgv::Rules;
use crate::support::{self, FieldSupport, Reader};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// Checks `message` and everything below it, `typed_config` payloads included, as the proxy reads it.
pub fn check(message: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    check_for(Reader::Proxy, message, at, out);
}

/// The same, for what `reader` accepts.
pub fn check_for(reader: Reader, message: &DynamicMessage, at: &Path, out: &mut Diagnostics) {
    let rules = Rules::new(message.descriptor().parent_pool());
    let walker = Walker {
        rules: &rules,
        reader,
    };
    walk(&walker, message, at, NotYet::Unsaid, out);
}

/// What every step of the walk reads: the validation rules, and who the configuration is for.
struct Walker<'a> {
    rules: &'a Rules,
    reader: Reader,
}

/// Whether a field above has already warned that it is accepted but not enforced yet. Below it, each field's own
/// "not yet" would only repeat that (an RDS block would warn for its source, its name, its `ads`...).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotYet {
    Unsaid,
    Said,
}

fn walk(
    walker: &Walker,
    message: &DynamicMessage,
    at: &Path,
    not_yet: NotYet,
    out: &mut Diagnostics,
) {
    let descriptor = message.descriptor();
    if descriptor.full_name() == "google.protobuf.Any" {
        walk_any(walker, message, at, not_yet, out);
        return;
    }
    if descriptor.full_name() == "google.protobuf.Duration" {
        check_duration(message, at, out);
        return;
    }
    walker.rules.check_message(message, at, out);
    for (field, value) in message.fields() {
        let path = at.field(field.name());
        match support::field_support_for(walker.reader, descriptor.full_name(), field.name()) {
            FieldSupport::Supported => {
                let mut below = not_yet;
                if not_yet == NotYet::Unsaid
                    && let Some(what) = support::not_yet(descriptor.full_name(), field.name())
                {
                    out.warning(&path, format!("accepted, but {what} is not enforced yet"));
                    below = NotYet::Said;
                }
                walk_value(walker, value, &path, below, out)
            }
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
            FieldSupport::Refused(why) => out.error(&path, why),
        }
    }
}

fn walk_value(walker: &Walker, value: &Value, at: &Path, not_yet: NotYet, out: &mut Diagnostics) {
    match value {
        Value::Message(m) => walk(walker, m, at, not_yet, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(walker, item, &at.index(i), not_yet, out);
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                let key = match key {
                    prost_reflect::MapKey::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                walk_value(walker, item, &at.key(&key), not_yet, out);
            }
        }
        _ => {}
    }
}

/// A `typed_config`: the named type must be one we implement; then its payload is checked like any message.
fn walk_any(
    walker: &Walker,
    any: &DynamicMessage,
    at: &Path,
    not_yet: NotYet,
    out: &mut Diagnostics,
) {
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
        Ok(inner) => walk(walker, &inner, at, not_yet, out),
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

#[cfg(test)]
mod tests {
    use crate::{Format, load_bytes};

    /// An RDS connection manager: `rds` is NotYet, and so is everything below it.
    const NOT_YET: &str = r#"
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: "::", port_value: 18080, ipv4_compat: true}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;

    #[test]
    fn a_field_not_enforced_yet_warns_once_for_everything_below_it() {
        let loaded = match load_bytes(NOT_YET.as_bytes(), Format::Yaml) {
            Ok(loaded) => loaded,
            Err(problems) => panic!("refused: {problems:#?}"),
        };
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            vec![
                "warning: static_resources.listeners[0].address.socket_address.ipv4_compat: accepted, but \
                 ipv4_compat (a `::` listener takes IPv4 whether or not it is set) is not enforced yet"
                    .to_string()
            ]
        );
    }
}
