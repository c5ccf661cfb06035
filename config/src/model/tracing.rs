//! The connection manager's `tracing` block: which requests are traced, how the trace context travels, and
//! where finished spans go.

use serde::Serialize;
use std::time::Duration;

/// `HttpConnectionManager.tracing`. Without one the connection manager traces nothing (Envoy's rule).
#[derive(Clone, Debug, Serialize)]
pub struct Tracing {
    pub provider: Provider,
    /// Out of 10,000 (Envoy turns the `Percent` into a `FractionalPercent` of TEN_THOUSAND). Envoy's default for
    /// each of the three: 100 %.
    pub client_sampling: u32,
    pub random_sampling: u32,
    pub overall_sampling: u32,
    /// Envoy's default: 256. `http.url` is cut to this many characters.
    pub max_path_tag_length: u32,
    pub custom_tags: Vec<CustomTag>,
    /// Envoy's default: false. True: each upstream attempt gets a CLIENT span of its own, child of the
    /// downstream span, and that span's context is what travels upstream.
    pub spawn_upstream_span: bool,
    /// The router's `start_child_span` (Envoy's default: false): a child span per upstream attempt as with
    /// `spawn_upstream_span`, but the downstream span keeps the kind it has without one.
    pub start_child_span: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// `envoy.tracers.opentelemetry`: W3C `traceparent`/`tracestate`, spans over OTLP.
    OpenTelemetry(OpenTelemetry),
    /// `envoy.tracers.zipkin`: B3 headers (and W3C with `USE_B3_WITH_W3C_PROPAGATION`), spans as Zipkin JSON v2.
    Zipkin(Zipkin),
    /// `envoy.tracers.datadog`: Datadog and W3C headers, spans as msgpack to the agent's `/v0.4/traces`.
    Datadog(Datadog),
    /// `envoy.tracers.skywalking`: the `sw8` header, segments over SkyWalking's gRPC `collect` stream.
    SkyWalking(SkyWalking),
}

/// `envoy.config.trace.v3.DatadogConfig`.
#[derive(Clone, Debug, Serialize)]
pub struct Datadog {
    /// The agent's cluster (its first endpoint).
    pub collector_cluster: String,
    /// The spans' `service`.
    pub service_name: String,
    /// The `Host` of the requests to the agent; Envoy's default: the cluster name.
    pub collector_hostname: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SkyWalking {
    /// `grpc_service.envoy_grpc.cluster_name`.
    pub cluster: String,
    /// `grpc_service.timeout`; None: no deadline on the stream (Envoy's default).
    #[serde(serialize_with = "super::core::optional_duration")]
    pub timeout: Option<Duration>,
    /// `client_config.service_name`; None: the node's `cluster` (Envoy's default).
    pub service_name: Option<String>,
    /// `client_config.instance_name`; None: the node's `id` (Envoy's default).
    pub instance_name: Option<String>,
    /// `client_config.backend_token`, sent as the `authentication` metadata of the stream.
    pub backend_token: Option<String>,
    /// `client_config.max_cache_size`; Envoy's default: 1024 segments kept while the collector is away.
    pub max_cache_size: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenTelemetry {
    /// Envoy's default: `unknown_service:envoy`.
    pub service_name: String,
    pub collector: OtlpCollector,
    /// Resource attributes from `resource_detectors` (the environment detector reads
    /// `OTEL_RESOURCE_ATTRIBUTES` when the proxy starts).
    pub environment_resource: bool,
}

/// Where OTLP spans go.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCollector {
    /// `grpc_service`: `TraceService/Export` over h2c.
    Grpc {
        target: CollectorTarget,
        /// `grpc_service.timeout`; Envoy's default for the OTLP exporter: none set, we use 5s.
        #[serde(serialize_with = "super::core::duration")]
        timeout: Duration,
        /// `initial_metadata`, sent with every export.
        headers: Vec<(String, String)>,
    },
    /// `http_service`: a POST of the protobuf body to `http_uri.uri`'s path.
    Http {
        target: CollectorTarget,
        path: String,
        /// The `:authority` sent: the host of `http_uri.uri`.
        authority: String,
        #[serde(serialize_with = "super::core::duration")]
        timeout: Duration,
        headers: Vec<(String, String)>,
    },
}

/// The collector's address: a cluster of the configuration (its first endpoint), or a `google_grpc`
/// `target_uri` (`host:port`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CollectorTarget {
    Cluster(String),
    Address(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct Zipkin {
    pub collector_cluster: String,
    /// The path spans are POSTed to (`/api/v2/spans`).
    pub collector_endpoint: String,
    /// `collector_hostname`; Envoy's default: the cluster name.
    pub collector_hostname: String,
    /// Envoy's default: false (64-bit trace ids for new traces).
    pub trace_id_128bit: bool,
    /// Envoy's default: true. The server span takes the span id of the client span it continues.
    pub shared_span_context: bool,
    /// `trace_context_option: USE_B3_WITH_W3C_PROPAGATION`: `traceparent` written too, and read when no B3
    /// header came.
    pub w3c: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagValue {
    Literal(String),
    /// Read once when the proxy starts; the default when unset (no tag when that is empty).
    Environment {
        name: String,
        default: String,
    },
    /// The request header's value, else the default (no tag when that is empty).
    RequestHeader {
        name: String,
        default: String,
    },
}
