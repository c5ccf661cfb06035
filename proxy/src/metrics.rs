//! Statistics, named as Envoy names them so existing dashboards work (`envoy_cluster_upstream_rq_total`,
//! `envoy_http_downstream_rq_xx`, ...). OpenMetrics requires counters to end in `_total`, so a counter whose
//! Envoy name does not (`envoy_cluster_upstream_cx_connect_fail`) gains that suffix.

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub mod filters;
pub mod istio;
pub mod managers;
pub mod protocol;
mod resilience;
pub mod udp;
pub mod xds;
pub use resilience::{
    ClusterCounter, ClusterGauge, ClusterStats, HealthStats, OutlierStats, RateLimitStats,
    Remaining,
};

pub type Labels = Vec<(&'static str, String)>;

/// The fault filter's statistics (labelled by connection manager, as Envoy's `http.<prefix>.fault.*`).
#[derive(Default)]
pub struct FaultFamilies {
    pub aborts: Family<Labels, Counter>,
    pub delays: Family<Labels, Counter>,
    pub overflow: Family<Labels, Counter>,
    pub active: Family<Labels, Gauge>,
}

/// The HTTP RBAC filter's statistics (`http.<prefix>.rbac.*`, labelled by connection manager).
#[derive(Default)]
pub struct HttpRbacFamilies {
    pub allowed: Family<Labels, Counter>,
    pub denied: Family<Labels, Counter>,
    pub shadow_allowed: Family<Labels, Counter>,
    pub shadow_denied: Family<Labels, Counter>,
}

/// The ext_authz filter's statistics (`http.<prefix>.ext_authz.*`, labelled by connection manager).
#[derive(Default)]
pub struct ExtAuthzFamilies {
    pub ok: Family<Labels, Counter>,
    pub denied: Family<Labels, Counter>,
    pub error: Family<Labels, Counter>,
    pub failure_mode_allowed: Family<Labels, Counter>,
}

#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    pub listener_cx: Family<Labels, Counter>,
    pub listener_cx_active: Family<Labels, Gauge>,
    pub http_rq: Family<Labels, Counter>,
    pub http_rq_xx: Family<Labels, Counter>,
    pub http_rq_active: Family<Labels, Gauge>,
    /// Streams ended by `stream_idle_timeout`, connections by `idle_timeout` and `max_connection_duration`,
    /// requests by `request_timeout`.
    pub http_timeouts: HttpTimeouts,
    pub cluster_rq: Family<Labels, Counter>,
    pub cluster_rq_xx: Family<Labels, Counter>,
    pub cluster_rq_timeout: Family<Labels, Counter>,
    pub cluster_rq_retry: Family<Labels, Counter>,
    pub cluster_cx_connect_fail: Family<Labels, Counter>,
    pub cluster_cx: Family<Labels, Counter>,
    pub cluster_cx_active: Family<Labels, Gauge>,
    pub tcp_cx: Family<Labels, Counter>,
    pub tcp_tx_bytes: Family<Labels, Counter>,
    pub tcp_rx_bytes: Family<Labels, Counter>,
    pub listener_ssl_handshake: Family<Labels, Counter>,
    pub listener_no_filter_chain_match: Family<Labels, Counter>,
    pub cluster_ssl_handshake: Family<Labels, Counter>,
    /// Handshake failures, by listener (inbound) or cluster (outbound) and `reason`.
    pub tls_handshake_failure: Family<Labels, Counter>,
    pub rbac_allowed: Family<Labels, Counter>,
    pub rbac_denied: Family<Labels, Counter>,
    pub network_rate_limited: Family<Labels, Counter>,
    /// `connection_limit.<stat_prefix>.limited_connections` and `.active_connections`.
    pub connection_limit_limited: Family<Labels, Counter>,
    pub connection_limit_active: Family<Labels, Gauge>,
    /// `listener.<scope>.downstream_global_cx_overflow`: refused by `global_downstream_max_connections`.
    pub listener_global_cx_overflow: Family<Labels, Counter>,
    /// `http.<prefix>.downstream_cx_max_requests_reached`: connections closed by `max_requests_per_connection`.
    pub http_cx_max_requests_reached: Family<Labels, Counter>,
    /// `http.<prefix>.fault.*`: the fault filter's, by connection manager.
    pub fault: FaultFamilies,
    /// `http.<prefix>.rbac.*`: the HTTP RBAC filter's, by connection manager.
    pub http_rbac: HttpRbacFamilies,
    /// `http.<prefix>.ext_authz.*`.
    pub ext_authz: ExtAuthzFamilies,
    pub server_live: Gauge,
    /// Retries, circuit breakers, outlier detection and local rate limits.
    pub resilience: resilience::Families,
    /// The xDS client's.
    pub xds: xds::Families,
    /// The cluster and listener managers' (`cluster_manager.active_clusters`, `listener_manager.listener_added`).
    pub managers: managers::Families,
    /// Istio's standard metrics, when the node metadata asks for them (`istio.rs`).
    pub istio: Option<std::sync::Arc<istio::IstioStats>>,
    /// The compressor and health check filters' (`http.<prefix>.compressor.*`, `http.<prefix>.health_check.*`).
    pub filters: filters::Families,
    /// Protocol errors of clients: h2 and HTTP/1 codec errors, TLS errors.
    pub protocol: protocol::Families,
    /// The UDP proxy's (`udp.<prefix>.*`, the cluster's `udp.sess_*`).
    pub udp: udp::Families,
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics::default();
        let r = &mut m.registry;
        r.register(
            "envoy_listener_downstream_cx",
            "Connections accepted",
            m.listener_cx.clone(),
        );
        r.register(
            "envoy_listener_downstream_cx_active",
            "Connections open",
            m.listener_cx_active.clone(),
        );
        r.register(
            "envoy_http_downstream_rq",
            "HTTP requests received",
            m.http_rq.clone(),
        );
        r.register(
            "envoy_http_downstream_rq_xx",
            "HTTP responses sent, by class",
            m.http_rq_xx.clone(),
        );
        r.register(
            "envoy_http_downstream_rq_active",
            "HTTP requests in progress",
            m.http_rq_active.clone(),
        );
        m.http_timeouts = HttpTimeouts::register(r);
        for (name, help, family) in [
            (
                "aborts_injected",
                "Requests the fault filter aborted",
                &m.fault.aborts,
            ),
            (
                "delays_injected",
                "Requests the fault filter delayed",
                &m.fault.delays,
            ),
            (
                "faults_overflow",
                "Faults not injected because of max_active_faults",
                &m.fault.overflow,
            ),
        ] {
            r.register(format!("envoy_http_fault_{name}"), help, family.clone());
        }
        for (name, help, family) in [
            ("allowed", "Requests RBAC allowed", &m.http_rbac.allowed),
            ("denied", "Requests RBAC denied", &m.http_rbac.denied),
            (
                "shadow_allowed",
                "Requests the shadow rules would allow",
                &m.http_rbac.shadow_allowed,
            ),
            (
                "shadow_denied",
                "Requests the shadow rules would deny",
                &m.http_rbac.shadow_denied,
            ),
        ] {
            r.register(format!("envoy_http_rbac_{name}"), help, family.clone());
        }
        for (name, help, family) in [
            (
                "ok",
                "Requests the authorization service allowed",
                &m.ext_authz.ok,
            ),
            (
                "denied",
                "Requests the authorization service denied",
                &m.ext_authz.denied,
            ),
            ("error", "Failed authorization checks", &m.ext_authz.error),
            (
                "failure_mode_allowed",
                "Requests let through after a failed check (failure_mode_allow)",
                &m.ext_authz.failure_mode_allowed,
            ),
        ] {
            r.register(format!("envoy_http_ext_authz_{name}"), help, family.clone());
        }
        r.register(
            "envoy_http_fault_active_faults",
            "Faults in progress",
            m.fault.active.clone(),
        );
        r.register(
            "envoy_cluster_upstream_rq",
            "Requests sent upstream",
            m.cluster_rq.clone(),
        );
        r.register(
            "envoy_cluster_upstream_rq_xx",
            "Upstream responses, by class",
            m.cluster_rq_xx.clone(),
        );
        r.register(
            "envoy_cluster_upstream_rq_timeout",
            "Upstream requests timed out",
            m.cluster_rq_timeout.clone(),
        );
        r.register(
            "envoy_cluster_upstream_rq_retry",
            "Upstream requests retried",
            m.cluster_rq_retry.clone(),
        );
        r.register(
            "envoy_cluster_upstream_cx_connect_fail",
            "Upstream connections that failed",
            m.cluster_cx_connect_fail.clone(),
        );
        r.register(
            "envoy_cluster_upstream_cx",
            "Upstream TCP connections opened",
            m.cluster_cx.clone(),
        );
        r.register(
            "envoy_cluster_upstream_cx_active",
            "Upstream connections open",
            m.cluster_cx_active.clone(),
        );
        r.register(
            "envoy_tcp_downstream_cx",
            "TCP proxy connections",
            m.tcp_cx.clone(),
        );
        r.register(
            "envoy_tcp_downstream_cx_tx_bytes",
            "TCP proxy bytes sent downstream",
            m.tcp_tx_bytes.clone(),
        );
        r.register(
            "envoy_tcp_downstream_cx_rx_bytes",
            "TCP proxy bytes received downstream",
            m.tcp_rx_bytes.clone(),
        );
        r.register(
            "envoy_listener_ssl_handshake",
            "Inbound TLS handshakes completed",
            m.listener_ssl_handshake.clone(),
        );
        r.register(
            "envoy_listener_no_filter_chain_match",
            "Connections no filter chain took (closed)",
            m.listener_no_filter_chain_match.clone(),
        );
        r.register(
            "envoy_cluster_ssl_handshake",
            "Upstream TLS handshakes completed",
            m.cluster_ssl_handshake.clone(),
        );
        r.register(
            "outrigger_tls_handshake_failure",
            "TLS handshakes that failed, by listener or cluster and reason (expired, unknown_ca, san_mismatch, \
             no_client_certificate, plaintext, protocol, peer_alert, timeout, ...)",
            m.tls_handshake_failure.clone(),
        );
        r.register(
            "envoy_rbac_allowed",
            "Connections the network RBAC filter allowed",
            m.rbac_allowed.clone(),
        );
        r.register(
            "envoy_rbac_denied",
            "Connections the network RBAC filter denied (closed)",
            m.rbac_denied.clone(),
        );
        r.register(
            "envoy_local_rate_limit_rate_limited",
            "Connections the network local rate limit filter closed",
            m.network_rate_limited.clone(),
        );
        r.register(
            "envoy_connection_limit_limited_connections",
            "Connections the connection limit filter closed",
            m.connection_limit_limited.clone(),
        );
        r.register(
            "envoy_connection_limit_active_connections",
            "Connections open through the connection limit filter",
            m.connection_limit_active.clone(),
        );
        r.register(
            "envoy_listener_downstream_global_cx_overflow",
            "Connections closed on accept by global_downstream_max_connections",
            m.listener_global_cx_overflow.clone(),
        );
        r.register(
            "envoy_http_downstream_cx_max_requests_reached",
            "Connections closed by max_requests_per_connection",
            m.http_cx_max_requests_reached.clone(),
        );
        r.register(
            "envoy_server_live",
            "1 while the server is live, 0 while draining",
            m.server_live.clone(),
        );
        m.server_live.set(1);
        m.resilience = resilience::Families::register(&mut m.registry);
        m.xds = xds::Families::register(&mut m.registry);
        m.managers = managers::Families::register(&mut m.registry);
        m.filters = filters::Families::register(&mut m.registry);
        m.protocol = protocol::Families::register(&mut m.registry);
        m.udp = udp::Families::register(&mut m.registry);
        crate::access_log::writer::register(&mut m.registry);
        crate::trace::stats::register(&mut m.registry);
        m
    }

    /// Registers Istio's standard metrics when `node.metadata` has `OUTRIGGER_ISTIO_STATS: true`.
    pub fn enable_istio(&mut self, metadata: &serde_json::Map<String, serde_json::Value>) {
        if istio::enabled(metadata) {
            let stats = istio::IstioStats::register(&mut self.registry, metadata);
            self.istio = Some(std::sync::Arc::new(stats));
        }
    }

    /// Counts a failed handshake; `labels` name the listener or the cluster.
    pub fn tls_failure(&self, labels: &Labels, reason: &'static str, policy: SecurityPolicy) {
        count_tls_failure(&self.tls_handshake_failure, labels, reason, policy);
    }

    /// The counters upstream connections update (they are made where `Metrics` is not at hand).
    pub fn upstream_counters(&self) -> UpstreamCounters {
        UpstreamCounters {
            connections: self.cluster_cx.clone(),
            active: self.cluster_cx_active.clone(),
            handshakes: self.cluster_ssl_handshake.clone(),
            failures: self.tls_handshake_failure.clone(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4, as Envoy serves it on `/stats/prometheus`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if encode_registry(&mut text, &self.registry).is_err() {
            text.push_str("# statistics could not be encoded\n");
        }
        name_counters_like_their_samples(&text)
    }
}

/// The connection manager's timeout counters, by `envoy_http_conn_manager_prefix`, named as Envoy names them.
#[derive(Clone, Default)]
pub struct HttpTimeouts {
    pub rq_idle_timeout: Family<Labels, Counter>,
    pub rq_timeout: Family<Labels, Counter>,
    pub cx_idle_timeout: Family<Labels, Counter>,
    pub cx_max_duration_reached: Family<Labels, Counter>,
}

impl HttpTimeouts {
    fn register(r: &mut Registry) -> Self {
        let t = Self::default();
        r.register(
            "envoy_http_downstream_rq_idle_timeout",
            "Streams closed by stream_idle_timeout",
            t.rq_idle_timeout.clone(),
        );
        r.register(
            "envoy_http_downstream_rq_timeout",
            "Requests closed by request_timeout",
            t.rq_timeout.clone(),
        );
        r.register(
            "envoy_http_downstream_cx_idle_timeout",
            "Connections closed by idle_timeout",
            t.cx_idle_timeout.clone(),
        );
        r.register(
            "envoy_http_downstream_cx_max_duration_reached",
            "Connections drained at max_connection_duration",
            t.cx_max_duration_reached.clone(),
        );
        t
    }
}

/// Upstream connection and handshake counters, shared (a `Family` is a handle to its series).
#[derive(Clone, Default)]
pub struct UpstreamCounters {
    pub connections: Family<Labels, Counter>,
    pub active: Family<Labels, Gauge>,
    pub handshakes: Family<Labels, Counter>,
    pub failures: Family<Labels, Counter>,
}

impl UpstreamCounters {
    pub fn failure(&self, labels: &Labels, reason: &'static str, policy: SecurityPolicy) {
        count_tls_failure(&self.failures, labels, reason, policy);
    }
}

fn count_tls_failure(
    family: &Family<Labels, Counter>,
    labels: &Labels,
    reason: &'static str,
    policy: SecurityPolicy,
) {
    let mut labels = labels.clone();
    labels.push(("reason", reason.to_string()));
    labels.push(("connection_security_policy", policy.label().to_string()));
    family.get_or_create(&labels).inc();
}

/// What the failed connection was meant to be, as Istio's `connection_security_policy` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityPolicy {
    /// Both sides present certificates.
    MutualTls,
    /// Only the server does.
    Tls,
}

impl SecurityPolicy {
    pub fn label(self) -> &'static str {
        match self {
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::Tls => "tls",
        }
    }
}

/// A listener's statistics scope: its `stat_prefix` when it has one, else its address as Envoy writes it
/// (`0.0.0.0_15001`). Envoy puts either in the same tag.
pub fn listener(stat_prefix: &str, address: std::net::SocketAddr) -> Labels {
    let scope = if stat_prefix.is_empty() {
        format!("{}_{}", address.ip(), address.port())
    } else {
        stat_prefix.to_string()
    };
    vec![("envoy_listener_address", scope)]
}

pub fn connection_manager(prefix: &str) -> Labels {
    vec![("envoy_http_conn_manager_prefix", prefix.to_string())]
}

pub fn cluster(name: &str) -> Labels {
    vec![("envoy_cluster_name", name.to_string())]
}

pub fn rbac(prefix: &str) -> Labels {
    vec![("envoy_rbac_prefix", prefix.to_string())]
}

pub fn tcp(prefix: &str) -> Labels {
    vec![("envoy_tcp_prefix", prefix.to_string())]
}

/// The same labels plus the response class (`2`, `4`, `5`, ...).
pub fn with_class(mut labels: Labels, status: u16) -> Labels {
    labels.insert(0, ("envoy_response_code_class", (status / 100).to_string()));
    labels
}

impl Metrics {
    /// Envoy's `/stats` text: `cluster.backend.upstream_rq_total: 3`, one statistic a line, sorted.
    pub fn envoy_stats(&self) -> String {
        let mut lines: Vec<String> = self.encode().lines().filter_map(envoy_stat_line).collect();
        lines.sort();
        lines.join("\n") + "\n"
    }
}

/// `envoy_cluster_upstream_rq_xx_total{envoy_response_code_class="2",envoy_cluster_name="a"} 3`
/// becomes `cluster.a.upstream_rq_2xx: 3`.
fn envoy_stat_line(sample: &str) -> Option<String> {
    if sample.starts_with('#') {
        return None;
    }
    let (series, value) = sample.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (series, ""),
    };
    let labels: Vec<(&str, &str)> = labels
        .split("\",")
        .filter_map(|pair| pair.split_once("=\""))
        .map(|(k, v)| (k, v.trim_end_matches('"')))
        .collect();
    let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if let Some(line) = filters::envoy_stat(name, &|key| label(key).map(str::to_string), value) {
        return line;
    }
    if let Some(line) = udp::envoy_stat(name, &|key| label(key).map(str::to_string), value) {
        return Some(line);
    }
    // The HTTP local rate limit filter's statistics lead with its prefix: `<prefix>.http_local_rate_limit.ok`.
    if let Some(rest) = name.strip_prefix("envoy_http_local_rate_limit_") {
        let prefix = label("envoy_local_http_ratelimit_prefix")?;
        let rest = rest.strip_suffix("_total").unwrap_or(rest);
        return Some(format!("{prefix}.http_local_rate_limit.{rest}: {value}"));
    }
    // The connection manager's trace decisions: `http.<prefix>.tracing.random_sampling`.
    if let Some(rest) = name.strip_prefix("envoy_http_tracing_") {
        let prefix = label("envoy_http_conn_manager_prefix")?;
        let rest = rest.strip_suffix("_total").unwrap_or(rest);
        return Some(format!("http.{prefix}.tracing.{rest}: {value}"));
    }
    // The tracers' statistics: `tracing.opentelemetry.spans_sent`.
    for provider in ["opentelemetry", "zipkin", "datadog", "skywalking"] {
        if let Some(rest) = name.strip_prefix(&format!("envoy_tracing_{provider}_")) {
            let rest = rest.strip_suffix("_total").unwrap_or(rest);
            return Some(format!("tracing.{provider}.{rest}: {value}"));
        }
    }
    let scopes = [
        (
            "envoy_local_rate_limit_",
            "local_rate_limit",
            "envoy_local_network_ratelimit_prefix",
        ),
        (
            "envoy_connection_limit_",
            "connection_limit",
            "envoy_connection_limit_prefix",
        ),
        ("envoy_cluster_", "cluster", "envoy_cluster_name"),
        ("envoy_http_", "http", "envoy_http_conn_manager_prefix"),
        ("envoy_listener_", "listener", "envoy_listener_address"),
        ("envoy_tcp_", "tcp", "envoy_tcp_prefix"),
    ];
    // The xDS and manager statistics have scopes of their own (`listener_manager.lds.*`, `sds.<name>.*`).
    let owned = |key: &str| label(key).map(str::to_string);
    let mut stat = match xds::envoy_stat(name, &owned) {
        Some(stat) => stat,
        None => match scopes
            .iter()
            .find(|(prefix, _, _)| name.starts_with(prefix))
        {
            Some((prefix, scope, key)) => {
                let rest = &name[prefix.len()..];
                // HTTP filters' statistics are a scope of their own: `http.<prefix>.rbac.allowed`.
                let filter = ["rbac_", "ext_authz_"]
                    .iter()
                    .find_map(|f| Some((f.trim_end_matches('_'), rest.strip_prefix(f)?)));
                let ssl = rest.strip_prefix("ssl_");
                // The UDP proxy's cluster and listener statistics sit in a `udp` scope: `cluster.<name>.udp.sess_*`.
                if let Some(udp) = rest.strip_prefix("udp_")
                    && matches!(*scope, "listener" | "cluster")
                {
                    let udp = udp.strip_suffix("_total").unwrap_or(udp);
                    return Some(format!("{scope}.{}.udp.{udp}: {value}", label(key)?));
                }
                let rest = match (filter, ssl) {
                    (Some((filter, stat)), _) if *scope == "http" => format!("{filter}.{stat}"),
                    // Envoy's TLS statistics sit in an `ssl` scope: `listener.<scope>.ssl.handshake`.
                    (_, Some(ssl)) if matches!(*scope, "listener" | "cluster") => {
                        format!("ssl.{ssl}")
                    }
                    _ => rest.to_string(),
                };
                format!("{scope}.{}.{rest}", label(key)?)
            }
            None => name.strip_prefix("envoy_")?.replacen('_', ".", 1),
        },
    };
    // Our counters all end in `_total`; Envoy's only where the statistic is a total of connections,
    // requests or bytes, and its gauge `membership_total` (hosts in a cluster).
    if let Some(base) = stat.strip_suffix("_total")
        && !(base.ends_with("_cx")
            || base.ends_with("_rq")
            || base.ends_with("_bytes")
            || base.ends_with(".membership"))
    {
        stat = base.to_string();
    }
    if let Some(class) = label("envoy_response_code_class") {
        stat = stat.replace("_xx", &format!("_{class}xx"));
    }
    Some(format!("{stat}: {value}"))
}

/// OpenMetrics names a counter family `x` and its samples `x_total`; the Prometheus text format (and Envoy)
/// name both `x_total`, and `promtool check metrics` expects that.
fn name_counters_like_their_samples(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in lines {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(line.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_families_are_named_like_their_samples() {
        let metrics = Metrics::new();
        metrics.cluster_rq.get_or_create(&cluster("backend")).inc();
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE envoy_cluster_upstream_rq_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# HELP envoy_cluster_upstream_rq_total Requests sent upstream."),
            "{text}"
        );
        assert!(
            text.contains("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE envoy_server_live gauge"), "{text}");
    }

    #[test]
    fn envoy_stats_use_envoys_names() {
        let metrics = Metrics::new();
        let a = cluster("a");
        metrics.cluster_rq.get_or_create(&a).inc();
        metrics
            .cluster_rq_xx
            .get_or_create(&with_class(a.clone(), 503))
            .inc();
        metrics.cluster_cx_connect_fail.get_or_create(&a).inc();
        metrics
            .http_rq_active
            .get_or_create(&connection_manager("ingress"))
            .set(2);
        metrics
            .listener_cx
            .get_or_create(&listener("", "0.0.0.0:15001".parse().unwrap()))
            .inc();
        let inbound = listener("", "127.0.0.1:8443".parse().unwrap());
        metrics.listener_ssl_handshake.get_or_create(&inbound).inc();
        metrics
            .protocol
            .ssl_connection_error
            .get_or_create(&inbound)
            .inc();
        metrics
            .protocol
            .cx_protocol_error
            .get_or_create(&connection_manager("ingress"))
            .inc();
        metrics.protocol.http2_header_overflow.inc();
        metrics.protocol.http2_outbound_control_flood.inc();
        let a_cluster = metrics.resilience.cluster("a", false);
        a_cluster.set_members(2, 2);
        let stats = metrics.envoy_stats();
        for line in [
            "listener.127.0.0.1_8443.ssl.handshake: 1",
            "listener.127.0.0.1_8443.ssl.connection_error: 1",
            "http.ingress.downstream_cx_protocol_error: 1",
            "http2.header_overflow: 1",
            "http2.outbound_control_flood: 1",
            "cluster.a.membership_total: 2",
            "cluster.a.upstream_rq_total: 1",
            "cluster.a.upstream_rq_5xx: 1",
            "cluster.a.upstream_cx_connect_fail: 1",
            "http.ingress.downstream_rq_active: 2",
            "listener.0.0.0.0_15001.downstream_cx_total: 1",
            "server.live: 1",
        ] {
            assert!(
                stats.lines().any(|l| l == line),
                "{line} missing from:\n{stats}"
            );
        }
    }
}
