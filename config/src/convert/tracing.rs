//! The connection manager's `tracing` block and its provider (`envoy.tracers.opentelemetry`,
//! `envoy.tracers.zipkin`, `envoy.tracers.skywalking`; `envoy.tracers.datadog` in `tracing_datadog.rs`).

use super::{Out, bool_or, decode_any, timeout_or, type_name, u32_or};
use crate::diagnostic::Path;
use crate::model::tracing::{
    CollectorTarget, CustomTag, OpenTelemetry, OtlpCollector, Provider, SkyWalking, TagValue,
    Tracing, Zipkin,
};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::trace::v3 as trace;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::r#type::tracing::v3 as tags;
use std::time::Duration;

pub const OPENTELEMETRY: &str = "envoy.config.trace.v3.OpenTelemetryConfig";
pub const ZIPKIN: &str = "envoy.config.trace.v3.ZipkinConfig";
pub const SKYWALKING: &str = "envoy.config.trace.v3.SkyWalkingConfig";
pub const ENVIRONMENT_DETECTOR: &str = "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig";

/// Envoy's OTLP exporters have no default timeout of their own; a collector that never answers must not hold
/// spans for ever, so an export gives up after this.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn tracing(
    t: &hcm::http_connection_manager::Tracing,
    at: &Path,
    out: &mut Out,
) -> Option<Tracing> {
    let Some(provider) = &t.provider else {
        out.error(
            &at.field("provider"),
            "a tracing block needs a `provider` (envoy.tracers.opentelemetry, envoy.tracers.zipkin or envoy.tracers.datadog); \
             Outrigger has no tracer to fall back on",
        );
        return None;
    };
    let provider = self::provider(provider, &at.field("provider"), out)?;
    // `Percent` (0..100) as Envoy compares it: a FractionalPercent out of 10,000.
    let percent = |p: &Option<envoy_types::pb::envoy::r#type::v3::Percent>| {
        p.as_ref().map_or(10_000, |p| {
            (p.value.clamp(0.0, 100.0) * 100.0).round() as u32
        })
    };
    Some(Tracing {
        provider,
        client_sampling: percent(&t.client_sampling),
        random_sampling: percent(&t.random_sampling),
        overall_sampling: percent(&t.overall_sampling),
        max_path_tag_length: u32_or(&t.max_path_tag_length, 256),
        custom_tags: t
            .custom_tags
            .iter()
            .enumerate()
            .filter_map(|(i, tag)| custom_tag(tag, &at.field("custom_tags").index(i), out))
            .collect(),
        spawn_upstream_span: bool_or(&t.spawn_upstream_span, false),
        // Set from the router's config by the connection manager.
        start_child_span: false,
    })
}

fn provider(p: &trace::tracing::Http, at: &Path, out: &mut Out) -> Option<Provider> {
    let Some(trace::tracing::http::ConfigType::TypedConfig(any)) = &p.config_type else {
        out.error(at, "the tracing provider needs a `typed_config`");
        return None;
    };
    let at = at.field("typed_config");
    match type_name(any) {
        OPENTELEMETRY => {
            let c: trace::OpenTelemetryConfig = decode_any(any, &at, out)?;
            opentelemetry(&c, &at, out).map(Provider::OpenTelemetry)
        }
        ZIPKIN => {
            let c: trace::ZipkinConfig = decode_any(any, &at, out)?;
            zipkin(&c, &at, out).map(Provider::Zipkin)
        }
        super::tracing_datadog::DATADOG => {
            let c: trace::DatadogConfig = decode_any(any, &at, out)?;
            Some(Provider::Datadog(super::tracing_datadog::datadog(&c)))
        }
        SKYWALKING => {
            let c: trace::SkyWalkingConfig = decode_any(any, &at, out)?;
            skywalking(&c, &at, out).map(Provider::SkyWalking)
        }
        other => {
            out.error(
                &at,
                format!("{other} is not a tracer Outrigger runs; use OpenTelemetryConfig, ZipkinConfig, DatadogConfig or SkyWalkingConfig"),
            );
            None
        }
    }
}

fn opentelemetry(
    c: &trace::OpenTelemetryConfig,
    at: &Path,
    out: &mut Out,
) -> Option<OpenTelemetry> {
    let collector = match (&c.grpc_service, &c.http_service) {
        (Some(grpc), None) => grpc_collector(grpc, &at.field("grpc_service"), out)?,
        (None, Some(http)) => http_collector(http, &at.field("http_service"), out)?,
        _ => {
            out.error(
                at,
                "OpenTelemetryConfig needs exactly one of `grpc_service` (OTLP/gRPC) and `http_service` \
                 (OTLP/HTTP); Outrigger does not run a tracer that exports nowhere",
            );
            return None;
        }
    };
    let mut environment_resource = false;
    for (i, detector) in c.resource_detectors.iter().enumerate() {
        let at = at.field("resource_detectors").index(i);
        match detector.typed_config.as_ref().map(type_name) {
            Some(ENVIRONMENT_DETECTOR) => environment_resource = true,
            other => out.error(
                &at,
                format!(
                    "resource detector {} is not implemented; only the environment detector \
                     (EnvironmentResourceDetectorConfig) is",
                    other.unwrap_or("without typed_config")
                ),
            ),
        }
    }
    Some(OpenTelemetry {
        service_name: if c.service_name.is_empty() {
            "unknown_service:envoy".to_string()
        } else {
            c.service_name.clone()
        },
        collector,
        environment_resource,
    })
}

fn grpc_collector(g: &core::GrpcService, at: &Path, out: &mut Out) -> Option<OtlpCollector> {
    let Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(envoy)) = &g.target_specifier else {
        out.error(
            at,
            "the OTLP collector must be named as `envoy_grpc: {cluster_name: ...}` (google_grpc is not \
             supported)",
        );
        return None;
    };
    // The table marks `GrpcService.timeout` supported for ext_authz; the OTLP exporter keeps its own.
    if g.timeout.is_some() {
        out.warning(
            &at.field("timeout"),
            "accepted, but the OTLP exporter's timeout is not enforced yet (exports give up after 5 s)",
        );
    }
    Some(OtlpCollector::Grpc {
        target: CollectorTarget::Cluster(envoy.cluster_name.clone()),
        timeout: EXPORT_TIMEOUT,
        headers: Vec::new(),
    })
}

fn http_collector(h: &core::HttpService, at: &Path, out: &mut Out) -> Option<OtlpCollector> {
    let Some(uri) = &h.http_uri else {
        out.error(&at.field("http_uri"), "http_service needs an `http_uri`");
        return None;
    };
    let at_uri = at.field("http_uri");
    let Some(core::http_uri::HttpUpstreamType::Cluster(cluster)) = &uri.http_upstream_type else {
        out.error(
            &at_uri.field("cluster"),
            "http_uri needs the `cluster` spans are sent to",
        );
        return None;
    };
    let Some((authority, path)) = split_uri(&uri.uri) else {
        out.error(
            &at_uri.field("uri"),
            format!(
                "{:?} is not an http:// URI; write e.g. http://collector:4318/v1/traces",
                uri.uri
            ),
        );
        return None;
    };
    Some(OtlpCollector::Http {
        target: CollectorTarget::Cluster(cluster.clone()),
        path,
        authority,
        // Required (PGV); each export waits this long for the collector's answer.
        timeout: timeout_or(&uri.timeout, None).unwrap_or(EXPORT_TIMEOUT),
        headers: Vec::new(),
    })
}

/// `http://host:port/path` -> (`host:port`, `/path`); the exporter speaks plaintext HTTP only.
fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return None;
    }
    let path = if path.is_empty() { "/" } else { path };
    Some((authority.to_string(), path.to_string()))
}

fn zipkin(c: &trace::ZipkinConfig, at: &Path, out: &mut Out) -> Option<Zipkin> {
    use trace::zipkin_config::{CollectorEndpointVersion as V, TraceContextOption as T};
    if !matches!(
        V::try_from(c.collector_endpoint_version),
        Ok(V::HttpJson | V::DeprecatedAndUnavailableDoNotUse)
    ) {
        out.error(
            &at.field("collector_endpoint_version"),
            "only HTTP_JSON (Zipkin JSON v2) is implemented; HTTP_PROTO and GRPC are not",
        );
        return None;
    }
    if c.collector_cluster.is_empty() || c.collector_endpoint.is_empty() {
        out.error(
            at,
            "ZipkinConfig needs `collector_cluster` and `collector_endpoint` (e.g. /api/v2/spans)",
        );
        return None;
    }
    Some(Zipkin {
        collector_cluster: c.collector_cluster.clone(),
        collector_endpoint: c.collector_endpoint.clone(),
        // Envoy's default `collector_hostname` (the only one: the field is refused).
        collector_hostname: c.collector_cluster.clone(),
        trace_id_128bit: c.trace_id_128bit,
        shared_span_context: bool_or(&c.shared_span_context, true),
        w3c: matches!(
            T::try_from(c.trace_context_option),
            Ok(T::UseB3WithW3cPropagation)
        ),
    })
}

fn skywalking(c: &trace::SkyWalkingConfig, at: &Path, out: &mut Out) -> Option<SkyWalking> {
    let at_grpc = at.field("grpc_service");
    let Some(core::GrpcService {
        target_specifier: Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(envoy)),
        timeout,
        ..
    }) = &c.grpc_service
    else {
        out.error(
            &at_grpc,
            "SkyWalkingConfig needs `grpc_service: {envoy_grpc: {cluster_name: ...}}` naming the collector's \
             cluster (google_grpc is not supported)",
        );
        return None;
    };
    if !envoy.authority.is_empty() {
        out.error(
            &at_grpc.field("envoy_grpc").field("authority"),
            "an `authority` for the SkyWalking collector is not implemented; remove it",
        );
        return None;
    }
    let client = c.client_config.clone().unwrap_or_default();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    use trace::client_config::BackendTokenSpecifier;
    Some(SkyWalking {
        cluster: envoy.cluster_name.clone(),
        timeout: timeout_or(timeout, None),
        service_name: non_empty(&client.service_name),
        instance_name: non_empty(&client.instance_name),
        backend_token: client
            .backend_token_specifier
            .map(|BackendTokenSpecifier::BackendToken(t)| t),
        max_cache_size: u32_or(&client.max_cache_size, 1024),
    })
}

fn custom_tag(t: &tags::CustomTag, at: &Path, out: &mut Out) -> Option<CustomTag> {
    use tags::custom_tag::Type;
    let value = match &t.r#type {
        Some(Type::Literal(l)) => TagValue::Literal(l.value.clone()),
        Some(Type::Environment(e)) => TagValue::Environment {
            name: e.name.clone(),
            default: e.default_value.clone(),
        },
        Some(Type::RequestHeader(h)) => TagValue::RequestHeader {
            name: h.name.to_ascii_lowercase(),
            default: h.default_value.clone(),
        },
        _ => {
            out.error(
                at,
                "a custom tag needs `literal`, `environment` or `request_header` (metadata and value tags \
                 are not implemented)",
            );
            return None;
        }
    };
    Some(CustomTag {
        tag: t.tag.clone(),
        value,
    })
}

/// The clusters a tracing block sends spans to (the cross-reference check).
pub fn collector_cluster(t: &Tracing) -> Option<&str> {
    match &t.provider {
        Provider::OpenTelemetry(o) => match &o.collector {
            OtlpCollector::Grpc {
                target: CollectorTarget::Cluster(c),
                ..
            }
            | OtlpCollector::Http {
                target: CollectorTarget::Cluster(c),
                ..
            } => Some(c),
            _ => None,
        },
        Provider::Zipkin(z) => Some(&z.collector_cluster),
        Provider::Datadog(d) => Some(&d.collector_cluster),
        Provider::SkyWalking(s) => Some(&s.cluster),
    }
}

#[cfg(test)]
mod tests;
