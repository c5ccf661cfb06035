//! Limits on open downstream connections, as Envoy counts them:
//! - `envoy.filters.network.connection_limit`: at most `max_connections` open through one filter config at once
//!   (shared by every worker); past it the connection is counted in
//!   `connection_limit.<stat_prefix>.limited_connections` and closed, after `delay` when one is set (its bytes
//!   read and dropped meanwhile, so a client cannot retry at once). Connections are in
//!   `connection_limit.<stat_prefix>.active_connections` until they close, refused ones too (Envoy's count).
//! - the overload manager's `global_downstream_max_connections`: every listener's connections but the admin's and
//!   those of listeners with `ignore_global_conn_limit`; past it a new connection is closed on accept and counted
//!   in the listener's `downstream_global_cx_overflow`.
//!
//! Every count is released by a guard's `Drop`, so a connection ending any way (an error, a panic in its task, a
//! reset) gives its slot back.

use crate::metrics::{Labels, Metrics};
use outrigger_config::Snapshot;
use outrigger_config::model::listener::{ConnectionLimit, NetworkFilter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A count of open connections with a ceiling.
#[derive(Default)]
pub struct Count {
    open: AtomicU64,
}

impl Count {
    /// Takes a slot if fewer than `max` are taken.
    fn try_take(&self, max: u64) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Takes a slot past the ceiling too (a refused connection until it closes).
    fn take(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                Some(open.saturating_sub(1))
            });
    }

    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Acquire)
    }
}

/// The global limit's slot of one connection; given back on drop.
pub struct GlobalSlot(Arc<Count>);

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A slot under `max` in the proxy-wide count, or `None` when it is full.
pub fn take_global(count: &Arc<Count>, max: u64) -> Option<GlobalSlot> {
    count.try_take(max).then(|| GlobalSlot(count.clone()))
}

struct Limit {
    count: Count,
    limited: Counter,
    active: Gauge,
}

/// Every connection limit filter of a snapshot, built once.
#[derive(Default)]
pub struct ConnectionLimits {
    /// By the filter config's address (each is one `Arc` in the snapshot, which outlives this map).
    by_config: HashMap<usize, Arc<Limit>>,
}

/// What the filter decided for one connection.
pub enum Admission {
    /// Go on; the guard holds the slot until the connection ends.
    Admitted(Option<Admitted>),
    /// Close the connection, after `delay` when set. As in Envoy, a refused connection holds a slot (and is
    /// in `active_connections`) until it is closed, so connections held through a delay count.
    Refused {
        delay: Option<Duration>,
        slot: Admitted,
    },
}

/// An admitted connection's slot.
pub struct Admitted(Arc<Limit>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.count.release();
        self.0.active.dec();
    }
}

impl ConnectionLimits {
    /// The limits of `snapshot`; a filter config kept from `previous` (the same `Arc`, as an unchanged listener
    /// keeps its filters) keeps its count of open connections.
    pub fn update(snapshot: &Snapshot, metrics: &Metrics, previous: &Self) -> Self {
        let mut by_config = HashMap::new();
        let filters = snapshot.listeners.iter().flat_map(|l| {
            l.filter_chains
                .iter()
                .chain(l.default_filter_chain.iter())
                .flat_map(|c| c.filters.iter())
        });
        for filter in filters {
            let NetworkFilter::ConnectionLimit(config) = filter else {
                continue;
            };
            let key = Arc::as_ptr(config) as usize;
            let limit = previous.by_config.get(&key).cloned().unwrap_or_else(|| {
                let labels: Labels =
                    vec![("envoy_connection_limit_prefix", config.stat_prefix.clone())];
                Arc::new(Limit {
                    count: Count::default(),
                    limited: metrics
                        .connection_limit_limited
                        .get_or_create(&labels)
                        .clone(),
                    active: metrics
                        .connection_limit_active
                        .get_or_create(&labels)
                        .clone(),
                })
            });
            by_config.insert(key, limit);
        }
        Self { by_config }
    }

    pub fn admit(&self, config: &Arc<ConnectionLimit>) -> Admission {
        if !config.enabled {
            return Admission::Admitted(None);
        }
        let Some(limit) = self.by_config.get(&(Arc::as_ptr(config) as usize)) else {
            return Admission::Admitted(None);
        };
        limit.active.inc();
        if limit.count.try_take(config.max_connections) {
            return Admission::Admitted(Some(Admitted(limit.clone())));
        }
        limit.limited.inc();
        limit.count.take();
        Admission::Refused {
            delay: config.delay,
            slot: Admitted(limit.clone()),
        }
    }
}

/// Holds a refused connection for `delay`, reading and dropping what the client sends (Envoy buffers it and
/// closes without answering), then lets it close.
pub async fn hold_refused<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, delay: Duration) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(delay, async {
        loop {
            match stream.read(&mut sink).await {
                // The client gave up first: close now.
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_never_passes_its_ceiling_and_gives_slots_back() {
        let count = Arc::new(Count::default());
        let a = take_global(&count, 2);
        let b = take_global(&count, 2);
        assert!(a.is_some() && b.is_some());
        assert!(take_global(&count, 2).is_none());
        drop(a);
        assert_eq!(count.open(), 1);
        assert!(take_global(&count, 2).is_some());
    }
}
