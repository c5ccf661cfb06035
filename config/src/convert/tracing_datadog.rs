//! `envoy.tracers.datadog` (`envoy.config.trace.v3.DatadogConfig`).
//!
//! `collector_cluster` and `service_name` are required by Envoy's validation (`min_len: 1`), which the loader
//! applies before this. `remote_config` is refused by the support table: checked with Envoy 1.40, with it set
//! its tracer polls the agent's `/v0.7/config` and lets Datadog's UI change sampling while it runs (without it
//! nothing is polled); Outrigger does not poll.

use crate::model::tracing::Datadog;
use envoy_types::pb::envoy::config::trace::v3 as trace;

pub const DATADOG: &str = "envoy.config.trace.v3.DatadogConfig";

pub fn datadog(c: &trace::DatadogConfig) -> Datadog {
    Datadog {
        collector_cluster: c.collector_cluster.clone(),
        service_name: c.service_name.clone(),
        // Envoy's default: the cluster's name.
        collector_hostname: if c.collector_hostname.is_empty() {
            c.collector_cluster.clone()
        } else {
            c.collector_hostname.clone()
        },
    }
}
