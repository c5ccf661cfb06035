//! `envoy.tracers.datadog` (`envoy.config.trace.v3.DatadogConfig`).

use super::Out;
use crate::diagnostic::Path;
use crate::model::tracing::Datadog;
use envoy_types::pb::envoy::config::trace::v3 as trace;

pub const DATADOG: &str = "envoy.config.trace.v3.DatadogConfig";

pub fn datadog(c: &trace::DatadogConfig, at: &Path, out: &mut Out) -> Option<Datadog> {
    // Both are required by Envoy's validation (`min_len: 1`).
    let mut ok = true;
    for (field, value) in [
        ("collector_cluster", &c.collector_cluster),
        ("service_name", &c.service_name),
    ] {
        if value.is_empty() {
            out.error(
                &at.field(field),
                format!("DatadogConfig needs a non-empty `{field}`"),
            );
            ok = false;
        }
    }
    // Checked with Envoy 1.40: with `remote_config` set its tracer polls the agent's `/v0.7/config` and lets
    // Datadog's UI change sampling while it runs; without it nothing is polled. We do not poll.
    if c.remote_config.is_some() {
        out.error(
            &at.field("remote_config"),
            "Datadog remote configuration is not implemented (Envoy would poll the agent's /v0.7/config and \
             apply sampling changes from it); remove `remote_config`",
        );
        ok = false;
    }
    ok.then(|| Datadog {
        collector_cluster: c.collector_cluster.clone(),
        service_name: c.service_name.clone(),
        collector_hostname: if c.collector_hostname.is_empty() {
            c.collector_cluster.clone()
        } else {
            c.collector_hostname.clone()
        },
    })
}
