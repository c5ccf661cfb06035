//! `access_log` entries: the logger (file, stdout, stderr), its format and its filter.

pub mod format;

use super::{Out, decode_any, struct_to_json, type_name};
use crate::diagnostic::Path;
use crate::model::access_log::{
    AccessLog, Comparison, ComparisonOp, Filter, Format, JsonValue, Piece, Sink,
};
use envoy_types::pb::envoy::config::accesslog::v3 as pb;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::access_loggers::{file::v3 as file, stream::v3 as stream};

pub const FILE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
pub const STDOUT: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
pub const STDERR: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// Every entry of an `access_log` list (`at` is the list's path).
pub fn access_logs(logs: &[pb::AccessLog], at: &Path, out: &mut Out) -> Vec<AccessLog> {
    logs.iter()
        .enumerate()
        .filter_map(|(i, log)| access_log(log, &at.index(i), out))
        .collect()
}

fn access_log(log: &pb::AccessLog, at: &Path, out: &mut Out) -> Option<AccessLog> {
    let filter = log
        .filter
        .as_ref()
        .and_then(|f| filter(f, &at.field("filter"), out));
    let Some(pb::access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
        out.error(
            at,
            "an access log needs a `typed_config` (FileAccessLog, StdoutAccessLog or StderrAccessLog)",
        );
        return None;
    };
    let at = at.field("typed_config");
    let (sink, format) = match type_name(any) {
        FILE => {
            let f: file::FileAccessLog = decode_any(any, &at, out)?;
            use file::file_access_log::AccessLogFormat as F;
            let format = match &f.access_log_format {
                None => default_format(),
                Some(F::Format(text)) => text_format(text, &at.field("format"), out)?,
                Some(F::LogFormat(log_format)) => {
                    substitution_format(log_format, &at.field("log_format"), out)?
                }
                Some(F::JsonFormat(_) | F::TypedJsonFormat(_)) => {
                    out.error(
                        &at,
                        "the deprecated `json_format`/`typed_json_format` of FileAccessLog is not implemented; \
                         write `log_format: {json_format: ...}`",
                    );
                    return None;
                }
            };
            (Sink::File(f.path), format)
        }
        STDOUT => {
            let s: stream::StdoutAccessLog = decode_any(any, &at, out)?;
            let stream::stdout_access_log::AccessLogFormat::LogFormat(f) =
                s.access_log_format.unwrap_or_else(|| {
                    stream::stdout_access_log::AccessLogFormat::LogFormat(Default::default())
                });
            (Sink::Stdout, stream_format(&f, &at, out)?)
        }
        STDERR => {
            let s: stream::StderrAccessLog = decode_any(any, &at, out)?;
            let stream::stderr_access_log::AccessLogFormat::LogFormat(f) =
                s.access_log_format.unwrap_or_else(|| {
                    stream::stderr_access_log::AccessLogFormat::LogFormat(Default::default())
                });
            (Sink::Stderr, stream_format(&f, &at, out)?)
        }
        other => {
            out.error(
                &at,
                format!("{other} is not an access logger Outrigger writes"),
            );
            return None;
        }
    };
    Some(AccessLog {
        filter,
        sink,
        format,
    })
}

/// A stream logger's `log_format`, unset meaning the default (an empty message has no format either).
fn stream_format(f: &core::SubstitutionFormatString, at: &Path, out: &mut Out) -> Option<Format> {
    if f.format.is_none() {
        return Some(default_format());
    }
    substitution_format(f, &at.field("log_format"), out)
}

fn default_format() -> Format {
    // The constant is checked by a unit test; an error here could only be a bug in it.
    Format::Text(format::parse(format::DEFAULT_FORMAT).unwrap_or_default())
}

fn text_format(text: &str, at: &Path, out: &mut Out) -> Option<Format> {
    parse(text, at, out).map(Format::Text)
}

/// A format string's pieces; an operator Outrigger fills only in part earns a warning (a log line cannot change
/// traffic), so a difference from Envoy's line is never silent.
fn parse(text: &str, at: &Path, out: &mut Out) -> Option<Vec<Piece>> {
    use crate::model::access_log::Command as C;
    match format::parse(text) {
        Ok(pieces) => {
            let partial = pieces.iter().any(|piece| {
                matches!(piece, Piece::Operator(o) if o.command == C::UpstreamTransportFailureReason)
            });
            if partial {
                out.warning(
                    at,
                    "%UPSTREAM_TRANSPORT_FAILURE_REASON% is written for a refused or failed connect as Envoy \
                     writes it, but as `-` after a failed upstream TLS handshake (Envoy writes BoringSSL's error \
                     text there)",
                );
            }
            Some(pieces)
        }
        Err(e) => {
            out.error(at, e);
            None
        }
    }
}

fn substitution_format(
    f: &core::SubstitutionFormatString,
    at: &Path,
    out: &mut Out,
) -> Option<Format> {
    use core::data_source::Specifier as D;
    use core::substitution_format_string::Format as F;
    match &f.format {
        Some(F::TextFormat(text)) => text_format(text, &at.field("text_format"), out),
        Some(F::TextFormatSource(source)) => {
            let at = at.field("text_format_source");
            match &source.specifier {
                Some(D::InlineString(text)) => text_format(text, &at.field("inline_string"), out),
                Some(D::InlineBytes(bytes)) => match std::str::from_utf8(bytes) {
                    Ok(text) => text_format(text, &at.field("inline_bytes"), out),
                    Err(_) => {
                        out.error(&at.field("inline_bytes"), "the format is not UTF-8");
                        None
                    }
                },
                _ => {
                    out.error(
                        &at,
                        "only `inline_string` (or `inline_bytes`) formats are implemented; paste the format in",
                    );
                    None
                }
            }
        }
        Some(F::JsonFormat(object)) => {
            let at = at.field("json_format");
            let json = struct_to_json(object);
            json_object(&json, &at, out).map(Format::Json)
        }
        None => Some(default_format()),
    }
}

fn json_object(
    object: &serde_json::Map<String, serde_json::Value>,
    at: &Path,
    out: &mut Out,
) -> Option<Vec<(String, JsonValue)>> {
    let mut fields = Vec::new();
    let mut ok = true;
    for (key, value) in object {
        let at = at.field(key);
        let value = match value {
            serde_json::Value::String(text) => parse(text, &at, out).map(JsonValue::Template),
            serde_json::Value::Object(inner) => json_object(inner, &at, out).map(JsonValue::Object),
            serde_json::Value::Array(_) => {
                out.error(&at, "lists are not allowed in json_format (as in Envoy)");
                None
            }
            literal => Some(JsonValue::Literal(literal.clone())),
        };
        match value {
            Some(value) => fields.push((key.clone(), value)),
            None => ok = false,
        }
    }
    ok.then_some(fields)
}

fn filter(f: &pb::AccessLogFilter, at: &Path, out: &mut Out) -> Option<Filter> {
    use pb::access_log_filter::FilterSpecifier as S;
    Some(match &f.filter_specifier {
        Some(S::StatusCodeFilter(s)) => Filter::StatusCode(comparison(
            s.comparison.as_ref(),
            &at.field("status_code_filter"),
            out,
        )?),
        Some(S::DurationFilter(d)) => Filter::Duration(comparison(
            d.comparison.as_ref(),
            &at.field("duration_filter"),
            out,
        )?),
        Some(S::NotHealthCheckFilter(_)) => Filter::NotHealthCheck,
        Some(S::ResponseFlagFilter(r)) => Filter::ResponseFlag(r.flags.clone()),
        Some(S::RuntimeFilter(r)) => {
            use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
            let (numerator, denominator) = r.percent_sampled.as_ref().map_or((0, 100), |p| {
                let denominator = match D::try_from(p.denominator) {
                    Ok(D::TenThousand) => 10_000,
                    Ok(D::Million) => 1_000_000,
                    _ => 100,
                };
                (u64::from(p.numerator), denominator)
            });
            Filter::Runtime {
                numerator,
                denominator,
                independent: r.use_independent_randomness,
            }
        }
        Some(S::AndFilter(a)) => Filter::And(filters(&a.filters, &at.field("and_filter"), out)?),
        Some(S::OrFilter(o)) => Filter::Or(filters(&o.filters, &at.field("or_filter"), out)?),
        // The support table refuses the other filters before conversion.
        _ => {
            out.error(at, "this access log filter is not implemented by Outrigger");
            return None;
        }
    })
}

fn filters(list: &[pb::AccessLogFilter], at: &Path, out: &mut Out) -> Option<Vec<Filter>> {
    let at = at.field("filters");
    let converted: Vec<Filter> = list
        .iter()
        .enumerate()
        .filter_map(|(i, f)| filter(f, &at.index(i), out))
        .collect();
    (converted.len() == list.len()).then_some(converted)
}

fn comparison(c: Option<&pb::ComparisonFilter>, at: &Path, out: &mut Out) -> Option<Comparison> {
    use pb::comparison_filter::Op;
    let Some(c) = c else {
        out.error(at, "a `comparison` is required");
        return None;
    };
    let op = match Op::try_from(c.op) {
        Ok(Op::Ge) => ComparisonOp::Ge,
        Ok(Op::Le) => ComparisonOp::Le,
        Ok(Op::Ne) => ComparisonOp::Ne,
        _ => ComparisonOp::Eq,
    };
    Some(Comparison {
        op,
        value: c.value.as_ref().map_or(0, |v| v.default_value),
    })
}

#[cfg(test)]
mod tests;
