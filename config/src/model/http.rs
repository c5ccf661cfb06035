//! The HTTP connection manager and its HTTP filters.

use super::core::{ConfigSource, Fraction, HeaderToAdd, duration, optional_duration};
use super::rate_limit::{LocalDescriptor, RateLimit, VhRateLimits};
use super::route::RouteConfig;
use serde::Serialize;
use std::time::Duration;

mod decompressor;
mod filters;
pub use decompressor::{
    DecompressionDirection, Decompressor, DecompressorLibrary, GrpcHttp1Bridge,
};
pub use filters::{
    Buffer, Compressor, CompressorLibrary, CompressorRoute, DEFAULT_COMPRESSED_TYPES, HealthCheck,
};

/// `envoy.filters.network.http_connection_manager`.
#[derive(Clone, Debug, Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec_type: CodecType,
    pub routes: RouteSource,
    /// In order; the router is always last.
    pub http_filters: Vec<HttpFilter>,
    /// The `server` header on responses. Envoy's default: "envoy"; ours names us.
    pub server_name: String,
    /// Envoy's default: 5m; `0s` disables it. A stream with no activity either way for this long ends: 408
    /// `stream timeout` before the response starts while the request is still arriving, 504 once it has
    /// arrived, a reset after the response started. A route's `idle_timeout` replaces it.
    #[serde(serialize_with = "optional_duration")]
    pub stream_idle_timeout: Option<Duration>,
    /// Envoy's default: disabled. The whole request must arrive in time, else 408 `request timeout` (HTTP/1
    /// and h2 alike: the end of the request body is seen on the body itself).
    #[serde(serialize_with = "optional_duration")]
    pub request_timeout: Option<Duration>,
    /// Envoy's default: disabled.
    #[serde(serialize_with = "optional_duration")]
    pub request_headers_timeout: Option<Duration>,
    /// Envoy's default: 5s (between the first GOAWAY and closing the connection while draining).
    #[serde(serialize_with = "duration")]
    pub drain_timeout: Duration,
    /// `common_http_protocol_options.idle_timeout`. Envoy's default: 1h. With no stream open for this long
    /// the connection is drained (closed at once if it never sent a byte).
    #[serde(serialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_connection_duration`. Envoy's default: disabled. The connection is
    /// drained once this old.
    #[serde(serialize_with = "optional_duration")]
    pub max_connection_duration: Option<Duration>,
    /// Envoy's default: 60.
    pub max_request_headers_kb: u32,
    /// `common_http_protocol_options.max_headers_count`. Envoy's default: 100. More headers (on h2, counting
    /// pseudo-headers): 431 on HTTP/1, a reset h2 stream.
    pub max_headers_count: u32,
    /// `common_http_protocol_options.max_requests_per_connection`. Envoy's default: unlimited (0 too). The
    /// response to the last request closes an HTTP/1 connection (`Connection: close`) and an h2 connection is
    /// sent GOAWAY (`downstream_cx_max_requests_reached`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Envoy's default: true.
    pub generate_request_id: bool,
    /// Envoy's default: false.
    pub use_remote_address: bool,
    /// Envoy's default: 0. With `use_remote_address`, the client is the Nth address from the right of
    /// `x-forwarded-for` (`x-envoy-external-address`), and `x-forwarded-proto` is trusted; without it, nothing
    /// observable changes (no address is internal in Envoy 1.40 without `internal_address_config`).
    pub xff_num_trusted_hops: u32,
    /// Envoy's default: false.
    pub skip_xff_append: bool,
    /// Envoy's default: false. Requests get `x-envoy-downstream-service-cluster` (the node's cluster),
    /// `x-envoy-downstream-service-node` (the node's id, when set) and, without one, `user-agent` (the cluster).
    pub add_user_agent: bool,
    /// Upgrade types allowed (`websocket`, ...), lower case.
    pub upgrade_types: Vec<String>,
    /// Envoy's default: false. Dot segments resolved and escapes canonicalized (Chromium's rules, as Envoy)
    /// before routing; the upstream gets the new path.
    pub normalize_path: bool,
    /// Envoy's default: false. Runs of `/` collapsed, after `normalize_path`.
    pub merge_slashes: bool,
    pub http2: Http2Options,
    pub forward_client_cert_details: ForwardClientCertDetails,
    /// What `x-forwarded-client-cert` carries about the client certificate (with APPEND_FORWARD/SANITIZE_SET).
    pub set_current_client_cert_details: ClientCertDetails,
    /// `access_log`: a line per request, written when the response has been sent (or the stream ended).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<super::access_log::AccessLog>,
    /// `tracing`: none, and nothing is traced (one check per request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<super::tracing::Tracing>,
}

/// `set_current_client_cert_details`. Envoy adds `By` and `Hash` always; these add more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodecType {
    /// HTTP/1.1 or h2, chosen per connection by ALPN or the h2 preface. Envoy's default.
    Auto,
    Http1,
    Http2,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// `route_config`, inline.
    Static(RouteConfig),
    /// `rds`: a route configuration named `route_config_name`, from a control plane.
    Rds {
        route_config_name: String,
        config_source: ConfigSource,
    },
}

/// HTTP/2 settings (`http2_protocol_options`), for either side of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Http2Options {
    /// Envoy's default: 2147483647.
    pub max_concurrent_streams: u32,
    /// Envoy's default: 268435456.
    pub initial_stream_window_size: u32,
    /// Envoy's default: 268435456.
    pub initial_connection_window_size: u32,
    /// `connection_keepalive`: PINGs on the connection, which is closed when one goes unanswered. Acted on for
    /// the clusters that reach a control plane (ADS, SDS); the loader refuses it elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<Keepalive>,
}

/// `KeepaliveSettings`: a PING every `interval` (none without one), answered within `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Keepalive {
    #[serde(serialize_with = "optional_duration")]
    pub interval: Option<Duration>,
    #[serde(serialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Http2Options {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 2_147_483_647,
            initial_stream_window_size: 268_435_456,
            initial_connection_window_size: 268_435_456,
            keepalive: None,
        }
    }
}

/// What to do with `x-forwarded-client-cert`. Envoy's default: SANITIZE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    #[default]
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFilter {
    Compressor(Compressor),
    Decompressor(Decompressor),
    GrpcHttp1Bridge(GrpcHttp1Bridge),
    HealthCheck(HealthCheck),
    Buffer(Buffer),
    Cache(super::cache::Cache),
    Cors(super::cors::Cors),
    Csrf(super::csrf::Csrf),
    Fault(Fault),
    LocalRateLimit(LocalRateLimit),
    Rbac(super::rbac::HttpRbac),
    ExtAuthz(super::ext_authz::ExtAuthz),
    Router(Router),
}

/// `envoy.filters.http.fault`: delays and aborts injected into a share of requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
    /// Envoy's default: no limit. Past it, a request gets no fault (`faults_overflow`).
    pub max_active_faults: Option<u32>,
    /// Only requests matching every one of these get a fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<super::route::HeaderMatcher>,
}

/// A `FractionalPercent` kept whole: a header may lower the numerator over the same denominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Percentage {
    pub numerator: u32,
    /// 100, 10 000 or 1 000 000.
    pub denominator: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultDelay {
    /// `fixed_delay`, or `None` for `header_delay` (`x-envoy-fault-delay-request`, milliseconds).
    #[serde(serialize_with = "optional_duration")]
    pub fixed: Option<Duration>,
    /// Envoy's default: 0 %.
    pub percentage: Percentage,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultAbort {
    /// `http_status`, or `None` for `header_abort` (`x-envoy-fault-abort-request`).
    pub http_status: Option<u16>,
    /// Envoy's default: 0 %.
    pub percentage: Percentage,
}

/// `envoy.filters.http.router`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Router {
    /// Envoy's default: false (the router adds `x-envoy-*` headers).
    pub suppress_envoy_headers: bool,
    /// Envoy's default: false. With a `tracing` block, each upstream attempt gets a child span (the
    /// connection manager's `Tracing.start_child_span` carries it to the tracer).
    pub start_child_span: bool,
}

/// `envoy.filters.http.local_ratelimit`: a token bucket, per listener or per route, and buckets per descriptor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalRateLimit {
    pub stat_prefix: String,
    /// Absent on a filter that only routes configure.
    pub token_bucket: Option<TokenBucket>,
    /// Share of requests the filter looks at. Envoy's default: 0 (off) when `filter_enabled` is absent.
    pub filter_enabled: Fraction,
    /// Share of limited requests actually refused. Envoy's default: 0 (count only) when absent.
    pub filter_enforced: Fraction,
    /// Envoy's default: 429.
    pub status: u16,
    pub response_headers_to_add: Vec<HeaderToAdd>,
    /// Envoy's default: false (one bucket for the whole listener).
    pub local_rate_limit_per_downstream_connection: bool,
    /// `enable_x_ratelimit_headers: DRAFT_VERSION_03`: `x-ratelimit-limit`, `-remaining` and `-reset` on every
    /// response the filter sees (from the bucket that decided). Envoy's default: off.
    pub x_ratelimit_headers: bool,
    /// Descriptors with buckets of their own, matched against the descriptors the request produces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub descriptors: Vec<LocalDescriptor>,
    /// Envoy's default: 0. Only route and virtual host `rate_limits` of this stage are read.
    pub stage: u32,
    /// Envoy's default: OVERRIDE.
    pub vh_rate_limits: VhRateLimits,
    /// Envoy's default: true. Whether a request that matched a descriptor also takes a token from
    /// `token_bucket`.
    pub always_consume_default_token_bucket: bool,
    /// Envoy's default: 20. How many distinct values each wildcard descriptor keeps a bucket for (least
    /// recently used first out).
    pub max_dynamic_descriptors: u32,
    /// The filter's own actions: when set, routes' and virtual hosts' `rate_limits` are not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TokenBucket {
    pub max_tokens: u32,
    /// Envoy's default: 1.
    pub tokens_per_fill: u32,
    #[serde(serialize_with = "duration")]
    pub fill_interval: Duration,
}
