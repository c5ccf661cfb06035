//! Listeners: bind, accept, recover the original destination, detect the protocol, choose the filter chain and
//! hand the connection to its network filter.

mod access_log;
mod original_dst;

use crate::chain::{self, ConnectionFacts};
use crate::drain::Drain;
use crate::io::Stream;
use crate::metrics::managers::Changes;
use crate::metrics::{Labels, SecurityPolicy};
use crate::{Inputs, connection_limit, detect, http, log_limit, metrics, rbac, tcp, tls};
use outrigger_config::Snapshot;
use outrigger_config::model::Listener as ListenerConfig;
use outrigger_config::model::listener::{ListenerFilter, NetworkFilter, TrafficDirection};
use outrigger_config::model::tls::DownstreamTls;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A listener whose socket is bound (so a taken port fails at startup, not later).
pub struct Listener {
    config: Arc<ListenerConfig>,
    socket: Socket,
}

/// A TCP listener's socket, or a UDP listener's (`socket_address.protocol: UDP`, served by `udp_proxy`).
#[derive(Clone)]
enum Socket {
    Tcp(Arc<TcpListener>),
    Udp(Arc<UdpSocket>),
}

enum WeakSocket {
    Tcp(std::sync::Weak<TcpListener>),
    Udp(std::sync::Weak<UdpSocket>),
}

impl Socket {
    fn downgrade(&self) -> WeakSocket {
        match self {
            Socket::Tcp(s) => WeakSocket::Tcp(Arc::downgrade(s)),
            Socket::Udp(s) => WeakSocket::Udp(Arc::downgrade(s)),
        }
    }
}

impl WeakSocket {
    fn upgrade(&self) -> Option<Socket> {
        match self {
            WeakSocket::Tcp(s) => s.upgrade().map(Socket::Tcp),
            WeakSocket::Udp(s) => s.upgrade().map(Socket::Udp),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address} for listener {name:?}: {source}; is another process (or another sidecar) using that port?"
)]
pub struct BindError {
    pub name: String,
    pub address: SocketAddr,
    pub source: std::io::Error,
}

impl Listener {
    pub async fn bind(config: &ListenerConfig) -> Result<Self, BindError> {
        let failed = |source| BindError {
            name: config.name.clone(),
            address: config.address,
            source,
        };
        let socket = match config.udp {
            Some(_) => Socket::Udp(Arc::new(
                UdpSocket::bind(config.address).await.map_err(failed)?,
            )),
            None => Socket::Tcp(Arc::new(
                TcpListener::bind(config.address).await.map_err(failed)?,
            )),
        };
        Ok(Self {
            config: Arc::new(config.clone()),
            socket,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(s) => s.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Accepts until `drain` (the listener's own, a child of the proxy's) starts.
    pub async fn run(self, inputs: Arc<Inputs>, drain: Drain) {
        let socket = match &self.socket {
            Socket::Tcp(socket) => socket.clone(),
            Socket::Udp(socket) => {
                return crate::udp::run(self.config.clone(), socket.clone(), inputs, drain).await;
            }
        };
        let labels = metrics::listener(
            &self.config.stat_prefix,
            self.local_addr().unwrap_or(self.config.address),
        );
        // Envoy shows the overflow counter of every listener, at 0 until the global limit refuses one.
        let global_overflow = inputs
            .metrics
            .listener_global_cx_overflow
            .get_or_create(&labels)
            .clone();
        // Bound, but accepting only once the initial configuration is in place (Envoy's workers start then).
        tokio::select! {
            () = inputs.wait_initialized() => {}
            () = drain.started() => return,
        }
        loop {
            let accepted = tokio::select! {
                accepted = socket.accept() => accepted,
                () = drain.started() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning (the connection waits in
                    // the backlog and is served once descriptors are free).
                    static ACCEPT_FAILED: log_limit::Once = log_limit::Once::per_second();
                    if ACCEPT_FAILED.allow() {
                        tracing::warn!(
                            listener = %self.config.name, error = %e,
                            "accept failed; pausing 50ms (at most one such line a second)"
                        );
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // The overload manager's global limit: refused on accept, before any filter, as in Envoy.
            let global_slot = match inputs
                .generation()
                .snapshot
                .overload
                .global_downstream_max_connections
            {
                Some(max) if !self.config.ignore_global_conn_limit => {
                    match connection_limit::take_global(&inputs.global_connections, max) {
                        Some(slot) => Some(slot),
                        None => {
                            global_overflow.inc();
                            static OVERFLOW: log_limit::Once = log_limit::Once::per_second();
                            if OVERFLOW.allow() {
                                tracing::warn!(
                                    listener = %self.config.name, %peer, max,
                                    "global_downstream_max_connections reached; connection closed \
                                     (downstream_global_cx_overflow counts each)"
                                );
                            }
                            continue;
                        }
                    }
                }
                _ => None,
            };
            // Small writes (h2 frames, TLS records) go out at once instead of waiting on delayed ACKs.
            let _ = stream.set_nodelay(true);
            inputs.metrics.listener_cx.get_or_create(&labels).inc();
            let config = self.config.clone();
            let inputs = inputs.clone();
            let labels = labels.clone();
            let drain = drain.clone();
            tokio::spawn(async move {
                let active = inputs
                    .metrics
                    .listener_cx_active
                    .get_or_create(&labels)
                    .clone();
                active.inc();
                // Given back however the connection ends, a panic in its task included.
                let _open = Open(active);
                let _global = global_slot;
                serve_connection(stream, peer, config, &inputs, drain, &labels).await;
            });
        }
    }
}

/// A connection counted in `downstream_cx_active` while it lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The listeners a proxy serves (those that bind a port), by name, each with its own drain.
#[derive(Default)]
pub struct Running {
    by_name: HashMap<String, Serving>,
}

struct Serving {
    config: Arc<ListenerConfig>,
    /// Held by the accept loop alone, so the socket closes (and new connections are refused) as soon as the
    /// loop stops, whichever drain stopped it; a replacement takes it over while the loop still runs.
    socket: WeakSocket,
    address: Option<SocketAddr>,
    drain: Drain,
}

/// What applying a snapshot's listeners does, prepared (sockets bound) before anything changes.
pub struct Plan {
    /// Unchanged listeners keep their configuration (and with it the `Arc`s that key their run-time state).
    kept: HashMap<String, Arc<ListenerConfig>>,
    /// New or changed listeners, with their sockets (a changed one keeps its predecessor's).
    start: Vec<Listener>,
    /// Listeners to drain: removed or replaced.
    stop: Vec<String>,
    addresses: Vec<SocketAddr>,
}

impl Running {
    /// Binds what `snapshot` adds. A listener whose configuration is unchanged is kept; a changed one on the same
    /// address takes over its socket (so no connection is refused in between).
    pub async fn plan(&self, snapshot: &Snapshot) -> Result<Plan, BindError> {
        let mut plan = Plan {
            kept: HashMap::new(),
            start: Vec::new(),
            stop: Vec::new(),
            addresses: Vec::new(),
        };
        let wanted: Vec<&ListenerConfig> = snapshot
            .listeners
            .iter()
            .filter(|l| l.bind_to_port)
            .collect();
        for config in &wanted {
            let old = self
                .by_name
                .get(&config.name)
                .and_then(|old| Some((old, old.socket.upgrade()?)));
            match old {
                Some((old, _)) if same_listener(&old.config, config) => {
                    plan.kept.insert(config.name.clone(), old.config.clone());
                    plan.addresses.extend(old.address);
                }
                // Same address and protocol: the new listener takes the socket over.
                Some((old, socket))
                    if old.config.address == config.address
                        && old.config.udp.is_some() == config.udp.is_some() =>
                {
                    plan.start.push(Listener {
                        config: Arc::new((*config).clone()),
                        socket,
                    });
                    plan.stop.push(config.name.clone());
                    plan.addresses.extend(old.address);
                }
                _ => {
                    let listener = Listener::bind(config).await?;
                    plan.addresses.extend(listener.local_addr());
                    plan.start.push(listener);
                    if self.by_name.contains_key(&config.name) {
                        plan.stop.push(config.name.clone());
                    }
                }
            }
        }
        for name in self.by_name.keys() {
            if !wanted.iter().any(|l| &l.name == name) {
                plan.stop.push(name.clone());
            }
        }
        Ok(plan)
    }

    /// Drains what the plan stops and serves what it starts.
    pub fn commit(&mut self, plan: Plan, inputs: &Arc<Inputs>) {
        let mut changes = Changes::default();
        for listener in &plan.start {
            if self.by_name.contains_key(listener.name()) {
                changes.modified += 1;
            } else {
                changes.added += 1;
            }
        }
        changes.removed = plan
            .stop
            .iter()
            .filter(|name| !plan.start.iter().any(|l| l.name() == name.as_str()))
            .count() as u64;
        for name in plan.stop {
            if let Some(old) = self.by_name.remove(&name) {
                tracing::info!(listener = %name, "listener removed or replaced; draining its connections");
                old.drain.start();
            }
        }
        for listener in plan.start {
            if let Some(address) = listener.local_addr() {
                tracing::info!(listener = %listener.name(), %address, "listening");
            }
            let drain = inputs.drain.child();
            self.by_name.insert(
                listener.config.name.clone(),
                Serving {
                    config: listener.config.clone(),
                    socket: listener.socket.downgrade(),
                    address: listener.local_addr(),
                    drain: drain.clone(),
                },
            );
            tokio::spawn(listener.run(inputs.clone(), drain));
        }
        changes.active = self.by_name.len();
        inputs.metrics.managers.listeners(&changes);
    }

    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let mut addresses: Vec<_> = self
            .by_name
            .values()
            .filter_map(|s| Some((s.config.name.clone(), s.address?)))
            .collect();
        addresses.sort();
        addresses
    }
}

impl Plan {
    /// The snapshot as it will run: unchanged listeners as they were.
    pub fn snapshot(&self, mut snapshot: Snapshot) -> Snapshot {
        for listener in &mut snapshot.listeners {
            if let Some(kept) = self.kept.get(&listener.name) {
                *listener = (**kept).clone();
            }
        }
        snapshot
    }

    /// Every address the proxy will listen on once the plan is committed.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.addresses.clone()
    }
}

/// Whether a listener's configuration is unchanged. The model's JSON form covers every field but inline
/// certificate bytes, so the TLS settings are compared themselves too.
fn same_listener(old: &ListenerConfig, new: &ListenerConfig) -> bool {
    let tls = |l: &ListenerConfig| -> Vec<Option<DownstreamTls>> {
        l.filter_chains
            .iter()
            .chain(l.default_filter_chain.iter())
            .map(|c| c.tls.clone())
            .collect()
    };
    serde_json::to_string(old).ok() == serde_json::to_string(new).ok() && tls(old) == tls(new)
}

/// `listener.<scope>.ssl.connection_error`.
fn ssl_connection_error(
    inputs: &Inputs,
    labels: &Labels,
) -> prometheus_client::metrics::counter::Counter {
    inputs
        .metrics
        .protocol
        .ssl_connection_error
        .get_or_create(labels)
        .clone()
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    accepting: Arc<ListenerConfig>,
    inputs: &Arc<Inputs>,
    drain: Drain,
    labels: &Labels,
) {
    let guard = drain.connection();
    let generation = inputs.generation();
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let wants_original = accepting.use_original_dst
        || accepting
            .listener_filters
            .contains(&ListenerFilter::OriginalDst);
    let destination = if wants_original {
        original_dst::get(&stream).unwrap_or(local)
    } else {
        local
    };
    // `use_original_dst`: a listener bound (bind_to_port: false) to the original destination takes over.
    let listener = if accepting.use_original_dst {
        generation
            .handoff_listener(destination)
            .unwrap_or_else(|| accepting.clone())
    } else {
        accepting.clone()
    };
    // Written when this function returns, whichever way the connection ends.
    let log = access_log::ListenerLog::start(&listener, peer, destination);
    let filters =
        |f| listener.listener_filters.contains(&f) || accepting.listener_filters.contains(&f);
    let (tls, http_inspect) = (
        filters(ListenerFilter::TlsInspector),
        filters(ListenerFilter::HttpInspector),
    );
    let mut facts = ConnectionFacts {
        source: Some(peer),
        destination: Some(destination),
        transport_protocol: "raw_buffer".to_string(),
        ..ConnectionFacts::default()
    };
    let detect_now = chain::needs_detection(&listener, Some(destination))
        || (tls && rbac::reads_server_name(&listener));
    if (tls || http_inspect) && detect_now {
        match detect::detect(
            &stream,
            tls,
            http_inspect,
            listener.listener_filters_timeout,
        )
        .await
        {
            Some(detected) => {
                if detected.tls {
                    facts.transport_protocol = "tls".to_string();
                }
                facts.server_name = detected.server_name;
                facts.application_protocols = detected.application_protocols;
            }
            None if listener.continue_on_listener_filters_timeout => {}
            None => {
                tracing::debug!(listener = %listener.name, %peer, "protocol detection timed out; closing");
                return;
            }
        }
    }
    let Some(chain) = chain::select(&listener, &facts) else {
        if let Some(log) = &log {
            log.no_filter_chain();
        }
        refuse_unmatched(&stream, &listener, &facts, inputs, labels).await;
        return;
    };
    let (stream, session) = match &chain.tls {
        None => (Stream::Plain(stream), None),
        Some(config) => {
            let Some(context) = generation.tls.server(config) else {
                return;
            };
            match tls::accept(&context, stream, TLS_HANDSHAKE_TIMEOUT).await {
                Ok((stream, session)) => {
                    inputs
                        .metrics
                        .listener_ssl_handshake
                        .get_or_create(labels)
                        .inc();
                    let errors = tls::connection_error::AfterHandshake {
                        counter: ssl_connection_error(inputs, labels),
                        listener: listener.name.clone(),
                    };
                    (Stream::accepted_tls(stream, errors), Some(session))
                }
                Err(e) => {
                    let reason = tls::verify::failure_reason(&e);
                    inputs.metrics.tls_failure(labels, reason, policy(config));
                    if tls::connection_error::in_handshake(reason) {
                        ssl_connection_error(inputs, labels).inc();
                    }
                    // A client can fail handshakes as fast as it connects: one line per reason a second.
                    static FAILED: log_limit::Causes = log_limit::Causes::new();
                    if FAILED.allow(reason) {
                        tracing::warn!(
                            listener = %listener.name, %peer, reason, error = %e,
                            hint = tls::verify::hint(reason),
                            "inbound TLS handshake failed; connection closed (at most one such line a second \
                             per reason)"
                        );
                    }
                    return;
                }
            }
        }
    };
    let peer_identity = session.as_ref().and_then(|s| s.peer.clone());
    let own_addresses = inputs.own_addresses(local);
    let mut stream = stream;
    // Slots of the connection limit filters this connection passed, given back when it ends.
    let mut admitted = Vec::new();
    // Istio's labels that this connection decides, once (the handed-off listener's direction, else the one
    // that accepted).
    let istio = inputs.metrics.istio.as_ref().map(|stats| {
        let direction = match listener.traffic_direction {
            TrafficDirection::Unspecified => accepting.traffic_direction,
            direction => direction,
        };
        Arc::new(metrics::istio::ConnectionLabels::new(
            stats,
            metrics::istio::Reporter::of(direction),
            peer_identity
                .as_deref()
                .and_then(|p| p.uris.first())
                .map(String::as_str),
            session.as_ref().and_then(|s| s.local_uri.as_deref()),
        ))
    });
    for filter in &chain.filters {
        match filter {
            NetworkFilter::Rbac(config) => {
                let subject = rbac::Subject {
                    source: peer,
                    destination,
                    server_name: facts.server_name.as_deref(),
                    peer: peer_identity.as_deref(),
                    tls: session.is_some(),
                    remote: peer.ip(),
                    request: None,
                };
                let rbac_labels = metrics::rbac(&config.stat_prefix);
                match rbac::decide(config, &subject) {
                    rbac::Decision::Allowed(_) => {
                        inputs
                            .metrics
                            .rbac_allowed
                            .get_or_create(&rbac_labels)
                            .inc();
                    }
                    rbac::Decision::Denied(policy) => {
                        inputs.metrics.rbac_denied.get_or_create(&rbac_labels).inc();
                        if let Some(log) = &log {
                            log.denied(policy.as_deref());
                        }
                        let principal = peer_identity
                            .as_deref()
                            .map(tls::Identity::name)
                            .unwrap_or("none (no client certificate)");
                        tracing::warn!(
                            listener = %listener.name, %peer, %destination, principal,
                            policy = policy.as_deref().unwrap_or("no ALLOW policy matched"),
                            "RBAC denied the connection; closed"
                        );
                        return;
                    }
                }
            }
            NetworkFilter::LocalRateLimit(config) => {
                if !generation.network_rate_limits.admit(config) {
                    tracing::debug!(
                        listener = %listener.name, %peer, stat_prefix = %config.stat_prefix,
                        "network local rate limit: no token; connection closed"
                    );
                    return;
                }
            }
            NetworkFilter::ConnectionLimit(config) => {
                match generation.connection_limits.admit(config) {
                    connection_limit::Admission::Admitted(slot) => admitted.extend(slot),
                    connection_limit::Admission::Refused { delay, slot } => {
                        static LIMITED: log_limit::Once = log_limit::Once::per_second();
                        if LIMITED.allow() {
                            tracing::warn!(
                                listener = %listener.name, %peer, stat_prefix = %config.stat_prefix,
                                max_connections = config.max_connections,
                                "connection limit reached; connection closed (limited_connections counts each)"
                            );
                        }
                        if let Some(delay) = delay {
                            connection_limit::hold_refused(&mut stream, delay).await;
                        }
                        drop((stream, slot));
                        return;
                    }
                }
            }
            NetworkFilter::TcpProxy(config) => {
                let notes = log.as_ref().map(|l| l.notes().clone());
                return tcp::proxy(stream, config, destination, inputs, istio, notes).await;
            }
            NetworkFilter::HttpConnectionManager(hcm) => {
                let connection = http::Connection {
                    hcm: hcm.clone(),
                    inputs: inputs.clone(),
                    peer,
                    destination,
                    own_addresses: own_addresses.into(),
                    labels: metrics::connection_manager(&hcm.stat_prefix),
                    tls: session,
                    buffer_limit: listener.per_connection_buffer_limit_bytes,
                    drain,
                    istio,
                };
                let manager = generation.http.get(hcm);
                return http::serve(stream, connection, manager, guard).await;
            }
        }
    }
}

fn policy(config: &DownstreamTls) -> SecurityPolicy {
    if config.require_client_certificate {
        SecurityPolicy::MutualTls
    } else {
        SecurityPolicy::Tls
    }
}

/// How long a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// No filter chain takes the connection: count it, and when the listener only serves TLS (mTLS STRICT) and the
/// client did not speak it, say so.
async fn refuse_unmatched(
    stream: &TcpStream,
    listener: &ListenerConfig,
    facts: &ConnectionFacts,
    inputs: &Inputs,
    labels: &Labels,
) {
    inputs
        .metrics
        .listener_no_filter_chain_match
        .get_or_create(labels)
        .inc();
    let tls_chains: Vec<_> = listener
        .filter_chains
        .iter()
        .filter(|c| c.matcher.transport_protocol.as_deref() == Some("tls"))
        .collect();
    let tls_only = !tls_chains.is_empty() && listener.default_filter_chain.is_none();
    if tls_only && facts.transport_protocol != "tls" {
        let mut first = [0u8; 1];
        let reason = match stream.peek(&mut first).await {
            // A TLS handshake record whose ClientHello could not be read.
            Ok(1) if first[0] == 0x16 => "protocol",
            _ => "plaintext",
        };
        let mutual = tls_chains
            .iter()
            .filter_map(|c| c.tls.as_ref())
            .any(|t| t.require_client_certificate);
        let demanded = if mutual {
            SecurityPolicy::MutualTls
        } else {
            SecurityPolicy::Tls
        };
        inputs.metrics.tls_failure(labels, reason, demanded);
        tracing::warn!(
            listener = %listener.name, peer = ?facts.source, reason,
            "refused a connection that is not TLS: this listener only serves mutual TLS (STRICT); the client must \
             connect through its sidecar or present a certificate"
        );
    } else {
        tracing::debug!(
            listener = %listener.name, peer = ?facts.source, destination = ?facts.destination,
            "no filter chain matches; closing"
        );
    }
}
