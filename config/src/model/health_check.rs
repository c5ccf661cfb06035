//! Active health checking of a cluster's endpoints (`Cluster.health_checks`), with Envoy's defaults.

use super::core::{HeaderToAdd, duration};
use serde::Serialize;
use std::time::Duration;

/// One `HealthCheck`: how often each endpoint is probed, and how many results move it between healthy and not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthCheck {
    /// Required: how long one check may take (connect included) before it counts as a network failure.
    #[serde(serialize_with = "duration")]
    pub timeout: Duration,
    /// Required: the time between checks of a host whose health is steady.
    #[serde(serialize_with = "duration")]
    pub interval: Duration,
    /// Envoy's default: 0 (the first check of a host starts at once).
    #[serde(serialize_with = "duration")]
    pub initial_jitter: Duration,
    /// Envoy's default: 0. A random 0..jitter (milliseconds) is added to every interval.
    #[serde(serialize_with = "duration")]
    pub interval_jitter: Duration,
    /// Envoy's default: 0. A random share of up to this percent of the interval is added.
    pub interval_jitter_percent: u32,
    /// Required: failed checks in a row (network failures, timeouts, retriable statuses) that make a host
    /// unhealthy. A non-retriable HTTP status or a failed gRPC answer makes it unhealthy at once.
    pub unhealthy_threshold: u32,
    /// Required: passed checks in a row that make an unhealthy host healthy again (its very first check needs one).
    pub healthy_threshold: u32,
    /// Envoy's default: 60s. The interval while the cluster has never opened a connection for traffic.
    #[serde(serialize_with = "duration")]
    pub no_traffic_interval: Duration,
    /// Envoy's default: `no_traffic_interval`. The same, for a healthy host.
    #[serde(serialize_with = "duration")]
    pub no_traffic_healthy_interval: Duration,
    /// Envoy's default: `interval`. Between checks of an unhealthy host.
    #[serde(serialize_with = "duration")]
    pub unhealthy_interval: Duration,
    /// Envoy's default: `unhealthy_interval`. After a failure that has not reached the threshold yet.
    #[serde(serialize_with = "duration")]
    pub unhealthy_edge_interval: Duration,
    /// Envoy's default: `interval`. After a success that has not reached the threshold yet.
    #[serde(serialize_with = "duration")]
    pub healthy_edge_interval: Duration,
    /// Envoy's default: true. A connection serves the next check too.
    pub reuse_connection: bool,
    pub checker: Checker,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checker {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Grpc(GrpcCheck),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpCheck {
    /// The `Host`; empty: the cluster's name (Envoy's rule), unless the endpoint's `health_check_config.hostname`
    /// names one.
    pub host: String,
    pub path: String,
    /// Envoy's default: GET.
    pub method: String,
    /// Half-open ranges `[start, end)`. Envoy's default: 200 only.
    pub expected_statuses: Vec<(u16, u16)>,
    /// Statuses that count as a failure towards `unhealthy_threshold` rather than at once.
    pub retriable_statuses: Vec<(u16, u16)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Envoy's default: HTTP/1.1.
    pub http2: bool,
}

impl HttpCheck {
    pub fn expected(&self, status: u16) -> bool {
        in_ranges(&self.expected_statuses, status)
    }

    pub fn retriable(&self, status: u16) -> bool {
        in_ranges(&self.retriable_statuses, status)
    }
}

fn in_ranges(ranges: &[(u16, u16)], status: u16) -> bool {
    ranges
        .iter()
        .any(|(start, end)| (*start..*end).contains(&status))
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TcpCheck {
    /// Written once connected; empty: nothing is written.
    pub send: Vec<u8>,
    /// Each must be found in what the endpoint answers, in order; none: connecting is the check.
    pub receive: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrpcCheck {
    /// `grpc.health.v1.HealthCheckRequest.service`; empty asks about the server as a whole.
    pub service_name: String,
    /// The `:authority`; empty: the cluster's name (or the endpoint's `health_check_config.hostname`).
    pub authority: String,
}
