//! Envoy protos (from files or xDS) to the model: defaults applied, semantics checked, every problem collected
//! with its path. Fields outside `support.rs` have been refused before this runs.

// Envoy still accepts its deprecated forms (legacy header matchers, cluster-level protocol options, `append`);
// so must we, which means reading deprecated fields.
#![allow(deprecated)]

pub mod access_log;
pub mod api_listener;
pub mod bootstrap;
pub mod cluster;
pub mod health_check;
pub mod http;
pub mod listener;
pub mod load_balancing;
pub mod rate_limit;
pub mod rbac;
pub mod rbac_matcher;
pub mod references;
pub mod route;
pub mod tls;
pub mod tracing;
pub mod tracing_datadog;
pub mod udp_proxy;

use crate::diagnostic::{Diagnostics, Path};
use crate::model::core::{
    AppendAction, ConfigSource, DataSource, Fraction, HeaderMutations, HeaderToAdd, Host, Pattern,
    StringMatch, StringMatcher,
};
use envoy_types::pb;
use pb::google::protobuf as wkt;
use prost::Message;
use std::net::IpAddr;
use std::time::Duration;

pub(crate) type Out = Diagnostics;

/// A proto duration as a std one (negative durations were refused by the field rules).
pub(crate) fn duration(d: &wkt::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos)
}

pub(crate) fn duration_or(d: &Option<wkt::Duration>, default: Duration) -> Duration {
    d.as_ref().map(duration).unwrap_or(default)
}

/// Envoy's timeout convention: unset takes the default, zero disables.
pub(crate) fn timeout_or(d: &Option<wkt::Duration>, default: Option<Duration>) -> Option<Duration> {
    match d {
        None => default,
        Some(d) => Some(duration(d)).filter(|d| !d.is_zero()),
    }
}

pub(crate) fn u32_or(v: &Option<wkt::UInt32Value>, default: u32) -> u32 {
    v.as_ref().map(|v| v.value).unwrap_or(default)
}

pub(crate) fn bool_or(v: &Option<wkt::BoolValue>, default: bool) -> bool {
    v.as_ref().map(|v| v.value).unwrap_or(default)
}

/// The message name of a `typed_config` (`type.googleapis.com/envoy.x.v3.Y` -> `envoy.x.v3.Y`).
pub(crate) fn type_name(any: &wkt::Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

pub(crate) fn decode_any<T: Message + Default>(
    any: &wkt::Any,
    at: &Path,
    out: &mut Out,
) -> Option<T> {
    match T::decode(any.value.as_slice()) {
        Ok(message) => Some(message),
        Err(e) => {
            out.error(
                at,
                format!("the {} payload cannot be decoded: {e}", type_name(any)),
            );
            None
        }
    }
}

/// `SocketAddress` to host and port. `names` allows DNS names (for DNS clusters); elsewhere Envoy, like us,
/// takes only IP addresses.
pub(crate) fn socket_address(
    address: &Option<pb::envoy::config::core::v3::Address>,
    names: bool,
    at: &Path,
    out: &mut Out,
) -> Option<(Host, u16)> {
    socket_address_of(address, names, false, at, out)
}

/// A listener's address and whether it is UDP (`socket_address.protocol: UDP`, which only listeners take).
pub(crate) fn listener_address(
    address: &Option<pb::envoy::config::core::v3::Address>,
    at: &Path,
    out: &mut Out,
) -> Option<(std::net::SocketAddr, bool)> {
    use pb::envoy::config::core::v3::{address, socket_address};
    let udp = matches!(
        address.as_ref().and_then(|a| a.address.as_ref()),
        Some(address::Address::SocketAddress(s)) if s.protocol == socket_address::Protocol::Udp as i32
    );
    match socket_address_of(address, false, udp, at, out)? {
        (Host::Ip(ip), port) => Some((std::net::SocketAddr::new(ip, port), udp)),
        (Host::Name(_), _) => None,
    }
}

fn socket_address_of(
    address: &Option<pb::envoy::config::core::v3::Address>,
    names: bool,
    udp_allowed: bool,
    at: &Path,
    out: &mut Out,
) -> Option<(Host, u16)> {
    use pb::envoy::config::core::v3::{address, socket_address};
    let Some(address::Address::SocketAddress(socket)) =
        address.as_ref().and_then(|a| a.address.as_ref())
    else {
        out.error(
            at,
            "an address is required here: write `socket_address: {address: IP, port_value: PORT}`",
        );
        return None;
    };
    let at = at.field("socket_address");
    let udp = udp_allowed && socket.protocol == socket_address::Protocol::Udp as i32;
    if socket.protocol != socket_address::Protocol::Tcp as i32 && !udp {
        out.error(
            &at.field("protocol"),
            "only TCP is supported here; UDP is taken by listeners alone (with the udp_proxy listener filter)",
        );
        return None;
    }
    let port = match socket.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(port)) => u16::try_from(port).ok(),
        _ => Some(0),
    };
    let Some(port) = port else {
        out.error(&at.field("port_value"), "must be at most 65535");
        return None;
    };
    let host = match socket.address.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) if names && is_dns_name(&socket.address) => {
            Host::Name(socket.address.to_ascii_lowercase())
        }
        Err(_) if names => {
            out.error(
                &at.field("address"),
                format!(
                    "{:?} is neither an IP address nor a DNS name",
                    socket.address
                ),
            );
            return None;
        }
        Err(_) => {
            out.error(
                &at.field("address"),
                format!(
                    "malformed IP address {:?}; write an IPv4 or IPv6 address, or use a STRICT_DNS or LOGICAL_DNS \
                     cluster for names",
                    socket.address
                ),
            );
            return None;
        }
    };
    Some((host, port))
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Listener-style address: an IP and a port.
pub(crate) fn ip_address(
    address: &Option<pb::envoy::config::core::v3::Address>,
    at: &Path,
    out: &mut Out,
) -> Option<std::net::SocketAddr> {
    match socket_address(address, false, at, out)? {
        (Host::Ip(ip), port) => Some(std::net::SocketAddr::new(ip, port)),
        (Host::Name(_), _) => None,
    }
}

pub(crate) fn headers_to_add(
    list: &[pb::envoy::config::core::v3::HeaderValueOption],
    at: &Path,
) -> Vec<HeaderToAdd> {
    use pb::envoy::config::core::v3::header_value_option::HeaderAppendAction as A;
    let _ = at;
    list.iter()
        .filter_map(|option| {
            let header = option.header.as_ref()?;
            let append_action = match option.append.as_ref().map(|a| a.value) {
                // The deprecated `append: false` means overwrite.
                Some(false) => AppendAction::OverwriteIfExistsOrAdd,
                _ => match A::try_from(option.append_action) {
                    Ok(A::AddIfAbsent) => AppendAction::AddIfAbsent,
                    Ok(A::OverwriteIfExistsOrAdd) => AppendAction::OverwriteIfExistsOrAdd,
                    Ok(A::OverwriteIfExists) => AppendAction::OverwriteIfExists,
                    _ => AppendAction::AppendIfExistsOrAdd,
                },
            };
            Some(HeaderToAdd {
                name: header.key.to_ascii_lowercase(),
                value: header.value.clone(),
                append_action,
                keep_empty_value: option.keep_empty_value,
            })
        })
        .collect()
}

/// The four header lists that Envoy repeats at every level of a route table.
pub(crate) fn header_mutations(
    request_add: &[pb::envoy::config::core::v3::HeaderValueOption],
    request_remove: &[String],
    response_add: &[pb::envoy::config::core::v3::HeaderValueOption],
    response_remove: &[String],
    at: &Path,
) -> HeaderMutations {
    let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
    HeaderMutations {
        request_headers_to_add: headers_to_add(request_add, &at.field("request_headers_to_add")),
        request_headers_to_remove: lower(request_remove),
        response_headers_to_add: headers_to_add(response_add, &at.field("response_headers_to_add")),
        response_headers_to_remove: lower(response_remove),
    }
}

pub(crate) fn pattern(regex: &str, at: &Path, out: &mut Out) -> Option<Pattern> {
    match Pattern::new(regex) {
        Ok(p) => Some(p),
        Err(e) => {
            out.error(at, format!("invalid regular expression {regex:?}: {e}"));
            None
        }
    }
}

pub(crate) fn regex_matcher(
    m: &Option<pb::envoy::r#type::matcher::v3::RegexMatcher>,
    at: &Path,
    out: &mut Out,
) -> Option<Pattern> {
    let m = m.as_ref()?;
    pattern(&m.regex, &at.field("regex"), out)
}

pub(crate) fn string_matcher(
    m: &pb::envoy::r#type::matcher::v3::StringMatcher,
    at: &Path,
    out: &mut Out,
) -> Option<StringMatcher> {
    use pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern as P;
    let pattern = match m.match_pattern.as_ref()? {
        P::Exact(s) => StringMatch::Exact(s.clone()),
        P::Prefix(s) => StringMatch::Prefix(s.clone()),
        P::Suffix(s) => StringMatch::Suffix(s.clone()),
        P::Contains(s) => StringMatch::Contains(s.clone()),
        P::SafeRegex(r) => StringMatch::SafeRegex(pattern(
            &r.regex,
            &at.field("safe_regex").field("regex"),
            out,
        )?),
        P::Custom(_) => {
            out.error(
                &at.field("custom"),
                "custom string matchers are not supported",
            );
            return None;
        }
    };
    Some(StringMatcher {
        pattern,
        ignore_case: m.ignore_case,
    })
}

pub(crate) fn fraction(p: &Option<pb::envoy::r#type::v3::FractionalPercent>) -> Fraction {
    use pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
    let Some(p) = p else { return Fraction(0.0) };
    let denominator = match D::try_from(p.denominator) {
        Ok(D::TenThousand) => 10_000.0,
        Ok(D::Million) => 1_000_000.0,
        _ => 100.0,
    };
    Fraction((f64::from(p.numerator) / denominator).min(1.0))
}

pub(crate) fn config_source(
    source: &Option<pb::envoy::config::core::v3::ConfigSource>,
    at: &Path,
    out: &mut Out,
) -> Option<ConfigSource> {
    use pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier as S;
    let Some(source) = source else {
        out.error(at, "a config source is required here: write `{ads: {}}`");
        return None;
    };
    match &source.config_source_specifier {
        Some(S::Ads(_)) => Some(ConfigSource::Ads {
            initial_fetch_timeout: timeout_or(
                &source.initial_fetch_timeout,
                Some(Duration::from_secs(15)),
            ),
        }),
        Some(S::ApiConfigSource(_)) => {
            out.error(
                &at.field("api_config_source"),
                "only `ads: {}` config sources are supported here (one aggregated xDS stream); an \
                 api_config_source is supported only as the sds_config of a secret",
            );
            None
        }
        _ => {
            out.error(
                at,
                "only `ads: {}` config sources are supported (one aggregated xDS stream)",
            );
            None
        }
    }
}

pub(crate) fn data_source(
    source: &Option<pb::envoy::config::core::v3::DataSource>,
    at: &Path,
    out: &mut Out,
) -> Option<DataSource> {
    use pb::envoy::config::core::v3::data_source::Specifier as S;
    match source.as_ref().and_then(|s| s.specifier.as_ref()) {
        Some(S::Filename(f)) => Some(DataSource::Filename(f.clone())),
        Some(S::InlineString(s)) => Some(DataSource::InlineString(s.clone())),
        Some(S::InlineBytes(b)) => Some(DataSource::InlineBytes(b.clone())),
        Some(S::EnvironmentVariable(v)) => Some(DataSource::EnvironmentVariable(v.clone())),
        None => {
            out.error(
                at,
                "a data source is required here: `filename`, `inline_string` or `inline_bytes`",
            );
            None
        }
    }
}

/// `google.protobuf.Struct` as JSON.
pub(crate) fn struct_to_json(s: &wkt::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &wkt::Value) -> serde_json::Value {
    use wkt::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or_default(),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

/// `Metadata.filter_metadata` as one JSON object keyed by filter name.
pub(crate) fn filter_metadata(
    metadata: &Option<pb::envoy::config::core::v3::Metadata>,
) -> serde_json::Map<String, serde_json::Value> {
    let Some(metadata) = metadata else {
        return Default::default();
    };
    let mut keys: Vec<_> = metadata.filter_metadata.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                serde_json::Value::Object(struct_to_json(&metadata.filter_metadata[k])),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
