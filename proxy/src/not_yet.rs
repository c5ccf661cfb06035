//! What the configuration may say that this data path does not do yet. Loading accepts it (it is valid Envoy
//! configuration and the model keeps it); serving warns about each, so nobody believes they have a protection
//! they do not.

use outrigger_config::Snapshot;
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;

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
                if let RouteSource::Rds {
                    route_config_name, ..
                } = &hcm.routes
                {
                    warnings.push(format!(
                        "listener {:?}: routes come from RDS ({route_config_name:?}), which is not implemented \
                         yet; its requests get 404",
                        listener.name
                    ));
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
    }
    warnings
}
