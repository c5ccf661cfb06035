//! UDP listeners and the `udp_proxy` listener filter: datagrams from a client address form a session, which
//! has one connected upstream socket to a host the cluster's balancer picked; replies go back from the
//! listener's socket. As in Envoy 1.40 (`udp_proxy_filter.cc`, and checked by running it):
//! - a session is keyed by the client's address (with `use_per_packet_load_balancing`, by the client's address
//!   and the host each datagram picked); Envoy also keys by the local address a datagram came to, which only
//!   differs on a wildcard address with several local addresses (see `session.rs`);
//! - a new session first takes a connection of the cluster's `max_connections` circuit breaker
//!   (`upstream_cx_overflow` and the datagram dropped when none is left; Envoy 1.40 still counts it in
//!   `downstream_sess_total`, not in `downstream_sess_active`), then a host (`upstream_cx_none_healthy` when
//!   there is none); it holds both until it ends;
//! - a session with no datagram either way for `idle_timeout` ends (`idle_timeout`); the next datagram from
//!   that client opens a new session, with a new upstream socket and a new host pick;
//! - a datagram larger than `max_rx_datagram_size` is dropped (`listener.<scope>.udp.downstream_rx_datagram_dropped`
//!   from clients, `cluster.<name>.udp.sess_rx_datagrams_dropped` from hosts);
//! - a route naming no cluster, or a cluster that does not exist, drops the datagram (`downstream_sess_no_route`).

mod session;

use crate::drain::Drain;
use crate::metrics::udp::ProxyStats;
use crate::{Inputs, log_limit, metrics};
use outrigger_config::model::Listener as ListenerConfig;
use outrigger_config::model::udp_proxy::UdpListener;
use session::{Key, Session, Sessions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Receives until `drain` starts; every session ends with it.
pub async fn run(
    config: Arc<ListenerConfig>,
    socket: Arc<UdpSocket>,
    inputs: Arc<Inputs>,
    drain: Drain,
) {
    let Some(udp) = config.udp.clone() else {
        return;
    };
    let local = socket.local_addr().unwrap_or(config.address);
    let dropped = inputs
        .metrics
        .udp
        .listener_dropped
        .get_or_create(&metrics::listener(&config.stat_prefix, local))
        .clone();
    let stats = inputs.metrics.udp.proxy(&udp.proxy.stat_prefix);
    // Envoy shows the cluster's UDP statistics (at 0) once a udp_proxy names it.
    if let Some(name) = &udp.proxy.cluster
        && inputs.clusters.get(name).is_some()
    {
        inputs.metrics.udp.cluster(name);
    }
    // Bound, but reading only once the initial configuration is in place (Envoy's workers start then).
    tokio::select! {
        () = inputs.wait_initialized() => {}
        () = drain.started() => return,
    }
    let sessions = Sessions::default();
    // One byte more than the limit tells a datagram over it from one exactly at it.
    let mut buffer = vec![0u8; udp.max_rx_datagram_size + 1];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = drain.started() => break,
        };
        let (length, peer) = match received {
            Ok(received) => received,
            Err(e) => {
                // An ICMP error from an earlier send and the like: the socket goes on.
                static RECV_FAILED: log_limit::Once = log_limit::Once::per_second();
                if RECV_FAILED.allow() {
                    tracing::debug!(listener = %config.name, error = %e, "udp: receive failed");
                }
                continue;
            }
        };
        if length > udp.max_rx_datagram_size {
            dropped.inc();
            continue;
        }
        let datagram = &buffer[..length];
        let context = Context {
            udp: &udp,
            inputs: &inputs,
            socket: &socket,
            stats: &stats,
            sessions: &sessions,
            drain: &drain,
        };
        context.on_datagram(peer, datagram);
    }
    sessions.clear();
}

struct Context<'a> {
    udp: &'a UdpListener,
    inputs: &'a Arc<Inputs>,
    socket: &'a Arc<UdpSocket>,
    stats: &'a ProxyStats,
    sessions: &'a Sessions,
    drain: &'a Drain,
}

impl Context<'_> {
    fn on_datagram(&self, peer: SocketAddr, datagram: &[u8]) {
        let proxy = &self.udp.proxy;
        let cluster = proxy
            .cluster
            .as_deref()
            .and_then(|name| self.inputs.clusters.get(name));
        let Some(cluster) = cluster else {
            self.stats.no_route.inc();
            return;
        };
        let session = if proxy.per_packet_load_balancing {
            // Each datagram picks a host; the client has a session per host.
            let Some(host) = session::pick(&cluster) else {
                return;
            };
            let key = Key {
                peer,
                host: Some(host),
            };
            match self.sessions.get(&key) {
                Some(session) => session,
                None => match self.open(key, &cluster, Some(host)) {
                    Some(session) => session,
                    None => return,
                },
            }
        } else {
            let key = Key { peer, host: None };
            match self.sessions.get(&key) {
                Some(session) => session,
                _ => match self.open(key, &cluster, None) {
                    Some(session) => session,
                    None => return,
                },
            }
        };
        session.send_upstream(datagram, self.stats);
    }

    fn open(
        &self,
        key: Key,
        cluster: &Arc<crate::upstream::ClusterState>,
        host: Option<SocketAddr>,
    ) -> Option<Arc<Session>> {
        let session = Session::open(
            key,
            cluster,
            host,
            self.udp,
            self.socket.clone(),
            self.inputs,
            self.stats,
        )?;
        self.sessions.insert(key, session.clone());
        tokio::spawn(session::serve(
            session.clone(),
            self.sessions.clone(),
            self.stats.clone(),
            self.drain.clone(),
        ));
        Some(session)
    }
}
