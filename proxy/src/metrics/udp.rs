//! The UDP proxy's statistics, in Envoy 1.40's names (read from its `/stats` after traffic):
//! `udp.<stat_prefix>.downstream_sess_*`, `udp.<stat_prefix>.idle_timeout`, the cluster's `udp.sess_*` and
//! `upstream_cx_{rx,tx}_bytes_total`, and the listener's `udp.downstream_rx_datagram_dropped`. In Prometheus:
//! `envoy_udp_<stat>{envoy_udp_prefix}`, `envoy_cluster_udp_<stat>{envoy_cluster_name}`,
//! `envoy_listener_udp_<stat>{envoy_listener_address}` (counters gain `_total`, as everywhere here).

use super::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `udp.<stat_prefix>.*` counters, in the order of `Families::proxy`.
pub const PROXY_COUNTERS: &[&str] = &[
    "downstream_sess_no_route",
    "downstream_sess_rx_bytes",
    "downstream_sess_rx_datagrams",
    "downstream_sess_rx_errors",
    // Registered as `downstream_sess`: OpenMetrics adds `_total`, which is Envoy's own name.
    "downstream_sess",
    "downstream_sess_tx_bytes",
    "downstream_sess_tx_datagrams",
    "downstream_sess_tx_errors",
    "idle_timeout",
    "session_filter_config_missing",
];

/// The cluster's `udp.*` counters (the tunnelling ones stay 0: tunnelling is refused by the loader).
pub const CLUSTER_COUNTERS: &[&str] = &[
    "sess_rx_datagrams",
    "sess_rx_datagrams_dropped",
    "sess_rx_errors",
    "sess_tunnel_buffer_overflow",
    "sess_tunnel_failure",
    "sess_tunnel_success",
    "sess_tx_datagrams",
    "sess_tx_errors",
];

#[derive(Clone, Default)]
pub struct Families {
    pub proxy: Vec<Family<Labels, Counter>>,
    pub sessions_active: Family<Labels, Gauge>,
    pub cluster: Vec<Family<Labels, Counter>>,
    /// `cluster.<name>.upstream_cx_{rx,tx}_bytes_total` (counted by the UDP proxy).
    pub cluster_rx_bytes: Family<Labels, Counter>,
    pub cluster_tx_bytes: Family<Labels, Counter>,
    pub listener_dropped: Family<Labels, Counter>,
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let mut f = Families::default();
        for name in PROXY_COUNTERS {
            let family = Family::default();
            registry.register(
                format!("envoy_udp_{name}"),
                "UDP proxy sessions and datagrams",
                family.clone(),
            );
            f.proxy.push(family);
        }
        registry.register(
            "envoy_udp_downstream_sess_active",
            "UDP proxy sessions open",
            f.sessions_active.clone(),
        );
        for name in CLUSTER_COUNTERS {
            let family = Family::default();
            registry.register(
                format!("envoy_cluster_udp_{name}"),
                "UDP datagrams to and from the cluster's hosts",
                family.clone(),
            );
            f.cluster.push(family);
        }
        registry.register(
            "envoy_cluster_upstream_cx_rx_bytes",
            "Bytes received from the cluster's hosts (UDP proxy)",
            f.cluster_rx_bytes.clone(),
        );
        registry.register(
            "envoy_cluster_upstream_cx_tx_bytes",
            "Bytes sent to the cluster's hosts (UDP proxy)",
            f.cluster_tx_bytes.clone(),
        );
        registry.register(
            "envoy_listener_udp_downstream_rx_datagram_dropped",
            "Datagrams from clients dropped as larger than max_rx_datagram_size",
            f.listener_dropped.clone(),
        );
        f
    }

    /// One proxy's statistics, resolved once.
    pub fn proxy(&self, stat_prefix: &str) -> ProxyStats {
        let labels = vec![("envoy_udp_prefix", stat_prefix.to_string())];
        let c = |i: usize| self.proxy[i].get_or_create(&labels).clone();
        ProxyStats {
            no_route: c(0),
            rx_bytes: c(1),
            rx_datagrams: c(2),
            rx_errors: c(3),
            total: c(4),
            tx_bytes: c(5),
            tx_datagrams: c(6),
            tx_errors: c(7),
            idle_timeout: c(8),
            _filter_config_missing: c(9),
            active: self.sessions_active.get_or_create(&labels).clone(),
        }
    }

    /// One cluster's UDP statistics, resolved once.
    pub fn cluster(&self, name: &str) -> ClusterUdpStats {
        let labels = super::cluster(name);
        let c = |i: usize| self.cluster[i].get_or_create(&labels).clone();
        let _unused = (c(2), c(3), c(4), c(5));
        ClusterUdpStats {
            rx_datagrams: c(0),
            rx_dropped: c(1),
            tx_datagrams: c(6),
            tx_errors: c(7),
            rx_bytes: self.cluster_rx_bytes.get_or_create(&labels).clone(),
            tx_bytes: self.cluster_tx_bytes.get_or_create(&labels).clone(),
        }
    }
}

#[derive(Clone)]
pub struct ProxyStats {
    pub no_route: Counter,
    pub rx_bytes: Counter,
    pub rx_datagrams: Counter,
    pub rx_errors: Counter,
    pub total: Counter,
    pub tx_bytes: Counter,
    pub tx_datagrams: Counter,
    pub tx_errors: Counter,
    pub idle_timeout: Counter,
    /// Shown at 0 as Envoy shows it (session filters are refused by the loader).
    _filter_config_missing: Counter,
    pub active: Gauge,
}

#[derive(Clone)]
pub struct ClusterUdpStats {
    pub rx_datagrams: Counter,
    pub rx_dropped: Counter,
    pub tx_datagrams: Counter,
    pub tx_errors: Counter,
    pub rx_bytes: Counter,
    pub tx_bytes: Counter,
}

/// `/stats` names for the UDP proxy's own families (`envoy_udp_*`); the cluster's and listener's `udp_*` are
/// placed in their `udp` scope by the caller.
pub fn envoy_stat(
    name: &str,
    label: &dyn Fn(&str) -> Option<String>,
    value: &str,
) -> Option<String> {
    let rest = name.strip_prefix("envoy_udp_")?;
    let prefix = label("envoy_udp_prefix")?;
    // Our counters end in `_total`; of Envoy's, only `downstream_sess_total` does.
    let rest = match rest.strip_suffix("_total") {
        Some(base) if !base.ends_with("_sess") => base,
        _ => rest,
    };
    Some(format!("udp.{prefix}.{rest}: {value}"))
}
