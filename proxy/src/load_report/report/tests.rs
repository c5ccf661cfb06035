#![allow(clippy::unwrap_used)]

use super::*;

fn target(address: &str, priority: u32, locality: u32) -> Target {
    Target {
        address: address.parse().unwrap(),
        weight: 1,
        hostname: None,
        transport: 0,
        priority,
        healthy: true,
        health_check: None,
        locality,
        locality_weight: 0,
    }
}

fn taken(success: u64, error: u64, issued: u64, active: u64) -> Taken {
    Taken {
        success,
        error,
        issued,
        active,
    }
}

fn zone(zone: &str) -> Option<Locality> {
    Some(Locality {
        region: "r".into(),
        zone: zone.into(),
        sub_zone: String::new(),
    })
}

#[test]
fn hosts_group_by_priority_and_locality_and_quiet_ones_are_left_out() {
    // Locality 0 (priority 1) has two hosts, one quiet; locality 1 (priority 0) one busy host; locality 2 only
    // a quiet host, so it is left out.
    let targets = [
        target("10.0.0.1:80", 1, 0),
        target("10.0.0.2:80", 1, 0),
        target("10.0.0.3:80", 0, 1),
        target("10.0.0.4:80", 0, 2),
    ];
    let mut counts = HashMap::new();
    counts.insert("10.0.0.1:80".parse().unwrap(), taken(3, 2, 5, 1));
    counts.insert("10.0.0.2:80".parse().unwrap(), Taken::default());
    counts.insert("10.0.0.3:80".parse().unwrap(), taken(0, 1, 0, 0));
    let localities = [zone("a"), None, zone("c")];
    let stats = build(
        "app",
        "svc",
        &targets,
        |i| localities[i as usize].clone(),
        &counts,
        true,
        Duration::from_micros(1_004_032),
    );
    assert_eq!(stats.cluster_name, "app");
    assert_eq!(stats.cluster_service_name, "svc");
    let interval = stats.load_report_interval.unwrap();
    assert_eq!((interval.seconds, interval.nanos), (1, 4_032_000));
    let [first, second] = stats.upstream_locality_stats.as_slice() else {
        panic!("two localities expected: {stats:?}");
    };
    // Priority 0 first; a locality without a name is sent empty, as Envoy sends it.
    assert_eq!(first.priority, 0);
    assert_eq!(first.locality, Some(core_pb::Locality::default()));
    assert_eq!(
        (first.total_error_requests, first.total_issued_requests),
        (1, 0)
    );
    assert_eq!(second.priority, 1);
    assert_eq!(second.locality.as_ref().unwrap().zone, "a");
    assert_eq!(
        (
            second.total_successful_requests,
            second.total_error_requests,
            second.total_issued_requests,
            second.total_requests_in_progress
        ),
        (3, 2, 5, 1)
    );
    // Only the busy host is listed.
    let [endpoint] = second.upstream_endpoint_stats.as_slice() else {
        panic!("one endpoint expected: {second:?}");
    };
    assert_eq!(endpoint.total_issued_requests, 5);
    let Some(core_pb::address::Address::SocketAddress(address)) =
        endpoint.address.as_ref().unwrap().address.as_ref()
    else {
        panic!("a socket address expected");
    };
    assert_eq!(address.address, "10.0.0.1");
    assert_eq!(
        address.port_specifier,
        Some(core_pb::socket_address::PortSpecifier::PortValue(80))
    );
}

#[test]
fn without_endpoint_granularity_only_localities_are_sent() {
    let targets = [target("10.0.0.1:80", 0, 0)];
    let mut counts = HashMap::new();
    counts.insert("10.0.0.1:80".parse().unwrap(), taken(1, 0, 1, 0));
    let stats = build(
        "app",
        "",
        &targets,
        |_| None,
        &counts,
        false,
        Duration::from_secs(1),
    );
    assert_eq!(stats.upstream_locality_stats.len(), 1);
    assert!(
        stats.upstream_locality_stats[0]
            .upstream_endpoint_stats
            .is_empty()
    );
    // Nothing counted: the cluster is still reported, with its interval and no locality.
    let quiet = build(
        "app",
        "",
        &targets,
        |_| None,
        &HashMap::new(),
        true,
        Duration::from_secs(1),
    );
    assert!(quiet.upstream_locality_stats.is_empty());
    assert!(quiet.load_report_interval.is_some());
}
