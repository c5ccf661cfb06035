//! Spans as OTLP: one `ExportTraceServiceRequest` per batch, with the tracer's resource.

use super::span::{FinishedSpan, Kind, nanos};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

/// The resource attributes every span of a tracer carries.
#[derive(Clone, Debug)]
pub struct Resource {
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    /// `service.name`, then what the environment detector reads from `OTEL_RESOURCE_ATTRIBUTES`
    /// (`key=value,...`).
    pub fn new(service_name: &str, from_environment: bool) -> Self {
        let mut attributes = vec![("service.name".to_string(), service_name.to_string())];
        if from_environment && let Ok(list) = std::env::var("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in list.split(',') {
                if let Some((k, v)) = pair.split_once('=')
                    && !k.trim().is_empty()
                {
                    attributes.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        Self { attributes }
    }
}

fn string_value(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

pub fn request(resource: &Resource, spans: Vec<FinishedSpan>) -> ExportTraceServiceRequest {
    let spans = spans.into_iter().map(span).collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: resource
                    .attributes
                    .iter()
                    .map(|(k, v)| string_value(k, v))
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "outrigger".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(s: FinishedSpan) -> Span {
    let error = s.is_error();
    Span {
        trace_id: s.trace_id.to_be_bytes().to_vec(),
        span_id: s.span_id.to_be_bytes().to_vec(),
        trace_state: s.tracestate.unwrap_or_default(),
        parent_span_id: s
            .parent_id
            .map_or_else(Vec::new, |p| p.to_be_bytes().to_vec()),
        name: s.name,
        kind: match s.kind {
            Kind::Server => span::SpanKind::Server,
            Kind::Client => span::SpanKind::Client,
        } as i32,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end),
        attributes: s.tags.iter().map(|(k, v)| string_value(k, v)).collect(),
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}
