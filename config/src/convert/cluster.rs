//! Clusters: discovery type, endpoints, load balancing, limits, protocol and TLS.

use super::{
    Out, bool_or, config_source, decode_any, duration, duration_or, filter_metadata, http,
    socket_address, timeout_or, tls, type_name, u32_or,
};
use crate::diagnostic::Path;
use crate::model::cluster::{
    CircuitBreakers, Cluster, ClusterEndpoints, Discovery, DnsLookupFamily, DnsOptions, Endpoint,
    HealthStatus, LbPolicy, Locality, LocalityEndpoints, OutlierDetection, RetryBudget, Thresholds,
    TransportSocketMatch, UpstreamProtocol,
};
use crate::model::http::Http2Options;
use envoy_types::pb::envoy::config::cluster::v3 as pb;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as upstream_http;
use std::time::Duration;

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn cluster(c: &pb::Cluster, at: &Path, out: &mut Out) -> Option<Cluster> {
    use pb::cluster::{ClusterDiscoveryType, DiscoveryType as D, LbPolicy as L};
    let discovery = match &c.cluster_discovery_type {
        None => Discovery::Static,
        Some(ClusterDiscoveryType::Type(t)) => match D::try_from(*t) {
            Ok(D::Static) => Discovery::Static,
            Ok(D::StrictDns) => Discovery::StrictDns,
            Ok(D::LogicalDns) => Discovery::LogicalDns,
            Ok(D::OriginalDst) => Discovery::OriginalDst,
            Ok(D::Eds) => {
                let at = at.field("eds_cluster_config");
                let Some(eds) = &c.eds_cluster_config else {
                    out.error(
                        &at,
                        "an EDS cluster needs `eds_cluster_config: {eds_config: {ads: {}}}`",
                    );
                    return None;
                };
                Discovery::Eds {
                    service_name: if eds.service_name.is_empty() {
                        c.name.clone()
                    } else {
                        eds.service_name.clone()
                    },
                    config_source: config_source(&eds.eds_config, &at.field("eds_config"), out)?,
                }
            }
            Err(_) => {
                out.error(&at.field("type"), "unknown cluster type");
                return None;
            }
        },
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            out.error(
                &at.field("cluster_type"),
                format!("custom cluster type {:?} is not supported", custom.name),
            );
            return None;
        }
    };
    let lb_policy = match &c.load_balancing_policy {
        Some(policy) => {
            if c.lb_policy != L::RoundRobin as i32 {
                out.error(
                    &at.field("load_balancing_policy"),
                    "set either lb_policy or load_balancing_policy, not both",
                );
            }
            super::load_balancing::typed_policy(policy, &at.field("load_balancing_policy"), out)?
        }
        None => legacy_lb_policy(c, at, out)?,
    };
    match (&discovery, lb_policy) {
        (Discovery::OriginalDst, LbPolicy::ClusterProvided) => {}
        (Discovery::OriginalDst, _) => out.error(
            &at.field("lb_policy"),
            "an ORIGINAL_DST cluster picks its endpoint itself: set `lb_policy: CLUSTER_PROVIDED`",
        ),
        (_, LbPolicy::ClusterProvided) => out.error(
            &at.field("lb_policy"),
            "CLUSTER_PROVIDED is only valid with `type: ORIGINAL_DST`",
        ),
        _ => {}
    }
    let localities = match &c.load_assignment {
        Some(assignment) => load_assignment(
            assignment,
            matches!(discovery, Discovery::StrictDns | Discovery::LogicalDns),
            &at.field("load_assignment"),
            out,
        ),
        None => Vec::new(),
    };
    let overprovisioning_factor = c
        .load_assignment
        .as_ref()
        .map_or(DEFAULT_OVERPROVISIONING, overprovisioning_factor);
    let endpoint_count: usize = localities.iter().map(|l| l.endpoints.len()).sum();
    match discovery {
        Discovery::OriginalDst if endpoint_count > 0 => out.error(
            &at.field("load_assignment"),
            "an ORIGINAL_DST cluster must have no endpoints",
        ),
        Discovery::LogicalDns if endpoint_count != 1 => out.error(
            &at.field("load_assignment"),
            "a LOGICAL_DNS cluster needs exactly one endpoint (a single name to resolve)",
        ),
        _ => {}
    }
    if let Some(window) = c
        .common_lb_config
        .as_ref()
        .and_then(|l| l.update_merge_window.as_ref())
        && (window.seconds != 0 || window.nanos != 0)
    {
        out.error(
            &at.field("common_lb_config").field("update_merge_window"),
            "a merge window other than 0s is not supported: Outrigger applies host and ejection changes at \
             once (Envoy's default of 1s would delay a second outlier ejection); set it to 0s or remove it",
        );
    }
    let locality_weighted = locality_weighted(c, lb_policy, at, out);
    let (protocol, http2, idle_timeout) = protocol_options(c, at, out);
    let tls = c
        .transport_socket
        .as_ref()
        .and_then(|t| tls::upstream(t, &at.field("transport_socket"), out))
        .flatten();
    let transport_socket_matches = c
        .transport_socket_matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = at.field("transport_socket_matches").index(i);
            TransportSocketMatch {
                name: m.name.clone(),
                criteria: m
                    .r#match
                    .as_ref()
                    .map(super::struct_to_json)
                    .unwrap_or_default(),
                tls: m
                    .transport_socket
                    .as_ref()
                    .and_then(|t| tls::upstream(t, &at.field("transport_socket"), out))
                    .flatten(),
            }
        })
        .collect();
    Some(Cluster {
        name: c.name.clone(),
        discovery,
        connect_timeout: duration_or(&c.connect_timeout, Duration::from_secs(5)),
        lb_policy,
        localities,
        dns: dns_options(c),
        circuit_breakers: circuit_breakers(c.circuit_breakers.as_ref()),
        outlier_detection: c.outlier_detection.as_ref().map(outlier_detection),
        // Envoy's default: 50 %.
        healthy_panic_threshold: c
            .common_lb_config
            .as_ref()
            .and_then(|l| l.healthy_panic_threshold.as_ref())
            .map(|p| p.value.clamp(0.0, 100.0).trunc())
            .unwrap_or(50.0),
        locality_weighted,
        overprovisioning_factor,
        protocol,
        http2,
        idle_timeout,
        cleanup_interval: cleanup_interval(c, at, out),
        tls,
        transport_socket_matches,
        health_check: super::health_check::health_checks(
            &c.health_checks,
            &at.field("health_checks"),
            out,
        ),
        // Envoy's default: true.
        health_check_unejects: c
            .outlier_detection
            .as_ref()
            .is_none_or(|o| bool_or(&o.successful_active_health_check_uneject_host, true)),
    })
}

/// `common_lb_config.locality_weighted_lb_config` (`zone_aware_lb_config` is refused by name by the support table).
fn locality_weighted(c: &pb::Cluster, lb_policy: LbPolicy, at: &Path, out: &mut Out) -> bool {
    use pb::cluster::common_lb_config::LocalityConfigSpecifier as L;
    let set = matches!(
        c.common_lb_config
            .as_ref()
            .and_then(|l| l.locality_config_specifier.as_ref()),
        Some(L::LocalityWeightedLbConfig(_))
    );
    if set && lb_policy.hashes() {
        // Envoy's ring hash and Maglev weigh hosts by their locality's weight instead; not built here.
        out.error(
            &at.field("common_lb_config").field("locality_weighted_lb_config"),
            "locality weighted load balancing is supported with ROUND_ROBIN, LEAST_REQUEST and RANDOM only, \
             not with a consistent-hash lb_policy; remove one of them",
        );
    }
    set
}

/// `lb_policy` with its `*_lb_config`.
fn legacy_lb_policy(c: &pb::Cluster, at: &Path, out: &mut Out) -> Option<LbPolicy> {
    use pb::cluster::{LbConfig, LbPolicy as L};
    Some(match L::try_from(c.lb_policy) {
        Ok(L::RoundRobin) => LbPolicy::RoundRobin,
        Ok(L::LeastRequest) => LbPolicy::LeastRequest {
            choice_count: c
                .lb_config
                .as_ref()
                .and_then(|cfg| match cfg {
                    LbConfig::LeastRequestLbConfig(l) => l.choice_count.as_ref().map(|v| v.value),
                    _ => None,
                })
                .unwrap_or(2),
        },
        Ok(L::Random) => LbPolicy::Random,
        Ok(L::ClusterProvided) => LbPolicy::ClusterProvided,
        Ok(L::RingHash) => {
            let config = match &c.lb_config {
                Some(LbConfig::RingHashLbConfig(r)) => Some(r),
                _ => None,
            };
            let at = at.field("ring_hash_lb_config");
            if config.is_some_and(|r| {
                r.hash_function
                    == pb::cluster::ring_hash_lb_config::HashFunction::MurmurHash2 as i32
            }) {
                out.error(
                    &at.field("hash_function"),
                    "MURMUR_HASH_2 is not supported; use XX_HASH (the default)",
                );
            }
            super::load_balancing::ring_hash(
                config.and_then(|r| r.minimum_ring_size.map(|v| v.value)),
                config.and_then(|r| r.maximum_ring_size.map(|v| v.value)),
                &at,
                out,
            )
        }
        Ok(L::Maglev) => {
            let size = match &c.lb_config {
                Some(LbConfig::MaglevLbConfig(m)) => m.table_size.map(|v| v.value),
                _ => None,
            };
            super::load_balancing::maglev(size, &at.field("maglev_lb_config"), out)
        }
        Ok(other) => {
            out.error(
                &at.field("lb_policy"),
                format!(
                    "{} is not supported; supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, and \
                     CLUSTER_PROVIDED with ORIGINAL_DST clusters",
                    other.as_str_name()
                ),
            );
            return None;
        }
        Err(_) => {
            out.error(&at.field("lb_policy"), "unknown load balancing policy");
            return None;
        }
    })
}

/// A `ClusterLoadAssignment` delivered by EDS: endpoints by address only, as for any EDS cluster.
pub fn eds_assignment(
    a: &endpoint::ClusterLoadAssignment,
    at: &Path,
    out: &mut Out,
) -> Option<ClusterEndpoints> {
    Some(ClusterEndpoints {
        cluster_name: a.cluster_name.clone(),
        localities: load_assignment(a, false, at, out),
        overprovisioning_factor: overprovisioning_factor(a),
    })
}

/// Envoy's default `overprovisioning_factor`, in percent.
const DEFAULT_OVERPROVISIONING: u32 = 140;

/// `policy.overprovisioning_factor` (its other fields are refused by name by the support table; Envoy's
/// validation refuses 0).
fn overprovisioning_factor(a: &endpoint::ClusterLoadAssignment) -> u32 {
    a.policy
        .as_ref()
        .and_then(|p| p.overprovisioning_factor.as_ref())
        .map_or(DEFAULT_OVERPROVISIONING, |f| f.value)
}

/// `names_allowed`: endpoints may be DNS names (STRICT_DNS and LOGICAL_DNS clusters).
fn load_assignment(
    a: &endpoint::ClusterLoadAssignment,
    names_allowed: bool,
    at: &Path,
    out: &mut Out,
) -> Vec<LocalityEndpoints> {
    a.endpoints
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let at = at.field("endpoints").index(i);
            let endpoints = group
                .lb_endpoints
                .iter()
                .enumerate()
                .filter_map(|(j, lb)| {
                    lb_endpoint(lb, names_allowed, &at.field("lb_endpoints").index(j), out)
                })
                .collect();
            LocalityEndpoints {
                locality: group.locality.as_ref().map(|l| Locality {
                    region: l.region.clone(),
                    zone: l.zone.clone(),
                    sub_zone: l.sub_zone.clone(),
                }),
                priority: group.priority,
                load_balancing_weight: group.load_balancing_weight.as_ref().map(|w| w.value),
                endpoints,
            }
        })
        .collect()
}

fn lb_endpoint(
    lb: &endpoint::LbEndpoint,
    names: bool,
    at: &Path,
    out: &mut Out,
) -> Option<Endpoint> {
    use endpoint::lb_endpoint::HostIdentifier;
    let Some(HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
        out.error(at, "an lb_endpoint needs `endpoint: {address: ...}`");
        return None;
    };
    let (host, port) = socket_address(
        &e.address,
        names,
        &at.field("endpoint").field("address"),
        out,
    )?;
    let health_status = match core::HealthStatus::try_from(lb.health_status) {
        Ok(core::HealthStatus::Healthy) => HealthStatus::Healthy,
        Ok(core::HealthStatus::Unhealthy) => HealthStatus::Unhealthy,
        Ok(core::HealthStatus::Draining) => HealthStatus::Draining,
        Ok(core::HealthStatus::Timeout) => HealthStatus::Timeout,
        Ok(core::HealthStatus::Degraded) => HealthStatus::Degraded,
        _ => HealthStatus::Unknown,
    };
    Some(Endpoint {
        host,
        port,
        weight: u32_or(&lb.load_balancing_weight, 1),
        health_status,
        metadata: filter_metadata(&lb.metadata),
        health_check: super::health_check::endpoint_health_check(
            &e.health_check_config,
            &at.field("endpoint").field("health_check_config"),
            out,
        ),
    })
}

/// The upstream HTTP version, from `typed_extension_protocol_options` or the legacy cluster fields.
fn protocol_options(
    c: &pb::Cluster,
    at: &Path,
    out: &mut Out,
) -> (UpstreamProtocol, Http2Options, Option<Duration>) {
    use upstream_http::http_protocol_options::{
        UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig,
    };
    let mut protocol = if c.http2_protocol_options.is_some() {
        UpstreamProtocol::Http2
    } else {
        UpstreamProtocol::Http1
    };
    let mut http2 = http::http2_options(c.http2_protocol_options.as_ref());
    warn_stream_cap(
        c.http2_protocol_options.as_ref(),
        &at.field("http2_protocol_options"),
        out,
    );
    let mut common = c.common_http_protocol_options;
    upstream_common_options(
        common.as_ref(),
        &at.field("common_http_protocol_options"),
        out,
    );
    for (key, any) in &c.typed_extension_protocol_options {
        let at = at.field("typed_extension_protocol_options").key(key);
        if type_name(any) != HTTP_PROTOCOL_OPTIONS {
            out.error(
                &at,
                format!(
                    "protocol options of type {} are not supported",
                    type_name(any)
                ),
            );
            continue;
        }
        let Some(options) = decode_any::<upstream_http::HttpProtocolOptions>(any, &at, out) else {
            continue;
        };
        if options.common_http_protocol_options.is_some() {
            common = options.common_http_protocol_options;
            upstream_common_options(
                common.as_ref(),
                &at.field("common_http_protocol_options"),
                out,
            );
        }
        match &options.upstream_protocol_options {
            Some(U::ExplicitHttpConfig(e)) => match &e.protocol_config {
                Some(ProtocolConfig::Http2ProtocolOptions(o)) => {
                    protocol = UpstreamProtocol::Http2;
                    http2 = http::http2_options(Some(o));
                    warn_stream_cap(
                        Some(o),
                        &at.field("explicit_http_config")
                            .field("http2_protocol_options"),
                        out,
                    );
                }
                Some(ProtocolConfig::HttpProtocolOptions(_)) => protocol = UpstreamProtocol::Http1,
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => out.error(
                    &at.field("explicit_http_config"),
                    "HTTP/3 upstreams are not supported",
                ),
                None => out.error(
                    &at.field("explicit_http_config"),
                    "name the protocol: http_protocol_options or http2_protocol_options",
                ),
            },
            Some(U::UseDownstreamProtocolConfig(d)) => {
                protocol = UpstreamProtocol::UseDownstream;
                http2 = http::http2_options(d.http2_protocol_options.as_ref());
                warn_stream_cap(
                    d.http2_protocol_options.as_ref(),
                    &at.field("use_downstream_protocol_config")
                        .field("http2_protocol_options"),
                    out,
                );
            }
            Some(U::AutoConfig(a)) => {
                protocol = UpstreamProtocol::Auto;
                http2 = http::http2_options(a.http2_protocol_options.as_ref());
            }
            None => {}
        }
    }
    let idle_timeout = timeout_or(
        &common.and_then(|c| c.idle_timeout),
        Some(Duration::from_secs(3600)),
    );
    (protocol, http2, idle_timeout)
}

/// Upstream, `max_concurrent_streams` is announced in SETTINGS, but Envoy also opens another connection once a
/// connection carries that many streams, and Outrigger keeps one h2 connection per endpoint.
fn warn_stream_cap(o: Option<&core::Http2ProtocolOptions>, at: &Path, out: &mut Out) {
    if o.is_some_and(|o| o.max_concurrent_streams.is_some()) {
        out.warning(
            &at.field("max_concurrent_streams"),
            "accepted, but opening another upstream connection past max_concurrent_streams is not enforced \
             yet (the limit is announced to the upstream)",
        );
    }
}

/// Upstream, only `idle_timeout` is acted on; the connection manager acts on the others, so the support
/// table lists them, and here they are refused by name rather than dropped.
fn upstream_common_options(common: Option<&core::HttpProtocolOptions>, at: &Path, out: &mut Out) {
    let Some(common) = common else { return };
    if common.max_connection_duration.is_some() {
        out.error(
            &at.field("max_connection_duration"),
            "closing upstream connections after a maximum duration is not supported yet; only idle_timeout \
             is acted on for clusters",
        );
    }
    if common.max_requests_per_connection.is_some() {
        out.error(
            &at.field("max_requests_per_connection"),
            "closing upstream connections after a number of requests is not supported yet; only idle_timeout \
             is acted on for clusters (the connection manager acts on it for downstream connections)",
        );
    }
    if common.max_headers_count.is_some() {
        out.error(
            &at.field("max_headers_count"),
            "limiting the headers of upstream responses is not supported yet; only idle_timeout is acted on \
             for clusters",
        );
    }
}

fn dns_options(c: &pb::Cluster) -> DnsOptions {
    use pb::cluster::DnsLookupFamily as F;
    DnsOptions {
        lookup_family: match F::try_from(c.dns_lookup_family) {
            Ok(F::V4Only) => DnsLookupFamily::V4Only,
            Ok(F::V6Only) => DnsLookupFamily::V6Only,
            Ok(F::V4Preferred) => DnsLookupFamily::V4Preferred,
            Ok(F::All) => DnsLookupFamily::All,
            _ => DnsLookupFamily::Auto,
        },
        refresh_rate: duration_or(&c.dns_refresh_rate, Duration::from_secs(5)),
        respect_dns_ttl: c.respect_dns_ttl,
    }
}

fn circuit_breakers(c: Option<&pb::CircuitBreakers>) -> CircuitBreakers {
    let mut result = CircuitBreakers {
        default: Thresholds::default(),
        high: Thresholds::default(),
    };
    // Envoy takes the first entry for each priority and ignores any later one.
    let (mut default_seen, mut high_seen) = (false, false);
    for t in c.map(|c| c.thresholds.as_slice()).unwrap_or_default() {
        let high = t.priority == core::RoutingPriority::High as i32;
        let seen = if high {
            &mut high_seen
        } else {
            &mut default_seen
        };
        if std::mem::replace(seen, true) {
            continue;
        }
        let defaults = Thresholds::default();
        let thresholds = Thresholds {
            max_connections: u32_or(&t.max_connections, defaults.max_connections),
            max_pending_requests: u32_or(&t.max_pending_requests, defaults.max_pending_requests),
            max_requests: u32_or(&t.max_requests, defaults.max_requests),
            max_retries: u32_or(&t.max_retries, defaults.max_retries),
            retry_budget: t.retry_budget.as_ref().map(|b| RetryBudget {
                budget_percent: b.budget_percent.as_ref().map(|p| p.value).unwrap_or(20.0),
                min_retry_concurrency: u32_or(&b.min_retry_concurrency, 3),
            }),
            track_remaining: t.track_remaining,
        };
        if high {
            result.high = thresholds;
        } else {
            result.default = thresholds;
        }
    }
    result
}

fn outlier_detection(o: &pb::OutlierDetection) -> OutlierDetection {
    let base_ejection_time = duration_or(&o.base_ejection_time, Duration::from_secs(30));
    OutlierDetection {
        consecutive_5xx: u32_or(&o.consecutive_5xx, 5),
        enforcing_consecutive_5xx: u32_or(&o.enforcing_consecutive_5xx, 100),
        consecutive_gateway_failure: u32_or(&o.consecutive_gateway_failure, 5),
        enforcing_consecutive_gateway_failure: u32_or(&o.enforcing_consecutive_gateway_failure, 0),
        consecutive_local_origin_failure: u32_or(&o.consecutive_local_origin_failure, 5),
        enforcing_consecutive_local_origin_failure: u32_or(
            &o.enforcing_consecutive_local_origin_failure,
            100,
        ),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        interval: duration_or(&o.interval, Duration::from_secs(10)),
        base_ejection_time,
        // Envoy: the larger of 300s and the base ejection time.
        max_ejection_time: o
            .max_ejection_time
            .as_ref()
            .map(duration)
            .unwrap_or(base_ejection_time.max(Duration::from_secs(300))),
        max_ejection_percent: u32_or(&o.max_ejection_percent, 10),
        enforcing_success_rate: u32_or(&o.enforcing_success_rate, 100),
        success_rate_minimum_hosts: u32_or(&o.success_rate_minimum_hosts, 5),
        success_rate_request_volume: u32_or(&o.success_rate_request_volume, 100),
        success_rate_stdev_factor: u32_or(&o.success_rate_stdev_factor, 1900),
        enforcing_failure_percentage: u32_or(&o.enforcing_failure_percentage, 0),
        failure_percentage_threshold: u32_or(&o.failure_percentage_threshold, 85),
        failure_percentage_minimum_hosts: u32_or(&o.failure_percentage_minimum_hosts, 5),
        failure_percentage_request_volume: u32_or(&o.failure_percentage_request_volume, 50),
        enforcing_local_origin_success_rate: u32_or(&o.enforcing_local_origin_success_rate, 100),
        enforcing_failure_percentage_local_origin: u32_or(
            &o.enforcing_failure_percentage_local_origin,
            0,
        ),
        max_ejection_time_jitter: duration_or(&o.max_ejection_time_jitter, Duration::ZERO),
        always_eject_one_host: bool_or(&o.always_eject_one_host, false),
    }
}

/// `cleanup_interval` (ORIGINAL_DST clusters; Envoy's default 5s). Envoy's validation requires it above zero.
fn cleanup_interval(c: &pb::Cluster, at: &Path, out: &mut Out) -> Duration {
    let interval = duration_or(&c.cleanup_interval, Duration::from_secs(5));
    if interval.is_zero() {
        out.error(
            &at.field("cleanup_interval"),
            "cleanup_interval must be greater than zero (Envoy refuses 0); leave it unset for the 5s default",
        );
        return Duration::from_secs(5);
    }
    interval
}
