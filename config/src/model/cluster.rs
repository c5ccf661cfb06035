//! Upstream clusters: discovery, endpoints, load balancing, limits and protocol options.

use super::core::{ConfigSource, Host, duration, optional_duration};
use super::health_check::HealthCheck;
use super::http::Http2Options;
use super::tls::UpstreamTls;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    /// Envoy's default: 5s.
    #[serde(serialize_with = "duration")]
    pub connect_timeout: Duration,
    pub lb_policy: LbPolicy,
    pub localities: Vec<LocalityEndpoints>,
    pub dns: DnsOptions,
    pub circuit_breakers: CircuitBreakers,
    /// Outlier detection is off unless configured.
    pub outlier_detection: Option<OutlierDetection>,
    /// `common_lb_config.healthy_panic_threshold`, in percent: below this share of healthy hosts in a
    /// priority, its load goes to all of its hosts. Envoy's default: 50; 0 disables panic.
    pub healthy_panic_threshold: f64,
    /// `common_lb_config.locality_weighted_lb_config`: within a priority, a locality is drawn first by its
    /// `load_balancing_weight` (scaled down by its healthy share), then the endpoint within it. Envoy's default: off
    /// (locality weights are ignored).
    pub locality_weighted: bool,
    /// `load_assignment.policy.overprovisioning_factor` (or EDS's), in percent: a priority's or locality's share
    /// of healthy hosts is scaled by it (capped at 100 %). Envoy's default: 140.
    pub overprovisioning_factor: u32,
    pub protocol: UpstreamProtocol,
    pub http2: Http2Options,
    /// Pooled connections idle this long are closed. Envoy's default: 1h.
    #[serde(serialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// ORIGINAL_DST: how often destinations unused since the last sweep are forgotten (their pooled
    /// connections closed). Envoy's default: 5s.
    #[serde(serialize_with = "duration")]
    pub cleanup_interval: Duration,
    /// TLS to every endpoint, unless a `transport_socket_matches` entry says otherwise.
    pub tls: Option<UpstreamTls>,
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    /// Active health checking (`health_checks`; at most one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// `outlier_detection.successful_active_health_check_uneject_host` (Envoy's default: true): a passed active
    /// check brings back a host outlier detection ejected.
    pub health_check_unejects: bool,
}

impl Cluster {
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.localities.iter().flat_map(|l| l.endpoints.iter())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Discovery {
    Static,
    StrictDns,
    LogicalDns,
    /// Each connection goes to the destination it had before iptables redirected it.
    OriginalDst,
    Eds {
        service_name: String,
        config_source: ConfigSource,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Envoy's default.
    RoundRobin,
    /// Power of two choices: the less loaded of two random endpoints.
    LeastRequest {
        choice_count: u32,
    },
    Random,
    /// The cluster picks the endpoint itself (ORIGINAL_DST).
    ClusterProvided,
    /// Consistent hashing on a ring of `xxHash64("<address>_<n>")` points (Envoy's Ketama ring).
    RingHash {
        /// Envoy's default: 1024.
        min_ring_size: u64,
        /// Envoy's default: 8M (8388608).
        max_ring_size: u64,
    },
    /// Consistent hashing with Google's Maglev lookup table.
    Maglev {
        /// Envoy's default: 65537 (a prime).
        table_size: u64,
    },
}

impl LbPolicy {
    /// Whether the policy reads the request's hash (`RouteAction.hash_policy`).
    pub fn hashes(self) -> bool {
        matches!(self, LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. })
    }
}

/// The endpoints of one cluster, as EDS delivers them (a `ClusterLoadAssignment`).
#[derive(Clone, Debug, Serialize)]
pub struct ClusterEndpoints {
    pub cluster_name: String,
    pub localities: Vec<LocalityEndpoints>,
    /// `policy.overprovisioning_factor`, in percent. Envoy's default: 140.
    pub overprovisioning_factor: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct LocalityEndpoints {
    pub locality: Option<Locality>,
    /// Envoy's default: 0 (the highest).
    pub priority: u32,
    pub load_balancing_weight: Option<u32>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
    /// Envoy's default: 1.
    pub weight: u32,
    pub health_status: HealthStatus,
    /// `metadata.filter_metadata`, used by `transport_socket_matches` (for example `istio: {tlsMode: istio}`).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `health_check_config`: where and as whom active health checks reach this endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<EndpointHealthCheck>,
}

/// `Endpoint.health_check_config`: active checks go to this port or address instead of the endpoint's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointHealthCheck {
    /// 0: the endpoint's port.
    pub port: u16,
    /// `None`: the endpoint's address.
    pub address: Option<std::net::SocketAddr>,
    /// The `Host` (HTTP) or `:authority` (gRPC) of the checks, over the checker's own.
    pub hostname: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
    Draining,
    Timeout,
    Degraded,
}

impl HealthStatus {
    /// Envoy sends traffic to UNKNOWN, HEALTHY and DEGRADED hosts.
    pub fn receives_traffic(self) -> bool {
        matches!(
            self,
            HealthStatus::Unknown | HealthStatus::Healthy | HealthStatus::Degraded
        )
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct DnsOptions {
    /// Envoy's default: AUTO (IPv6 when the name has it, else IPv4).
    pub lookup_family: DnsLookupFamily,
    /// Envoy's default: 5s.
    #[serde(serialize_with = "duration")]
    pub refresh_rate: Duration,
    /// Envoy's default: false.
    pub respect_dns_ttl: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsLookupFamily {
    Auto,
    V4Only,
    V6Only,
    V4Preferred,
    All,
}

#[derive(Clone, Debug, Serialize)]
pub struct CircuitBreakers {
    pub default: Thresholds,
    pub high: Thresholds,
}

/// Limits for one routing priority. Envoy's defaults: 1024 connections, 1024 pending, 1024 requests,
/// 3 concurrent retries.
#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    /// When set, replaces `max_retries` with a share of active requests.
    pub retry_budget: Option<RetryBudget>,
    pub track_remaining: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
            track_remaining: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct RetryBudget {
    /// Envoy's default: 20%.
    pub budget_percent: f64,
    /// Envoy's default: 3.
    pub min_retry_concurrency: u32,
}

/// Passive health checking with Envoy's defaults.
#[derive(Clone, Debug, Serialize)]
pub struct OutlierDetection {
    /// Envoy's default: 5.
    pub consecutive_5xx: u32,
    /// Envoy's default: 100 (%).
    pub enforcing_consecutive_5xx: u32,
    /// Envoy's default: 5.
    pub consecutive_gateway_failure: u32,
    /// Envoy's default: 0 (%), so gateway failures alone eject nobody unless this is raised.
    pub enforcing_consecutive_gateway_failure: u32,
    /// Envoy's default: 5.
    pub consecutive_local_origin_failure: u32,
    /// Envoy's default: 100 (%).
    pub enforcing_consecutive_local_origin_failure: u32,
    /// Envoy's default: false.
    pub split_external_local_origin_errors: bool,
    /// Envoy's default: 10s.
    #[serde(serialize_with = "duration")]
    pub interval: Duration,
    /// Envoy's default: 30s (times the number of ejections).
    #[serde(serialize_with = "duration")]
    pub base_ejection_time: Duration,
    /// Envoy's default: 300s.
    #[serde(serialize_with = "duration")]
    pub max_ejection_time: Duration,
    /// Envoy's default: 10 (%).
    pub max_ejection_percent: u32,
    /// Envoy's default: 100 (%).
    pub enforcing_success_rate: u32,
    /// Envoy's default: 5.
    pub success_rate_minimum_hosts: u32,
    /// Envoy's default: 100.
    pub success_rate_request_volume: u32,
    /// Envoy's default: 1900 (1.9 standard deviations).
    pub success_rate_stdev_factor: u32,
    /// Envoy's default: 0 (%).
    pub enforcing_failure_percentage: u32,
    /// Envoy's default: 85.
    pub failure_percentage_threshold: u32,
    /// Envoy's default: 5.
    pub failure_percentage_minimum_hosts: u32,
    /// Envoy's default: 50.
    pub failure_percentage_request_volume: u32,
    /// Envoy's default: 100 (%). Split mode only.
    pub enforcing_local_origin_success_rate: u32,
    /// Envoy's default: 0 (%). Split mode only.
    pub enforcing_failure_percentage_local_origin: u32,
    /// Envoy's default: 0 (a random 0..=jitter is added to each ejection).
    #[serde(serialize_with = "duration")]
    pub max_ejection_time_jitter: Duration,
    /// Envoy's default: false. True allows one ejection whatever `max_ejection_percent` says.
    pub always_eject_one_host: bool,
}

/// The HTTP version spoken to the endpoints (`HttpProtocolOptions`, or the legacy cluster fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamProtocol {
    /// Envoy's default.
    Http1,
    Http2,
    /// Whatever the downstream request used.
    UseDownstream,
    /// h2 when the TLS handshake negotiates it by ALPN, else HTTP/1.1.
    Auto,
}

/// One `transport_socket_matches` entry: endpoints whose metadata contains `match` get this TLS (or plaintext).
#[derive(Clone, Debug, Serialize)]
pub struct TransportSocketMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub criteria: serde_json::Map<String, serde_json::Value>,
    /// `None` is plaintext (`envoy.transport_sockets.raw_buffer`).
    pub tls: Option<UpstreamTls>,
}
