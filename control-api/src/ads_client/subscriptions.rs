//! Which route configurations and endpoints to ask for: those the current listeners' connection managers name
//! (`rds.route_config_name`) and those the current EDS clusters name (`service_name`, or the cluster's own
//! name), plus the ones the static resources need. Listeners and clusters are asked for as a whole.

use super::{Kind, Options, Resources};
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::{Cluster, Listener};
use std::collections::BTreeSet;

/// The route configuration names a listener's connection managers take from RDS.
pub fn listener_routes(listener: &Listener) -> Vec<String> {
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.iter())
        .flat_map(|chain| chain.filters.iter())
        .filter_map(|filter| match filter {
            NetworkFilter::HttpConnectionManager(hcm) => match &hcm.routes {
                RouteSource::Rds {
                    route_config_name, ..
                } => Some(route_config_name.clone()),
                RouteSource::Static(_) => None,
            },
            _ => None,
        })
        .collect()
}

/// The EDS service name of a cluster whose endpoints come from EDS.
pub fn cluster_service(cluster: &Cluster) -> Option<String> {
    match &cluster.discovery {
        Discovery::Eds { service_name, .. } if service_name.is_empty() => {
            Some(cluster.name.clone())
        }
        Discovery::Eds { service_name, .. } => Some(service_name.clone()),
        _ => None,
    }
}

/// The names of a by-name type (routes, endpoints) that `resources` and the static resources need; empty for
/// the wildcard types.
pub fn wanted(kind: Kind, resources: &Resources, options: &Options) -> BTreeSet<String> {
    match kind {
        Kind::Route => resources
            .listeners
            .values()
            .flat_map(|l| listener_routes(&l.value))
            .chain(options.static_route_names.iter().cloned())
            .collect(),
        Kind::Endpoints => resources
            .clusters
            .values()
            .filter_map(|c| cluster_service(&c.value))
            .chain(options.static_endpoint_names.iter().cloned())
            .collect(),
        Kind::Listener | Kind::Cluster => BTreeSet::new(),
    }
}

/// Whether the client asks for this type at all, given what it wants now.
pub fn subscribed(kind: Kind, resources: &Resources, options: &Options) -> bool {
    match kind {
        Kind::Listener => options.listeners,
        Kind::Cluster => options.clusters,
        Kind::Route | Kind::Endpoints => !wanted(kind, resources, options).is_empty(),
    }
}

/// Drops the routes and endpoints nothing names any more (xDS has no delete signal for them in the state of
/// the world).
pub fn prune(resources: &mut Resources, options: &Options) {
    let routes = wanted(Kind::Route, resources, options);
    resources.routes.retain(|name, _| routes.contains(name));
    let endpoints = wanted(Kind::Endpoints, resources, options);
    resources
        .endpoints
        .retain(|name, _| endpoints.contains(name));
}
