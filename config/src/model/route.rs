//! Route tables: virtual hosts, route matches and actions.

use super::core::{HeaderMutations, Pattern, StringMatcher, duration, optional_duration};
use super::http::LocalRateLimit;
use super::rate_limit::RateLimit;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct RouteConfig {
    pub name: String,
    /// Refuse routes to clusters that do not exist. Envoy's default: true for inline route tables, false for RDS.
    pub validate_clusters: bool,
    pub virtual_hosts: Vec<VirtualHost>,
    #[serde(skip_serializing_if = "HeaderMutations::is_empty")]
    pub headers: HeaderMutations,
}

#[derive(Clone, Debug, Serialize)]
pub struct VirtualHost {
    pub name: String,
    /// Exact hosts, `*.suffix`, `prefix.*` or `*`, lower case.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    #[serde(skip_serializing_if = "HeaderMutations::is_empty")]
    pub headers: HeaderMutations,
    /// Applies to routes that have none of their own.
    pub retry_policy: Option<RetryPolicy>,
    /// Envoy's default: false. Sends `x-envoy-attempt-count` upstream.
    pub include_request_attempt_count: bool,
    /// Envoy's default: false. Returns `x-envoy-attempt-count` to the client.
    pub include_attempt_count_in_response: bool,
    /// Rate limit actions for the local rate limit filter (see `Forward::include_vh_rate_limits`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// `typed_per_filter_config` by the filter's name (only CORS and CSRF policies are taken at this level).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_filter: Vec<(String, PerFilterConfig)>,
    /// The deprecated `cors` field: read only when no `typed_per_filter_config` policy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<super::cors::CorsPolicy>,
}

impl VirtualHost {
    /// The virtual host's config for the filter named `name`, if it has one.
    pub fn per_filter(&self, name: &str) -> Option<&PerFilterConfig> {
        self.per_filter
            .iter()
            .find_map(|(n, c)| (n == name).then_some(c))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: RouteAction,
    #[serde(skip_serializing_if = "HeaderMutations::is_empty")]
    pub headers: HeaderMutations,
    /// `typed_per_filter_config` for `envoy.filters.http.local_ratelimit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimit>,
    /// `typed_per_filter_config` of other filters, by the filter's name (Envoy looks them up by name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_filter: Vec<(String, PerFilterConfig)>,
    /// `typed_per_filter_config` for compressor filters, by filter name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compressors: Vec<super::http::CompressorRoute>,
    /// How much of a request body is kept for retries: the route's limit, else its virtual host's; none
    /// means the listener's `per_connection_buffer_limit_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_limit: Option<BufferLimit>,
    /// `decorator`: the span's operation name, and whether `x-envoy-decorator-operation` carries it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decorator: Option<Decorator>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Decorator {
    pub operation: String,
    pub propagate: bool,
}

/// A route's config for one HTTP filter, replacing the filter's own on that route.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerFilterConfig {
    Rbac(super::rbac::RbacPerRoute),
    ExtAuthz(super::ext_authz::ExtAuthzPerRoute),
    Cors(super::cors::CorsPolicy),
    Csrf(super::csrf::CsrfPolicy),
}

impl Route {
    /// The route's config for the filter named `name`, if it has one.
    pub fn per_filter(&self, name: &str) -> Option<&PerFilterConfig> {
        self.per_filter
            .iter()
            .find_map(|(n, c)| (n == name).then_some(c))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferLimit {
    /// `request_body_buffer_limit`: replaces the listener's limit.
    RequestBody(u64),
    /// `per_request_buffer_limit_bytes` (deprecated): the smaller of it and the listener's limit applies.
    PerRequest(u32),
}

impl BufferLimit {
    /// The effective limit given the listener's `per_connection_buffer_limit_bytes`.
    pub fn effective(limit: Option<BufferLimit>, listener: u32) -> u64 {
        match limit {
            Some(BufferLimit::RequestBody(limit)) => limit,
            Some(BufferLimit::PerRequest(limit)) => u64::from(limit.min(listener)),
            None => u64::from(listener),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Envoy's default: true.
    pub case_sensitive: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatcher>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only gRPC requests (`content-type: application/grpc...`).
    pub grpc: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Prefix(String),
    Path(String),
    SafeRegex(Pattern),
    /// Matches the prefix only at a `/` boundary: `/api` takes `/api` and `/api/x`, not `/apix`.
    PathSeparatedPrefix(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeaderMatcher {
    pub name: String,
    pub rule: HeaderRule,
    /// Envoy's default: false.
    pub invert_match: bool,
    /// Envoy's default: false.
    pub treat_missing_header_as_empty: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderRule {
    Present(bool),
    Matches(StringMatcher),
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryParameterMatcher {
    pub name: String,
    /// `None`: the parameter must be present.
    pub string_match: Option<StringMatcher>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    Route(Box<Forward>),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

/// `route`: send the request upstream.
#[derive(Clone, Debug, Serialize)]
pub struct Forward {
    pub target: ClusterTarget,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: HostRewrite,
    /// Envoy's default: 15s; `0s` disables it.
    #[serde(serialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Envoy's default: none (the connection manager's stream idle timeout applies).
    #[serde(serialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// The route's own policy, or else its virtual host's.
    pub retry_policy: Option<RetryPolicy>,
    /// `hedge_policy.hedge_on_per_try_timeout`: when the per-try timeout fires, start another attempt without
    /// cancelling the first; the first good answer wins. Envoy's default: false.
    pub hedge_on_per_try_timeout: bool,
    /// Rate limit actions for the local rate limit filter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Envoy's default: false (deprecated in Envoy). The virtual host's `rate_limits` count too, whatever the
    /// filter's `vh_rate_limits` says.
    pub include_vh_rate_limits: bool,
    /// `upgrade_configs`: upgrade types (lower case) this route allows (`true`) or refuses (`false`) whatever
    /// the connection manager says; a type not listed here follows the connection manager's `upgrade_configs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<(String, bool)>,
    /// `hash_policy`: what a consistent-hash cluster (RING_HASH, MAGLEV) hashes to choose the endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
    /// `request_mirror_policies`: copies of each request sent, fire and forget, to other clusters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorPolicy>,
    /// The deprecated `cors` field: read only when no `typed_per_filter_config` policy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<super::cors::CorsPolicy>,
}

/// One `RouteAction.RequestMirrorPolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MirrorPolicy {
    /// `cluster`, or the cluster named by the `cluster_header` request header.
    pub target: MirrorTarget,
    /// `runtime_fraction.default_value` (no runtime layers are read). Envoy's default: 100 %.
    pub fraction: super::http::Percentage,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorTarget {
    Cluster(String),
    /// A request header (lower case) naming the cluster; no header or an unknown cluster: no mirror.
    ClusterHeader(String),
}

/// One `RouteAction.HashPolicy` entry. Each that finds its input contributes `xxHash64(value)`; they combine as
/// Envoy combines them (the hash so far rotated left by one, XORed with the new one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HashPolicy {
    pub input: HashInput,
    /// Envoy's default: false. True: once a hash exists, the later entries are not read.
    pub terminal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashInput {
    /// A request header (lower case); several values are sorted and hashed together.
    Header(String),
    /// A cookie's value (no cookie is generated: `ttl` is refused).
    Cookie(String),
    /// The downstream address's IP, as text.
    SourceIp,
    /// The first query parameter of that name.
    QueryParameter(String),
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterTarget {
    /// (Shared: every request's record and span names it.)
    Cluster(std::sync::Arc<str>),
    WeightedClusters(Vec<WeightedCluster>),
    /// The cluster named by this request header.
    ClusterHeader(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct WeightedCluster {
    pub name: std::sync::Arc<str>,
    pub weight: u32,
    #[serde(skip_serializing_if = "HeaderMutations::is_empty")]
    pub headers: HeaderMutations,
}

#[derive(Clone, Debug, Serialize)]
pub struct RegexRewrite {
    pub pattern: Pattern,
    pub substitution: String,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRewrite {
    #[default]
    Keep,
    Literal(String),
    /// `auto_host_rewrite`: the upstream host's name (DNS clusters only; otherwise kept).
    Auto,
}

/// Envoy's `RetryPolicy` with its defaults.
#[derive(Clone, Debug, Serialize)]
pub struct RetryPolicy {
    pub retry_on: Vec<RetryOn>,
    /// Envoy's default: 1.
    pub num_retries: u32,
    #[serde(serialize_with = "optional_duration")]
    pub per_try_timeout: Option<Duration>,
    /// No data from the upstream for this long ends the attempt (before the headers: retried like a per-try
    /// timeout; after: the response is reset). Envoy's default: none.
    #[serde(serialize_with = "optional_duration")]
    pub per_try_idle_timeout: Option<Duration>,
    /// Envoy's default: 25ms.
    #[serde(serialize_with = "duration")]
    pub back_off_base: Duration,
    /// Envoy's default: 10 times the base.
    #[serde(serialize_with = "duration")]
    pub back_off_max: Duration,
    pub retriable_status_codes: Vec<u16>,
    /// `retry_host_predicate` `envoy.retry_host_predicates.previous_hosts`: try a different host each time.
    pub avoid_previous_hosts: bool,
    /// Envoy's default: 1.
    pub host_selection_retry_max_attempts: i64,
    /// With `retriable-headers`: a response matching one of these is retried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_headers: Vec<HeaderMatcher>,
    /// When set, only requests matching one of these are retried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_request_headers: Vec<HeaderMatcher>,
    /// `rate_limited_retry_back_off`: wait what the upstream's reset header says.
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RateLimitedBackOff {
    pub reset_headers: Vec<ResetHeader>,
    /// Envoy's default: 300s. A longer reset falls back to the exponential back-off.
    #[serde(serialize_with = "duration")]
    pub max_interval: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResetHeader {
    /// Lower case.
    pub name: String,
    /// `UNIX_TIMESTAMP`; else `SECONDS`.
    pub unix_timestamp: bool,
}

/// The conditions of `retry_on`, HTTP and gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    #[serde(rename = "5xx")]
    FiveXx,
    GatewayError,
    Reset,
    ResetBeforeRequest,
    ConnectFailure,
    EnvoyRatelimited,
    Retriable4xx,
    RefusedStream,
    RetriableStatusCodes,
    RetriableHeaders,
    Http3PostConnectFailure,
    Cancelled,
    DeadlineExceeded,
    Internal,
    ResourceExhausted,
    Unavailable,
}

impl RetryOn {
    pub const ALL: &[(&'static str, RetryOn)] = &[
        ("5xx", RetryOn::FiveXx),
        ("gateway-error", RetryOn::GatewayError),
        ("reset", RetryOn::Reset),
        ("reset-before-request", RetryOn::ResetBeforeRequest),
        ("connect-failure", RetryOn::ConnectFailure),
        ("envoy-ratelimited", RetryOn::EnvoyRatelimited),
        ("retriable-4xx", RetryOn::Retriable4xx),
        ("refused-stream", RetryOn::RefusedStream),
        ("retriable-status-codes", RetryOn::RetriableStatusCodes),
        ("retriable-headers", RetryOn::RetriableHeaders),
        (
            "http3-post-connect-failure",
            RetryOn::Http3PostConnectFailure,
        ),
        ("cancelled", RetryOn::Cancelled),
        ("deadline-exceeded", RetryOn::DeadlineExceeded),
        ("internal", RetryOn::Internal),
        ("resource-exhausted", RetryOn::ResourceExhausted),
        ("unavailable", RetryOn::Unavailable),
    ];

    pub fn parse(name: &str) -> Option<RetryOn> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Redirect {
    /// `https_redirect: true` is written here as `https`.
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: RedirectPath,
    /// Envoy's default: 301.
    pub response_code: u16,
    /// Envoy's default: false.
    pub strip_query: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPath {
    Keep,
    Path(String),
    PrefixRewrite(String),
    RegexRewrite(RegexRewrite),
}

#[derive(Clone, Debug, Serialize)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Option<String>,
}
