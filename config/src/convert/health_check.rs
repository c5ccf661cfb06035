//! `Cluster.health_checks` and `Endpoint.health_check_config`, with Envoy's defaults.

use super::{Out, bool_or, duration, duration_or, headers_to_add, socket_address};
use crate::diagnostic::Path;
use crate::model::cluster::EndpointHealthCheck;
use crate::model::core::Host;
use crate::model::health_check::{Checker, GrpcCheck, HealthCheck, HttpCheck, TcpCheck};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::r#type::v3 as types;
use std::time::Duration;

/// The cluster's health checks: at most one (Envoy runs several side by side; Outrigger refuses a second by name).
pub fn health_checks(list: &[core::HealthCheck], at: &Path, out: &mut Out) -> Option<HealthCheck> {
    if list.len() > 1 {
        out.error(
            &at.index(1),
            "only one health check per cluster is supported; Envoy would run each and need all to pass",
        );
    }
    let h = list.first()?;
    let at = at.index(0);
    let positive =
        |d: &Option<envoy_types::pb::google::protobuf::Duration>, name: &str, out: &mut Out| {
            let value = d.as_ref().map(duration).unwrap_or_default();
            if value.is_zero() {
                out.error(
                    &at.field(name),
                    "must be greater than 0s (Envoy refuses it)",
                );
            }
            value.max(Duration::from_millis(1))
        };
    let timeout = positive(&h.timeout, "timeout", out);
    let interval = positive(&h.interval, "interval", out);
    let unhealthy_interval = duration_or(&h.unhealthy_interval, interval);
    let no_traffic_interval = duration_or(&h.no_traffic_interval, Duration::from_secs(60));
    let checker = match &h.health_checker {
        Some(core::health_check::HealthChecker::HttpHealthCheck(http)) => {
            Checker::Http(http_check(http, &at.field("http_health_check"), out)?)
        }
        Some(core::health_check::HealthChecker::TcpHealthCheck(tcp)) => {
            let at = at.field("tcp_health_check");
            Checker::Tcp(TcpCheck {
                send: tcp
                    .send
                    .as_ref()
                    .and_then(|p| payload(p, &at.field("send"), out))
                    .unwrap_or_default(),
                receive: tcp
                    .receive
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| payload(p, &at.field("receive").index(i), out))
                    .collect(),
            })
        }
        Some(core::health_check::HealthChecker::GrpcHealthCheck(grpc)) => {
            Checker::Grpc(GrpcCheck {
                service_name: grpc.service_name.clone(),
                authority: grpc.authority.clone(),
            })
        }
        _ => {
            out.error(
                &at,
                "name the checker: http_health_check, tcp_health_check or grpc_health_check",
            );
            return None;
        }
    };
    Some(HealthCheck {
        timeout,
        interval,
        initial_jitter: duration_or(&h.initial_jitter, Duration::ZERO),
        interval_jitter: duration_or(&h.interval_jitter, Duration::ZERO),
        interval_jitter_percent: h.interval_jitter_percent,
        // Required by Envoy's validation (pgv refuses them missing); 1 only as a fallback.
        unhealthy_threshold: h.unhealthy_threshold.map_or(1, |v| v.value),
        healthy_threshold: h.healthy_threshold.map_or(1, |v| v.value),
        no_traffic_interval,
        no_traffic_healthy_interval: duration_or(
            &h.no_traffic_healthy_interval,
            no_traffic_interval,
        ),
        unhealthy_interval,
        unhealthy_edge_interval: duration_or(&h.unhealthy_edge_interval, unhealthy_interval),
        healthy_edge_interval: duration_or(&h.healthy_edge_interval, interval),
        reuse_connection: bool_or(&h.reuse_connection, true),
        checker,
    })
}

fn http_check(
    http: &core::health_check::HttpHealthCheck,
    at: &Path,
    out: &mut Out,
) -> Option<HttpCheck> {
    let ranges = |list: &[types::Int64Range], name: &str, out: &mut Out| -> Vec<(u16, u16)> {
        list.iter()
            .enumerate()
            .filter_map(|(i, r)| {
                // Envoy: each range within [100, 600) and not empty.
                let valid = (100..600).contains(&r.start) && r.end > r.start && r.end <= 600;
                if !valid {
                    out.error(
                        &at.field(name).index(i),
                        format!(
                            "the range [{}, {}) must lie within [100, 600) and hold a status",
                            r.start, r.end
                        ),
                    );
                    return None;
                }
                Some((u16::try_from(r.start).ok()?, u16::try_from(r.end).ok()?))
            })
            .collect()
    };
    let expected = ranges(&http.expected_statuses, "expected_statuses", out);
    let retriable = ranges(&http.retriable_statuses, "retriable_statuses", out);
    let http2 = match types::CodecClientType::try_from(http.codec_client_type) {
        Ok(types::CodecClientType::Http1) => false,
        Ok(types::CodecClientType::Http2) => true,
        _ => {
            out.error(
                &at.field("codec_client_type"),
                "only HTTP1 and HTTP2 health checks are supported",
            );
            return None;
        }
    };
    let method = match core::RequestMethod::try_from(http.method) {
        Ok(core::RequestMethod::MethodUnspecified) => "GET".to_string(),
        Ok(core::RequestMethod::Connect) => {
            out.error(
                &at.field("method"),
                "CONNECT cannot be a health check's method",
            );
            return None;
        }
        Ok(m) => m.as_str_name().to_string(),
        Err(_) => {
            out.error(&at.field("method"), "unknown method");
            return None;
        }
    };
    let request_headers_to_add = headers_to_add(
        &http.request_headers_to_add,
        &at.field("request_headers_to_add"),
    );
    for (i, header) in request_headers_to_add.iter().enumerate() {
        if header.value.contains('%') {
            out.error(
                &at.field("request_headers_to_add").index(i),
                "command operators (%...%) in health check headers are not supported yet; give a literal value",
            );
        }
    }
    Some(HttpCheck {
        host: http.host.clone(),
        path: http.path.clone(),
        method,
        expected_statuses: if expected.is_empty() {
            vec![(200, 201)]
        } else {
            expected
        },
        retriable_statuses: retriable,
        request_headers_to_add,
        request_headers_to_remove: http
            .request_headers_to_remove
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        http2,
    })
}

/// A TCP payload: `text` is hex (Envoy's rule), `binary` raw bytes.
fn payload(p: &core::health_check::Payload, at: &Path, out: &mut Out) -> Option<Vec<u8>> {
    use core::health_check::payload::Payload as P;
    match &p.payload {
        Some(P::Binary(bytes)) => Some(bytes.clone()),
        Some(P::Text(hex)) => {
            let decoded = decode_hex(hex);
            if decoded.is_none() {
                out.error(
                    &at.field("text"),
                    format!("{hex:?} is not hex (Envoy reads `text` as hex digits, two per byte)"),
                );
            }
            decoded
        }
        None => None,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

/// `Endpoint.health_check_config`.
pub fn endpoint_health_check(
    config: &Option<endpoint::endpoint::HealthCheckConfig>,
    at: &Path,
    out: &mut Out,
) -> Option<EndpointHealthCheck> {
    let c = config.as_ref()?;
    let port = match u16::try_from(c.port_value) {
        Ok(port) => port,
        Err(_) => {
            out.error(&at.field("port_value"), "must be a port (at most 65535)");
            0
        }
    };
    let address = match &c.address {
        Some(_) => match socket_address(&c.address, false, &at.field("address"), out)? {
            (Host::Ip(ip), port) => Some(std::net::SocketAddr::new(ip, port)),
            (Host::Name(_), _) => None,
        },
        None => None,
    };
    Some(EndpointHealthCheck {
        port,
        address,
        hostname: c.hostname.clone(),
    })
}

#[cfg(test)]
mod tests {
    use crate::model::health_check::Checker;
    use std::time::Duration;

    /// Every health check setting reaches the model, with Envoy's defaults where unset.
    #[test]
    fn health_check_settings_reach_the_model() {
        let yaml = r#"
static_resources:
  clusters:
  - name: c
    health_checks:
    - timeout: 1s
      interval: 2s
      initial_jitter: 3s
      interval_jitter: 4s
      interval_jitter_percent: 5
      unhealthy_threshold: 6
      healthy_threshold: 7
      no_traffic_interval: 8s
      no_traffic_healthy_interval: 9s
      unhealthy_interval: 10s
      unhealthy_edge_interval: 11s
      healthy_edge_interval: 12s
      reuse_connection: false
      http_health_check:
        host: h
        path: /p
        method: HEAD
        codec_client_type: HTTP2
        expected_statuses: [{start: 200, end: 204}]
        retriable_statuses: [{start: 429, end: 430}]
        request_headers_to_add: [{header: {key: X-A, value: b}}]
        request_headers_to_remove: [User-Agent]
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {socket_address: {address: 198.18.0.1, port_value: 80}}
            health_check_config: {port_value: 81, hostname: e, address: {socket_address: {address: 198.18.0.2, port_value: 82}}}
  - name: t
    health_checks:
    - {timeout: 1s, interval: 2s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {send: {text: "0aFF"}, receive: [{binary: "AQI="}]}}
    outlier_detection: {successful_active_health_check_uneject_host: false}
  - name: g
    health_checks:
    - {timeout: 1s, interval: 2s, unhealthy_threshold: 1, healthy_threshold: 1, grpc_health_check: {service_name: s, authority: a}}
"#;
        let loaded = crate::load_bytes(yaml.as_bytes(), crate::Format::Yaml).expect("loads");
        let c = &loaded.snapshot.clusters;
        let h = c[0].health_check.clone().expect("configured");
        let s = Duration::from_secs;
        assert_eq!(
            (h.timeout, h.interval, h.initial_jitter, h.interval_jitter),
            (s(1), s(2), s(3), s(4))
        );
        assert_eq!(
            (
                h.interval_jitter_percent,
                h.unhealthy_threshold,
                h.healthy_threshold
            ),
            (5, 6, 7)
        );
        assert_eq!(
            (
                h.no_traffic_interval,
                h.no_traffic_healthy_interval,
                h.unhealthy_interval,
                h.unhealthy_edge_interval,
                h.healthy_edge_interval
            ),
            (s(8), s(9), s(10), s(11), s(12))
        );
        assert!(!h.reuse_connection);
        let Checker::Http(http) = &h.checker else {
            panic!("{h:?}")
        };
        assert_eq!(
            (http.host.as_str(), http.path.as_str(), http.method.as_str()),
            ("h", "/p", "HEAD")
        );
        assert!(http.http2);
        assert!(http.expected(203) && !http.expected(204) && http.retriable(429));
        assert_eq!(http.request_headers_to_add[0].name, "x-a");
        assert_eq!(http.request_headers_to_remove, vec!["user-agent"]);
        let e = c[0].localities[0].endpoints[0]
            .health_check
            .clone()
            .expect("set");
        assert_eq!((e.port, e.hostname.as_str()), (81, "e"));
        assert_eq!(e.address, Some("198.18.0.2:82".parse().unwrap()));
        assert!(c[0].health_check_unejects, "Envoy's default: true");
        let t = c[1].health_check.clone().expect("configured");
        let Checker::Tcp(tcp) = &t.checker else {
            panic!("{t:?}")
        };
        assert_eq!(
            (tcp.send.clone(), tcp.receive.clone()),
            (vec![0x0a, 0xff], vec![vec![1, 2]])
        );
        assert!(!c[1].health_check_unejects);
        // Defaults: the edge intervals follow the interval, no traffic 60s, connections reused, 200 only.
        let g = c[2].health_check.clone().expect("configured");
        assert_eq!(
            (
                g.unhealthy_interval,
                g.unhealthy_edge_interval,
                g.healthy_edge_interval,
                g.no_traffic_interval
            ),
            (s(2), s(2), s(2), s(60))
        );
        assert!(g.reuse_connection);
        assert!(
            matches!(&g.checker, Checker::Grpc(grpc) if grpc.service_name == "s" && grpc.authority == "a")
        );
    }
}
