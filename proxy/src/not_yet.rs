//! What the configuration may say that this data path does not do yet. Loading accepts it (it is valid Envoy
//! configuration and the model keeps it); serving warns about each, so nobody believes they have a protection
//! they do not.

use outrigger_config::Snapshot;
use outrigger_config::model::cluster::{Discovery, Thresholds};
use outrigger_config::model::http::{HttpFilter, RouteSource};
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::route::RouteAction;

/// One warning per feature that is configured but not enforced.
pub fn check(snapshot: &Snapshot) -> Vec<String> {
    let mut warnings = Vec::new();
    if snapshot.dynamic_resources.is_some() {
        warnings.push(
            "dynamic_resources: xDS is not implemented yet; only static_resources are served"
                .into(),
        );
    }
    for listener in &snapshot.listeners {
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.iter());
        for chain in chains {
            for filter in &chain.filters {
                let NetworkFilter::HttpConnectionManager(hcm) = filter else {
                    continue;
                };
                if hcm
                    .http_filters
                    .iter()
                    .any(|h| matches!(h, HttpFilter::LocalRateLimit(_)))
                {
                    warnings.push(format!(
                        "listener {:?}: local_ratelimit is not enforced yet; requests are not rate limited",
                        listener.name
                    ));
                }
                match &hcm.routes {
                    RouteSource::Rds { route_config_name, .. } => warnings.push(format!(
                        "listener {:?}: routes come from RDS ({route_config_name:?}), which is not implemented \
                         yet; its requests get 404",
                        listener.name
                    )),
                    RouteSource::Static(config) => {
                        let per_route = config
                            .virtual_hosts
                            .iter()
                            .flat_map(|v| v.routes.iter())
                            .any(|r| r.local_rate_limit.is_some() && matches!(r.action, RouteAction::Route(_)));
                        if per_route {
                            warnings.push(format!(
                                "listener {:?}: per-route local_ratelimit is not enforced yet",
                                listener.name
                            ));
                        }
                    }
                }
            }
        }
    }
    for cluster in &snapshot.clusters {
        let name = &cluster.name;
        if matches!(cluster.discovery, Discovery::Eds { .. }) {
            warnings.push(format!(
                "cluster {name:?}: EDS is not implemented yet; it has no endpoints (503)"
            ));
        }
        let default = Thresholds::default();
        let limits = [
            &cluster.circuit_breakers.default,
            &cluster.circuit_breakers.high,
        ];
        let custom = limits.iter().any(|t| {
            t.max_connections != default.max_connections
                || t.max_pending_requests != default.max_pending_requests
                || t.max_requests != default.max_requests
                || t.max_retries != default.max_retries
                || t.retry_budget.is_some()
        });
        if custom {
            warnings.push(format!(
                "cluster {name:?}: circuit_breakers are not enforced yet"
            ));
        }
        if cluster.outlier_detection.is_some() {
            warnings.push(format!(
                "cluster {name:?}: outlier_detection is not enforced yet"
            ));
        }
    }
    warnings
}
