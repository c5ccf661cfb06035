//! Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`, `istio_tcp_*`), with
//! Istio's labels in Istio's order, beside Envoy's statistics on `/stats/prometheus`.
//!
//! On when the bootstrap's `node.metadata` has `OUTRIGGER_ISTIO_STATS: true` (the node is where Istio's injector
//! describes the workload, and the flag works with files and with a control plane alike; Envoy, which has no
//! `istio.stats` filter, accepts the same bootstrap).
//!
//! Cost: the labels that depend on the connection (reporter, the peer's identity, ours, the security policy) are
//! resolved once per connection; a request looks its label set up in a small per-connection list by comparing a
//! few values (no hashing), and only a new combination goes to the shared families. The number of label sets is
//! capped at [`MAX_LABEL_SETS`]: past it, a new label set is not recorded, but counted in
//! `outrigger_istio_label_sets_overflow_total` and logged once.

mod request;
mod workload;

use super::Labels;
use crate::access_log::record::Flags;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
pub use request::{REQUEST_HEADERS, report};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
pub use workload::{UNKNOWN, Workload};

/// The node metadata key that turns Istio's metrics on (`true` or `"true"`).
pub const ENABLE_KEY: &str = "OUTRIGGER_ISTIO_STATS";

/// Distinct label sets kept, HTTP and TCP together (each HTTP set is 4 series, each TCP set up to 4).
pub const MAX_LABEL_SETS: usize = 10_000;

/// Istio's buckets (Envoy's defaults), for milliseconds and bytes alike.
const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Label sets a connection remembers before it asks the shared families again.
const PER_CONNECTION: usize = 8;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The families, this proxy's workload and the label-set budget.
pub struct IstioStats {
    requests: Family<Labels, Counter>,
    duration: Histograms,
    request_bytes: Histograms,
    response_bytes: Histograms,
    tcp_sent: Family<Labels, Counter>,
    tcp_received: Family<Labels, Counter>,
    tcp_opened: Family<Labels, Counter>,
    tcp_closed: Family<Labels, Counter>,
    overflow: Counter,
    label_sets: AtomicUsize,
    overflow_logged: AtomicBool,
    /// This proxy, from the node metadata.
    local: Workload,
}

/// Whether the node metadata asks for Istio's metrics.
pub fn enabled(metadata: &Map<String, Value>) -> bool {
    match metadata.get(ENABLE_KEY) {
        Some(Value::Bool(on)) => *on,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl IstioStats {
    pub fn register(registry: &mut Registry, metadata: &Map<String, Value>) -> Self {
        let histograms = || Histograms::new_with_constructor(histogram as fn() -> Histogram);
        let stats = IstioStats {
            requests: Family::default(),
            duration: histograms(),
            request_bytes: histograms(),
            response_bytes: histograms(),
            tcp_sent: Family::default(),
            tcp_received: Family::default(),
            tcp_opened: Family::default(),
            tcp_closed: Family::default(),
            overflow: Counter::default(),
            label_sets: AtomicUsize::new(0),
            overflow_logged: AtomicBool::new(false),
            local: Workload::from_node(metadata),
        };
        let r = registry;
        r.register(
            "istio_requests",
            "HTTP and gRPC requests, by Istio's labels",
            stats.requests.clone(),
        );
        r.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds",
            stats.duration.clone(),
        );
        r.register(
            "istio_request_bytes",
            "Request size in bytes (headers and body)",
            stats.request_bytes.clone(),
        );
        r.register(
            "istio_response_bytes",
            "Response size in bytes (headers and body)",
            stats.response_bytes.clone(),
        );
        r.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream over TCP",
            stats.tcp_sent.clone(),
        );
        r.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream over TCP",
            stats.tcp_received.clone(),
        );
        r.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            stats.tcp_opened.clone(),
        );
        r.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            stats.tcp_closed.clone(),
        );
        r.register(
            "outrigger_istio_label_sets_overflow",
            "Requests and connections not recorded in istio_* because the label sets reached their cap",
            stats.overflow.clone(),
        );
        stats
    }

    /// Room for one more label set? Counts and logs (once) when there is none.
    fn admit(&self, known: bool) -> bool {
        if known {
            return true;
        }
        if self.label_sets.fetch_add(1, Ordering::Relaxed) < MAX_LABEL_SETS {
            return true;
        }
        self.label_sets.fetch_sub(1, Ordering::Relaxed);
        self.overflow.inc();
        if !self.overflow_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cap = MAX_LABEL_SETS,
                "istio metrics: the number of label sets reached its cap; new combinations are counted in \
                 outrigger_istio_label_sets_overflow_total and not recorded"
            );
        }
        false
    }
}

/// Who reports: the client's sidecar (`source`, outbound listeners) or the server's (`destination`, inbound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    Source,
    Destination,
}

impl Reporter {
    /// `INBOUND` listeners report as the destination; any other as the source, as Istio's filter does.
    pub fn of(direction: outrigger_config::model::listener::TrafficDirection) -> Self {
        match direction {
            outrigger_config::model::listener::TrafficDirection::Inbound => Reporter::Destination,
            _ => Reporter::Source,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// What one downstream connection contributes to the labels, resolved when it is accepted.
pub struct ConnectionLabels {
    stats: Arc<IstioStats>,
    reporter: Reporter,
    /// Inbound: the downstream peer. Outbound: this proxy.
    source: Workload,
    /// Inbound: this proxy, with the certificate it served. Outbound: filled per upstream connection.
    destination: Option<Workload>,
    policy: &'static str,
    recent: Mutex<Vec<(HttpKey, Arc<HttpHandles>)>>,
}

impl ConnectionLabels {
    /// `peer_uri`: the downstream's SPIFFE ID (TLS); `local_uri`: the certificate this side served.
    pub fn new(
        stats: &Arc<IstioStats>,
        reporter: Reporter,
        peer_uri: Option<&str>,
        local_uri: Option<&str>,
    ) -> Self {
        let (source, destination, policy) = match reporter {
            Reporter::Destination => {
                let mut local = stats.local.clone();
                if let Some(uri) = local_uri {
                    local = local.with_principal(uri);
                }
                // Istio's server side: mutual TLS when both sides have an identity.
                let mutual = peer_uri.is_some() && local_uri.is_some();
                (
                    Workload::from_spiffe(peer_uri),
                    Some(local),
                    if mutual { "mutual_tls" } else { "none" },
                )
            }
            // Istio's client side does not know the policy.
            Reporter::Source => (stats.local.clone(), None, UNKNOWN),
        };
        ConnectionLabels {
            stats: stats.clone(),
            reporter,
            source,
            destination,
            policy,
            recent: Mutex::new(Vec::new()),
        }
    }

    /// One HTTP or gRPC request ended.
    pub fn request(&self, end: &HttpEnd<'_>) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = recent
            .iter()
            .find(|(k, _)| k.matches(end))
            .map(|(_, h)| h.clone());
        let handles = match found {
            Some(h) => h,
            None => {
                let Some(h) = self.resolve(end) else {
                    return;
                };
                if recent.len() >= PER_CONNECTION {
                    recent.remove(0);
                }
                recent.push((HttpKey::of(end), h.clone()));
                h
            }
        };
        drop(recent);
        handles.requests.inc();
        handles.duration.observe(end.duration_ms);
        handles.request_bytes.observe(end.request_bytes as f64);
        handles.response_bytes.observe(end.response_bytes as f64);
    }

    /// The shared series of a label set this connection has not used recently.
    fn resolve(&self, end: &HttpEnd<'_>) -> Option<Arc<HttpHandles>> {
        let labels = self.labels(
            end.service,
            end.upstream,
            if end.grpc { "grpc" } else { "http" },
            end.flags,
            Some((end.code, end.grpc_status, end.grpc)),
        );
        let s = &self.stats;
        if !s.admit(s.requests.get(&labels).is_some()) {
            return None;
        }
        Some(Arc::new(HttpHandles {
            requests: s.requests.get_or_create_owned(&labels),
            duration: s.duration.get_or_create_owned(&labels),
            request_bytes: s.request_bytes.get_or_create_owned(&labels),
            response_bytes: s.response_bytes.get_or_create_owned(&labels),
        }))
    }

    /// The TCP counters for this connection, resolved when it is known what it reached.
    pub fn tcp(&self, service: &str, upstream: Option<&UpstreamPeer>, flags: Flags) -> TcpHandles {
        let labels = self.labels(service, upstream, "tcp", flags, None);
        let s = &self.stats;
        if !s.admit(s.tcp_opened.get(&labels).is_some()) {
            return TcpHandles::default();
        }
        TcpHandles(Some([
            s.tcp_opened.get_or_create_owned(&labels),
            s.tcp_closed.get_or_create_owned(&labels),
            s.tcp_sent.get_or_create_owned(&labels),
            s.tcp_received.get_or_create_owned(&labels),
        ]))
    }

    /// Istio's labels, in Istio's order. `http`: response code, gRPC status and whether it was gRPC.
    fn labels(
        &self,
        service: &str,
        upstream: Option<&UpstreamPeer>,
        protocol: &'static str,
        flags: Flags,
        http: Option<(u16, Option<u16>, bool)>,
    ) -> Labels {
        let outbound;
        let destination = match &self.destination {
            Some(d) => d,
            None => {
                outbound = Workload::from_spiffe(upstream.and_then(|u| u.peer_uri.as_deref()));
                &outbound
            }
        };
        let mut source = &self.source;
        let with_local;
        if self.reporter == Reporter::Source
            && let Some(uri) = upstream.and_then(|u| u.local_uri.as_deref())
        {
            with_local = self.source.clone().with_principal(uri);
            source = &with_local;
        }
        let s = |v: &Arc<str>| v.to_string();
        // A host name's first label (`reviews` of `reviews.shop.svc.cluster.local`); an address stays whole.
        let service_name = if service.parse::<std::net::IpAddr>().is_ok() {
            service
        } else {
            service.split('.').next().unwrap_or(service)
        };
        let mut labels: Labels = vec![
            ("reporter", self.reporter.label().to_string()),
            ("source_workload", s(&source.workload)),
            ("source_workload_namespace", s(&source.namespace)),
            ("source_principal", s(&source.principal)),
            ("source_app", s(&source.app)),
            ("source_version", s(&source.version)),
            ("source_canonical_service", s(&source.canonical_service)),
            ("source_canonical_revision", s(&source.canonical_revision)),
            ("source_cluster", s(&source.cluster)),
            ("destination_workload", s(&destination.workload)),
            ("destination_workload_namespace", s(&destination.namespace)),
            ("destination_principal", s(&destination.principal)),
            ("destination_app", s(&destination.app)),
            ("destination_version", s(&destination.version)),
            ("destination_service", service.to_string()),
            ("destination_service_name", service_name.to_string()),
            ("destination_service_namespace", s(&destination.namespace)),
            (
                "destination_canonical_service",
                s(&destination.canonical_service),
            ),
            (
                "destination_canonical_revision",
                s(&destination.canonical_revision),
            ),
            ("destination_cluster", s(&destination.cluster)),
            ("request_protocol", protocol.to_string()),
            ("response_flags", flags.short()),
            ("connection_security_policy", self.policy.to_string()),
        ];
        if let Some((code, grpc_status, grpc)) = http {
            labels.push(("response_code", code.to_string()));
            labels.push((
                "grpc_response_status",
                match (grpc, grpc_status) {
                    (true, Some(status)) => status.to_string(),
                    _ => String::new(),
                },
            ));
        }
        labels
    }
}

/// The upstream connection a request or TCP connection went over: the identities its TLS handshake showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamPeer {
    /// This side's SPIFFE ID (the client certificate presented).
    pub local_uri: Option<Arc<str>>,
    /// The upstream's SPIFFE ID.
    pub peer_uri: Option<Arc<str>>,
}

/// How one HTTP request ended.
pub struct HttpEnd<'a> {
    /// The authority without its port (Istio's fallback when no cluster metadata names the service).
    pub service: &'a str,
    pub upstream: Option<&'a UpstreamPeer>,
    /// 0 when no response was sent.
    pub code: u16,
    pub grpc: bool,
    pub grpc_status: Option<u16>,
    pub flags: Flags,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// What tells one request's label set from another's on the same connection.
struct HttpKey {
    service: String,
    upstream: Option<UpstreamPeer>,
    code: u16,
    grpc: bool,
    grpc_status: Option<u16>,
    flags: Flags,
}

impl HttpKey {
    fn of(end: &HttpEnd<'_>) -> Self {
        HttpKey {
            service: end.service.to_string(),
            upstream: end.upstream.cloned(),
            code: end.code,
            grpc: end.grpc,
            grpc_status: end.grpc_status,
            flags: end.flags,
        }
    }

    fn matches(&self, end: &HttpEnd<'_>) -> bool {
        self.code == end.code
            && self.flags == end.flags
            && self.grpc == end.grpc
            && self.grpc_status == end.grpc_status
            && self.service == end.service
            && self.upstream.as_ref() == end.upstream
    }
}

struct HttpHandles {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// Istio's view of one TCP connection: opened once its upstream is connected (or at close when it never
/// was), closed with its bytes at close (Istio also reports bytes every 15 s; here they come at close).
pub struct TcpReport {
    labels: Arc<ConnectionLabels>,
    handles: Option<TcpHandles>,
}

impl TcpReport {
    pub fn new(labels: Arc<ConnectionLabels>) -> Self {
        TcpReport {
            labels,
            handles: None,
        }
    }

    /// The upstream connection to `cluster` is up.
    pub fn connected(&mut self, cluster: &str, upstream: &UpstreamPeer) {
        let handles = self.labels.tcp(cluster, Some(upstream), Flags::default());
        handles.opened();
        self.handles = Some(handles);
    }

    /// The connection closed; `record` says how.
    pub fn closed(self, record: &crate::access_log::record::Record) {
        let handles = self.handles.unwrap_or_else(|| {
            let cluster = record.upstream_cluster.as_deref().unwrap_or(UNKNOWN);
            let handles = self
                .labels
                .tcp(cluster, record.upstream_peer.as_ref(), record.flags);
            handles.opened();
            handles
        });
        handles.closed(record.bytes_sent, record.bytes_received);
    }
}

/// A TCP connection's counters: opened, closed, sent, received (none past the label-set cap).
#[derive(Default)]
pub struct TcpHandles(Option<[Counter; 4]>);

impl TcpHandles {
    pub fn opened(&self) {
        if let Some([opened, ..]) = &self.0 {
            opened.inc();
        }
    }

    /// The connection closed after `sent` bytes to the downstream and `received` from it.
    pub fn closed(&self, sent: u64, received: u64) {
        if let Some([_, closed, tx, rx]) = &self.0 {
            closed.inc();
            tx.inc_by(sent);
            rx.inc_by(received);
        }
    }
}

#[cfg(test)]
mod tests;
