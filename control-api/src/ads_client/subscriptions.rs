//! Which route configurations and endpoints to ask for: those the current listeners' connection managers name
//! (`rds.route_config_name`) and those the current EDS clusters name (`service_name`, or the cluster's own
//! name), and the secrets their TLS contexts take from SDS over ADS, plus the ones the static resources need.
//! Listeners and clusters are asked for as a whole.

use super::{Api, Kind, Options, Resources};
use outrigger_config::model::cluster::Discovery;
use outrigger_config::model::http::RouteSource;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::tls::{CommonTls, SecretSource};
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

/// The names of the secrets a TLS context takes from the stream `api` (SDS over ADS, or one SDS source).
fn sds_names<'a>(common: &'a CommonTls, api: &'a Api) -> impl Iterator<Item = String> + 'a {
    common
        .secrets()
        .filter(move |s| match (&s.source, api) {
            (SecretSource::Ads { .. }, Api::Aggregated) => true,
            (SecretSource::Grpc { source, .. }, Api::Secrets(wanted)) => source == wanted,
            _ => false,
        })
        .map(|s| s.name.clone())
}

/// The SDS secrets a listener's filter chains take from the stream `api`.
pub fn listener_secrets(listener: &Listener, api: &Api) -> Vec<String> {
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.iter())
        .filter_map(|chain| chain.tls.as_ref())
        .flat_map(|tls| sds_names(&tls.common, api))
        .collect()
}

/// The SDS secrets a cluster's transport sockets take from the stream `api`.
pub fn cluster_secrets(cluster: &Cluster, api: &Api) -> Vec<String> {
    cluster
        .tls
        .iter()
        .chain(
            cluster
                .transport_socket_matches
                .iter()
                .filter_map(|m| m.tls.as_ref()),
        )
        .flat_map(|tls| sds_names(&tls.common, api))
        .collect()
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
        Kind::Secret => resources
            .listeners
            .values()
            .flat_map(|l| listener_secrets(&l.value, &options.api))
            .chain(
                resources
                    .clusters
                    .values()
                    .flat_map(|c| cluster_secrets(&c.value, &options.api)),
            )
            .chain(options.static_secret_names.iter().cloned())
            // An SDS stream's: those the resources of the ADS stream name (they come and go with it).
            .chain(
                options
                    .extra_secret_names
                    .iter()
                    .flat_map(|names| names.borrow().clone()),
            )
            .collect(),
        Kind::Listener | Kind::Cluster => BTreeSet::new(),
    }
}

/// Whether the client asks for this type at all, given what it wants now.
pub fn subscribed(kind: Kind, resources: &Resources, options: &Options) -> bool {
    match kind {
        Kind::Listener => options.listeners,
        Kind::Cluster => options.clusters,
        Kind::Route | Kind::Endpoints | Kind::Secret => {
            !wanted(kind, resources, options).is_empty()
        }
    }
}

/// Drops the routes, endpoints and secrets nothing names any more (xDS has no delete signal for them in the state of
/// the world).
pub fn prune(resources: &mut Resources, options: &Options) {
    let routes = wanted(Kind::Route, resources, options);
    resources.routes.retain(|name, _| routes.contains(name));
    let endpoints = wanted(Kind::Endpoints, resources, options);
    resources
        .endpoints
        .retain(|name, _| endpoints.contains(name));
    let secrets = wanted(Kind::Secret, resources, options);
    resources.secrets.retain(|name, _| secrets.contains(name));
}
