//! One UDP proxy session: a client address, its upstream socket (connected to the host it was given), the
//! cluster's connection permit, and the task relaying replies back until the session is idle too long.
//!
//! Envoy keys sessions by the local and the peer address. Our listener socket reads datagrams without their
//! destination address, so the key is the peer's: the same session whenever the listener is bound to one
//! address, which is how sidecars bind them; on a wildcard address with several local addresses, Envoy would
//! open a session per local address the client sent to, and answer from that address where we answer from the
//! one the kernel routes from.

use crate::drain::Drain;
use crate::metrics::udp::{ClusterUdpStats, ProxyStats};
use crate::upstream::ClusterState;
use crate::upstream::breaker::Permit;
use crate::{Inputs, log_limit};
use outrigger_config::model::udp_proxy::UdpListener;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Which session a datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub peer: SocketAddr,
    /// With `use_per_packet_load_balancing`: the host the datagram picked.
    pub host: Option<SocketAddr>,
}

/// The listener's sessions. Shared with the sessions' tasks, which remove their own entry when they end.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<Key, Arc<Session>>>>);

impl Sessions {
    pub fn get(&self, key: &Key) -> Option<Arc<Session>> {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: Key, session: Arc<Session>) {
        self.lock().insert(key, session);
    }

    /// Removes `session` if it is still the one under its key.
    fn remove(&self, session: &Arc<Session>) {
        let mut map = self.lock();
        if map
            .get(&session.key)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            map.remove(&session.key);
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Session>>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

pub struct Session {
    key: Key,
    upstream: UdpSocket,
    /// The same socket, for writing without waiting from the listener's task (tokio's `try_send` refuses until
    /// the reactor has seen the socket writable once).
    upstream_tx: std::net::UdpSocket,
    host: SocketAddr,
    /// The listener's socket: replies go back from it.
    downstream: Arc<UdpSocket>,
    idle_timeout: Duration,
    /// Moved forward by every datagram either way.
    deadline: Mutex<Instant>,
    max_rx_datagram_size: usize,
    cluster: ClusterUdpStats,
    /// Held while the session lives: the cluster's `max_connections` counts sessions.
    _permit: Permit,
}

/// A host for a new session, or `upstream_cx_none_healthy`.
pub fn pick(cluster: &ClusterState) -> Option<SocketAddr> {
    match cluster.pick(None, &[]) {
        Ok(picked) => Some(picked.address),
        Err(e) => {
            cluster.stats.none_healthy.inc();
            static NO_HOST: log_limit::Once = log_limit::Once::per_second();
            if NO_HOST.allow() {
                tracing::warn!(cluster = %cluster.config.name, error = %e, "udp_proxy: no host; datagram dropped");
            }
            None
        }
    }
}

impl Session {
    /// A session for `key`: the circuit breaker first, then the host (given, or picked now), as Envoy orders
    /// them. `None` drops the datagram (the reason is counted).
    pub fn open(
        key: Key,
        cluster: &ClusterState,
        host: Option<SocketAddr>,
        udp: &UdpListener,
        downstream: Arc<UdpSocket>,
        inputs: &Inputs,
        stats: &ProxyStats,
    ) -> Option<Arc<Session>> {
        let Ok(permit) = cluster.breaker.connection() else {
            cluster.stats.cx_overflow.inc();
            // Envoy 1.40 counts the refused session (checked by running it), though not as active.
            stats.total.inc();
            return None;
        };
        let host = match host {
            Some(host) => host,
            None => pick(cluster)?,
        };
        let (upstream, upstream_tx) = match connect(host) {
            Ok(sockets) => sockets,
            Err(e) => {
                static CONNECT_FAILED: log_limit::Once = log_limit::Once::per_second();
                if CONNECT_FAILED.allow() {
                    tracing::warn!(cluster = %cluster.config.name, %host, error = %e, "udp_proxy: cannot open an upstream socket");
                }
                inputs
                    .metrics
                    .udp
                    .cluster(&cluster.config.name)
                    .tx_errors
                    .inc();
                return None;
            }
        };
        stats.total.inc();
        stats.active.inc();
        Some(Arc::new(Session {
            key,
            upstream,
            upstream_tx,
            host,
            downstream,
            idle_timeout: udp.proxy.idle_timeout,
            deadline: Mutex::new(Instant::now() + udp.proxy.idle_timeout),
            max_rx_datagram_size: udp.proxy.upstream_max_rx_datagram_size,
            cluster: inputs.metrics.udp.cluster(&cluster.config.name),
            _permit: permit,
        }))
    }

    /// A client's datagram, counted as received, then written to the host (never waiting: a full socket
    /// buffer is a send error, as in Envoy).
    pub fn send_upstream(&self, datagram: &[u8], stats: &ProxyStats) {
        stats.rx_datagrams.inc();
        stats.rx_bytes.inc_by(datagram.len() as u64);
        self.touch();
        match self.upstream_tx.send(datagram) {
            Ok(_) => {
                self.cluster.tx_datagrams.inc();
                self.cluster.tx_bytes.inc_by(datagram.len() as u64);
            }
            Err(e) => {
                self.cluster.tx_errors.inc();
                tracing::debug!(host = %self.host, error = %e, "udp_proxy: send upstream failed");
            }
        }
    }

    fn touch(&self) {
        let next = Instant::now() + self.idle_timeout;
        match self.deadline.lock() {
            Ok(mut deadline) => *deadline = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    fn deadline(&self) -> Instant {
        match self.deadline.lock() {
            Ok(deadline) => *deadline,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// A socket for one session, connected to its host, so only that host's datagrams reach it.
fn connect(host: SocketAddr) -> std::io::Result<(UdpSocket, std::net::UdpSocket)> {
    let any: SocketAddr = match host {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(host)?;
    socket.set_nonblocking(true)?;
    let writer = socket.try_clone()?;
    Ok((UdpSocket::from_std(socket)?, writer))
}

/// Relays the host's datagrams to the client until the session is idle for `idle_timeout` or the listener
/// drains; then the session is gone (its socket closed, its breaker permit given back).
pub async fn serve(session: Arc<Session>, sessions: Sessions, stats: ProxyStats, drain: Drain) {
    let mut buffer = vec![0u8; session.max_rx_datagram_size + 1];
    loop {
        let deadline = session.deadline();
        tokio::select! {
            received = session.upstream.recv(&mut buffer) => match received {
                Ok(length) if length > session.max_rx_datagram_size => {
                    session.touch();
                    session.cluster.rx_dropped.inc();
                }
                Ok(length) => {
                    session.touch();
                    session.cluster.rx_datagrams.inc();
                    session.cluster.rx_bytes.inc_by(length as u64);
                    match session.downstream.send_to(&buffer[..length], session.key.peer).await {
                        Ok(_) => {
                            stats.tx_datagrams.inc();
                            stats.tx_bytes.inc_by(length as u64);
                        }
                        Err(_) => {
                            stats.tx_errors.inc();
                        }
                    }
                }
                // A refused port (ICMP) and the like: the session goes on until it is idle.
                Err(e) => tracing::debug!(host = %session.host, error = %e, "udp_proxy: receive from upstream failed"),
            },
            () = tokio::time::sleep_until(deadline) => {
                if session.deadline() <= Instant::now() {
                    stats.idle_timeout.inc();
                    break;
                }
            }
            () = drain.started() => break,
        }
    }
    stats.active.dec();
    sessions.remove(&session);
}
