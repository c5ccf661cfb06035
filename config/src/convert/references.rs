//! Checks across resources: unique names and addresses, and that what is named exists.

use super::Out;
use crate::diagnostic::Path;
use crate::model::Snapshot;
use crate::model::http::RouteSource;
use crate::model::listener::NetworkFilter;
use std::collections::HashMap;

pub fn check(snapshot: &Snapshot, out: &mut Out) {
    let at = Path::root().field("static_resources");
    let at_clusters = at.field("clusters");
    let at_listeners = at.field("listeners");

    let mut clusters: HashMap<&str, usize> = HashMap::new();
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        if let Some(first) = clusters.insert(&cluster.name, i) {
            clusters.insert(&cluster.name, first);
            out.error(
                &at_clusters.index(i).field("name"),
                format!(
                    "duplicate cluster {:?} (also clusters[{first}]); cluster names must be unique",
                    cluster.name
                ),
            );
        }
    }

    let mut names: HashMap<&str, usize> = HashMap::new();
    // A UDP and a TCP listener may share an address and port.
    let mut addresses: HashMap<(std::net::SocketAddr, bool), usize> = HashMap::new();
    for (i, listener) in snapshot.listeners.iter().enumerate() {
        let at = at_listeners.index(i);
        if let Some(first) = names.get(listener.name.as_str()) {
            // Envoy keeps the first and silently drops the second; we refuse, since that is never intended.
            out.error(
                &at.field("name"),
                format!("duplicate listener {:?} (also listeners[{first}]); listener names must be unique", listener.name),
            );
        } else {
            names.insert(&listener.name, i);
        }
        if listener.address.port() != 0 {
            if let Some(first) = addresses.get(&(listener.address, listener.udp.is_some())) {
                out.error(
                    &at.field("address"),
                    format!(
                        "listener {:?} has the same address {} as listeners[{first}]; each listener needs its own \
                         address and port",
                        listener.name, listener.address
                    ),
                );
            } else {
                addresses.insert((listener.address, listener.udp.is_some()), i);
            }
        }
        for (chain_at, chain) in listener_chains(listener, &at) {
            for (j, filter) in chain.filters.iter().enumerate() {
                let at = chain_at.field("filters").index(j).field("typed_config");
                check_filter(filter, &at, &clusters, out);
            }
        }
    }

    super::tls::check_secret_references(snapshot, out);

    if let Some(load_stats) = &snapshot.load_stats
        && !clusters.contains_key(load_stats.cluster.as_str())
    {
        out.error(
            &Path::root()
                .field("cluster_manager")
                .field("load_stats_config")
                .field("grpc_services")
                .index(0)
                .field("envoy_grpc")
                .field("cluster_name"),
            format!(
                "unknown gRPC client cluster {:?}; define it in static_resources.clusters",
                load_stats.cluster
            ),
        );
    }

    if let Some(ads) = snapshot
        .dynamic_resources
        .as_ref()
        .and_then(|d| d.ads.as_ref())
    {
        let at = Path::root().field("dynamic_resources").field("ads_config");
        if !clusters.contains_key(ads.cluster.as_str()) {
            out.error(
                &at.field("grpc_services")
                    .index(0)
                    .field("envoy_grpc")
                    .field("cluster_name"),
                format!(
                    "unknown gRPC client cluster {:?}; define it in static_resources.clusters",
                    ads.cluster
                ),
            );
        }
        if snapshot.node.id.is_empty() || snapshot.node.cluster.is_empty() {
            out.error(
                &Path::root().field("node"),
                "xDS needs the node's `id` and `cluster` to identify this proxy",
            );
        }
    }
}

fn listener_chains<'a>(
    listener: &'a crate::model::Listener,
    at: &Path,
) -> Vec<(Path, &'a crate::model::listener::FilterChain)> {
    let mut chains: Vec<_> = listener
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, c)| (at.field("filter_chains").index(i), c))
        .collect();
    if let Some(chain) = &listener.default_filter_chain {
        chains.push((at.field("default_filter_chain"), chain));
    }
    chains
}

fn check_filter(filter: &NetworkFilter, at: &Path, clusters: &HashMap<&str, usize>, out: &mut Out) {
    match filter {
        NetworkFilter::HttpConnectionManager(hcm) => {
            if let Some(cluster) = hcm
                .tracing
                .as_ref()
                .and_then(super::tracing::collector_cluster)
                && !clusters.contains_key(cluster)
            {
                // Envoy 1.40 starts with it (and propagates trace headers); its spans go nowhere.
                out.warning(
                    &at.field("tracing").field("provider"),
                    format!(
                        "the tracer's collector cluster {cluster:?} is unknown: trace headers are still \
                         propagated, but spans are dropped; define it in static_resources.clusters"
                    ),
                );
            }
            let RouteSource::Static(config) = &hcm.routes else {
                return;
            };
            if !config.validate_clusters {
                return;
            }
            for (path, name) in super::route::named_clusters(config, &at.field("route_config")) {
                if !clusters.contains_key(name) {
                    out.error(
                        &path,
                        format!("route names unknown cluster {name:?}; define it in static_resources.clusters"),
                    );
                }
            }
        }
        NetworkFilter::TcpProxy(tcp) => {
            for name in tcp.target.cluster_names() {
                if !clusters.contains_key(name) {
                    // Envoy accepts this and fails each connection; say so at load time.
                    out.warning(at, format!("tcp_proxy names unknown cluster {name:?}; its connections will be closed"));
                }
            }
        }
        NetworkFilter::Rbac(_)
        | NetworkFilter::LocalRateLimit(_)
        | NetworkFilter::ConnectionLimit(_) => {}
    }
}
