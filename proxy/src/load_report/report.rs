//! One cluster's `ClusterStats` from its hosts' counts, grouped as Envoy groups them: by priority, then by
//! locality in the order of the cluster's `LocalityLbEndpoints`; a host with nothing to report is left out, and
//! a locality none of whose hosts has anything to report too.

use super::counts::Taken;
use crate::upstream::{ClusterState, Target};
use envoy_types::pb::envoy::config::core::v3::{self as core_pb, Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterStats, UpstreamEndpointStats, UpstreamLocalityStats,
};
use outrigger_config::model::cluster::{Discovery, Locality};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

pub fn cluster_stats(
    cluster: &ClusterState,
    taken: &HashMap<SocketAddr, Taken>,
    granular: bool,
    interval: Duration,
) -> ClusterStats {
    let service_name = match &cluster.config.discovery {
        Discovery::Eds { service_name, .. } => service_name.clone(),
        _ => String::new(),
    };
    let targets = cluster.targets();
    // ORIGINAL_DST clusters have no targets: their hosts are the destinations counted, in no locality.
    let targets: Vec<Target> = if targets.is_empty() {
        let mut hosts: Vec<SocketAddr> = taken.keys().copied().collect();
        hosts.sort();
        hosts
            .into_iter()
            .map(|address| Target {
                address,
                weight: 1,
                hostname: None,
                transport: 0,
                priority: 0,
                healthy: true,
                health_check: None,
                locality: 0,
                locality_weight: 0,
            })
            .collect()
    } else {
        targets.to_vec()
    };
    build(
        &cluster.config.name,
        &service_name,
        &targets,
        |i| cluster.locality(i),
        taken,
        granular,
        interval,
    )
}

fn build(
    name: &str,
    service_name: &str,
    targets: &[Target],
    locality: impl Fn(u32) -> Option<Locality>,
    taken: &HashMap<SocketAddr, Taken>,
    granular: bool,
    interval: Duration,
) -> ClusterStats {
    let mut groups: BTreeMap<(u32, u32), Vec<(SocketAddr, Taken)>> = BTreeMap::new();
    for target in targets {
        let counts = taken.get(&target.address).copied().unwrap_or_default();
        groups
            .entry((target.priority, target.locality))
            .or_default()
            .push((target.address, counts));
    }
    let mut upstream_locality_stats = Vec::new();
    for ((priority, index), hosts) in groups {
        let mut stats = UpstreamLocalityStats {
            priority,
            ..Default::default()
        };
        for (address, counts) in hosts.iter().filter(|(_, c)| !c.is_empty()) {
            stats.total_successful_requests += counts.success;
            stats.total_error_requests += counts.error;
            stats.total_issued_requests += counts.issued;
            stats.total_requests_in_progress += counts.active;
            if granular {
                stats.upstream_endpoint_stats.push(UpstreamEndpointStats {
                    address: Some(socket_address(*address)),
                    total_successful_requests: counts.success,
                    total_error_requests: counts.error,
                    total_issued_requests: counts.issued,
                    total_requests_in_progress: counts.active,
                    ..Default::default()
                });
            }
        }
        if hosts.iter().all(|(_, c)| c.is_empty()) {
            continue;
        }
        // Envoy sends the locality message even when the endpoints have none (`locality: {}`).
        let l = locality(index).unwrap_or_default();
        stats.locality = Some(core_pb::Locality {
            region: l.region,
            zone: l.zone,
            sub_zone: l.sub_zone,
        });
        upstream_locality_stats.push(stats);
    }
    ClusterStats {
        cluster_name: name.to_string(),
        cluster_service_name: service_name.to_string(),
        upstream_locality_stats,
        // Nothing drops requests before the load balancer here (Envoy's drop_overload).
        total_dropped_requests: 0,
        load_report_interval: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(interval.subsec_micros() * 1000).unwrap_or(0),
        }),
        ..Default::default()
    }
}

fn socket_address(address: SocketAddr) -> Address {
    Address {
        address: Some(core_pb::address::Address::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(core_pb::socket_address::PortSpecifier::PortValue(
                u32::from(address.port()),
            )),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests;
