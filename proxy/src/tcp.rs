//! `tcp_proxy`: connect to the cluster, then copy both ways with half-close and an idle timeout.

use crate::Inputs;
use crate::access_log::record::Record;
use crate::access_log::{Loggers, Notes};
use crate::io::Stream;
use crate::metrics;
use crate::metrics::istio::{ConnectionLabels, TcpReport};
use crate::tls::Alpn;
use crate::upstream::Outcome;
use crate::upstream::UpstreamConnection;
use outrigger_config::model::listener::{TcpProxy, TcpTarget};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

mod pipes;
mod splice;

pub async fn proxy(
    downstream: Stream,
    config: &TcpProxy,
    destination: SocketAddr,
    inputs: &Arc<Inputs>,
    istio: Option<Arc<ConnectionLabels>>,
    listener_notes: Option<Notes>,
) {
    if config.access_log.is_empty() && istio.is_none() && listener_notes.is_none() {
        return forward(downstream, config, destination, inputs, None, None).await;
    }
    // Only with an access log, Istio's metrics or the listener's access log: the connection's record, read
    // when it closes (the listener's, when it has one: Envoy's listener log shows what tcp_proxy filled in).
    let loggers = Loggers::new(&config.access_log);
    let notes = listener_notes.unwrap_or_else(|| {
        let local = downstream.tcp().local_addr().ok();
        let remote = downstream.tcp().peer_addr().ok();
        Notes::start(Record {
            start: Some(std::time::SystemTime::now()),
            downstream_remote: remote,
            downstream_local: if own_destination(destination, local) {
                local
            } else {
                Some(destination)
            },
            ..Record::default()
        })
    });
    let mut report = istio.map(TcpReport::new);
    forward(
        downstream,
        config,
        destination,
        inputs,
        Some(&notes),
        report.as_mut(),
    )
    .await;
    let elapsed = notes.elapsed();
    notes.with(|r| r.duration = Some(elapsed));
    let mut record = Record::default();
    notes.with(|r| record = r.clone());
    if let Some(report) = report {
        report.closed(&record);
    }
    loggers.log(&record);
}

/// The connection came with no redirect: its destination is the listener's own address.
fn own_destination(destination: SocketAddr, local: Option<SocketAddr>) -> bool {
    local.is_none_or(|l| l == destination)
}

async fn forward(
    mut downstream: Stream,
    config: &TcpProxy,
    destination: SocketAddr,
    inputs: &Arc<Inputs>,
    notes: Option<&Notes>,
    istio: Option<&mut TcpReport>,
) {
    let note = |change: &dyn Fn(&mut Record)| {
        if let Some(notes) = notes {
            notes.with(|r| change(r));
        }
    };
    let labels = metrics::tcp(&config.stat_prefix);
    inputs.metrics.tcp_cx.get_or_create(&labels).inc();
    let cluster_name = pick_cluster(&config.target);
    note(&|r| r.upstream_cluster = Some(cluster_name.into()));
    let Some(cluster) = inputs.clusters.get(cluster_name) else {
        note(&|r| r.flags.add("NC"));
        tracing::warn!(
            cluster = cluster_name,
            "tcp_proxy: unknown cluster; closing the connection"
        );
        return;
    };
    let Ok(local) = downstream.tcp().local_addr() else {
        return;
    };
    let own = inputs.own_addresses(local);
    // The cluster's `max_connections` circuit breaker: Envoy's TCP proxy closes a connection over it at once.
    let Ok(_permit) = cluster.breaker.connection() else {
        cluster.stats.cx_overflow.inc();
        note(&|r| r.flags.add("UO"));
        tracing::debug!(
            cluster = cluster_name,
            "tcp_proxy: max_connections reached (upstream_cx_overflow); closing"
        );
        return;
    };
    let mut upstream = None;
    let mut host = None;
    for attempt in 1..=config.max_connect_attempts.max(1) {
        let picked = match cluster.pick(Some(destination), &own) {
            Ok(picked) => picked,
            Err(e) => {
                cluster.stats.none_healthy.inc();
                note(&|r| r.flags.add("UH"));
                tracing::warn!(cluster = cluster_name, error = %e, "tcp_proxy: no upstream");
                return;
            }
        };
        inputs
            .metrics
            .cluster_cx
            .get_or_create(&metrics::cluster(cluster_name))
            .inc();
        let address = picked.address;
        note(&|r| {
            r.upstream_host = Some(address);
            r.attempts = Some(attempt);
        });
        match tokio::time::timeout(cluster.config.connect_timeout, TcpStream::connect(address))
            .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                cluster.report(address, Outcome::LocalSuccess);
                match cluster.transport(picked.transport) {
                    None => {
                        let info = UpstreamConnection::plain(&stream);
                        upstream = Some((Stream::Plain(stream), info));
                        host = Some(address);
                        break;
                    }
                    Some(tls) => {
                        // The handshake logs and counts its own failure.
                        if let Ok(stream) = tls
                            .connect(stream, Alpn::Configured, cluster.config.connect_timeout)
                            .await
                        {
                            let info = UpstreamConnection::tls(&stream, &tls.context);
                            upstream = Some((Stream::from(stream), info));
                            host = Some(address);
                            break;
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                cluster.report(address, Outcome::ConnectFailed);
                let reason = connect_failure_reason(&e);
                note(&|r| r.upstream_failure = Some(reason.clone()));
                tracing::debug!(%address, attempt, error = %e, "tcp_proxy: connect failed")
            }
            Err(_) => {
                cluster.stats.cx_connect_timeout.inc();
                cluster.report(address, Outcome::Timeout);
                tracing::debug!(%address, attempt, "tcp_proxy: connect timed out")
            }
        }
        inputs
            .metrics
            .cluster_cx_connect_fail
            .get_or_create(&metrics::cluster(cluster_name))
            .inc();
    }
    let Some((mut upstream, info)) = upstream else {
        // Envoy's tcp_proxy flags the last failed attempt as exceeding the retry limit, even the first.
        note(&|r| {
            r.flags.add("UF");
            r.flags.add("URX");
        });
        return;
    };
    // Load reports: Envoy's TCP pool counts a connection as an issued request, in progress while it lasts; a
    // failed connect and the connection's end are neither success nor error (checked with Envoy 1.40).
    let _in_progress = host
        .and_then(|h| cluster.load_of(h))
        .map(|load| load.issue());
    note(&|r| {
        r.upstream_local = info.0.local;
        r.upstream_peer = Some(info.0.peer.clone());
    });
    if let Some(report) = istio {
        report.connected(cluster_name, &info.0.peer);
    }
    let (sent, received) =
        copy_both_ways(&mut downstream, &mut upstream, config.idle_timeout).await;
    note(&|r| {
        r.bytes_sent = sent;
        r.bytes_received = received;
    });
    inputs
        .metrics
        .tcp_tx_bytes
        .get_or_create(&labels)
        .inc_by(sent);
    inputs
        .metrics
        .tcp_rx_bytes
        .get_or_create(&labels)
        .inc_by(received);
}

/// `%UPSTREAM_TRANSPORT_FAILURE_REASON%` for a failed connect, in Envoy's words (`delayed_connect_error:` and
/// the socket error, spaces as `_`; checked with Envoy 1.40 for a refused connection).
pub fn connect_failure_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    // Rust adds ` (os error N)` to the system's message.
    let message = text.split(" (os error").next().unwrap_or(&text);
    format!("delayed_connect_error:_{}", message.replace(' ', "_"))
}

fn pick_cluster(target: &TcpTarget) -> &str {
    match target {
        TcpTarget::Cluster(name) => name,
        TcpTarget::WeightedClusters(list) => {
            let total: u64 = list.iter().map(|(_, w)| u64::from(*w)).sum();
            let mut point = fastrand::u64(..total.max(1));
            for (name, weight) in list {
                if point < u64::from(*weight) {
                    return name;
                }
                point -= u64::from(*weight);
            }
            list.first().map(|(n, _)| n.as_str()).unwrap_or_default()
        }
    }
}

/// Copies until both sides are done, passing each side's EOF on as a half-close. Returns (bytes sent to the
/// downstream, bytes received from it). With `idle`, a connection quiet that long in both directions is closed.
pub async fn copy_both_ways(
    downstream: &mut Stream,
    upstream: &mut Stream,
    idle: Option<Duration>,
) -> (u64, u64) {
    // Counted as they go, so a connection the idle timeout ends still reports its bytes.
    let tally = Tally::default();
    match (downstream, upstream) {
        // Plain TCP both sides: zero copy (splice), and the halves split without a lock.
        (Stream::Plain(down), Stream::Plain(up)) => {
            let (down_read, down_write) = down.split();
            let (up_read, up_write) = up.split();
            let copies = async {
                tokio::join!(
                    plain(down_read, up_write, &tally.activity, &tally.received),
                    plain(up_read, down_write, &tally.activity, &tally.sent)
                )
            };
            until_idle(copies, &tally.activity, idle).await;
        }
        // TLS needs tokio's shared split, and its bytes pass through user space anyway.
        (down, up) => {
            let (mut down_read, mut down_write) = tokio::io::split(down);
            let (mut up_read, mut up_write) = tokio::io::split(up);
            let copies = async {
                tokio::join!(
                    buffered(
                        &mut down_read,
                        &mut up_write,
                        &tally.activity,
                        &tally.received
                    ),
                    buffered(&mut up_read, &mut down_write, &tally.activity, &tally.sent)
                )
            };
            until_idle(copies, &tally.activity, idle).await;
        }
    }
    (
        tally.sent.load(Ordering::Relaxed),
        tally.received.load(Ordering::Relaxed),
    )
}

#[derive(Default)]
struct Tally {
    /// Chunks passed on either way, for the idle timeout.
    activity: AtomicU64,
    /// Bytes written to the upstream (received from the downstream).
    received: AtomicU64,
    /// Bytes written to the downstream.
    sent: AtomicU64,
}

/// Runs `copies` to their end, or until `activity` has not moved for `idle`.
async fn until_idle<F: Future>(copies: F, activity: &AtomicU64, idle: Option<Duration>) {
    let watchdog = async {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        let mut seen = u64::MAX;
        loop {
            tokio::time::sleep(idle).await;
            let now = activity.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::select! {
        _ = copies => {}
        () = watchdog => {}
    }
}

/// One direction between plain TCP sockets: spliced, or through a buffer where splicing is not possible.
async fn plain(
    mut reader: ReadHalf<'_>,
    mut writer: WriteHalf<'_>,
    activity: &AtomicU64,
    total: &AtomicU64,
) {
    match splice::copy(reader.as_ref(), writer.as_ref(), activity, total).await {
        splice::Copied::Ended => {
            let _ = writer.shutdown().await;
        }
        splice::Copied::Unsupported => buffered(&mut reader, &mut writer, activity, total).await,
    }
}

/// One direction through a 16 KiB buffer, then the writer's half-close.
async fn buffered<R, W>(reader: &mut R, writer: &mut W, activity: &AtomicU64, total: &AtomicU64)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if writer.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        total.fetch_add(n as u64, Ordering::Relaxed);
        activity.fetch_add(1, Ordering::Relaxed);
    }
    let _ = writer.shutdown().await;
}
