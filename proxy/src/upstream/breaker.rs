//! Circuit breakers: a cluster's limits on requests, retries and connections, shared by every worker.
//!
//! Not tower's `ConcurrencyLimit`: that one *waits* for a permit in `poll_ready`, while Envoy refuses at once
//! (503 `UO`). These are plain atomic counters checked where Envoy checks them (requests when a stream is
//! attached, retries when the router decides to retry, connections when one is opened); like Envoy's, they may
//! overshoot by a few under a race, never by more than the number of workers.

use crate::metrics::ClusterStats;
use outrigger_config::model::cluster::Thresholds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::Notify;

/// The limits of the default routing priority (routes cannot ask for HIGH: `RouteAction.priority` is refused by
/// the loader).
pub struct Breaker {
    limits: Thresholds,
    requests: AtomicU32,
    retries: AtomicU32,
    connections: AtomicU32,
    pending: AtomicU32,
    /// Woken when a connection closes, for requests waiting for one.
    connection_closed: Notify,
    stats: Arc<ClusterStats>,
}

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Requests,
    Retries,
    Connections,
    Pending,
}

impl Breaker {
    pub fn new(limits: Thresholds, stats: Arc<ClusterStats>) -> Arc<Self> {
        let breaker = Arc::new(Self {
            limits,
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            connection_closed: Notify::new(),
            stats,
        });
        breaker.publish();
        breaker
    }

    /// A request attached to the cluster; refused when `max_requests` are in flight.
    pub fn request(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.acquire(Kind::Requests)
    }

    /// A retry; refused when `max_retries` retries are in flight, or, with a `retry_budget`, when they exceed
    /// `budget_percent` of the requests in flight (at least `min_retry_concurrency`).
    pub fn retry(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.acquire(Kind::Retries)
    }

    /// A connection (the TCP proxy's); refused at `max_connections`.
    pub fn connection(self: &Arc<Self>) -> Result<Permit, Overflow> {
        self.acquire(Kind::Connections)
    }

    /// A new HTTP connection, for a request that found no idle one. The request is pending meanwhile: refused at
    /// once past `max_pending_requests` (503 `UO`); at `max_connections` it waits (`upstream_cx_overflow`) until
    /// a connection closes, or an idle one comes back and the pool gives it that instead.
    pub async fn new_connection(self: &Arc<Self>) -> Result<Permit, Overflow> {
        let _pending = self.acquire(Kind::Pending).inspect_err(|_| {
            self.stats.pending_overflow.inc();
        })?;
        let mut counted = false;
        loop {
            let closed = self.connection_closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if let Ok(permit) = self.acquire(Kind::Connections) {
                return Ok(permit);
            }
            if !counted {
                self.stats.cx_overflow.inc();
                counted = true;
            }
            closed.await;
        }
    }

    pub fn active_requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    fn limit(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Requests => self.limits.max_requests,
            Kind::Connections => self.limits.max_connections,
            Kind::Pending => self.limits.max_pending_requests,
            Kind::Retries => match self.limits.retry_budget {
                None => self.limits.max_retries,
                Some(budget) => {
                    let share = budget.budget_percent / 100.0 * f64::from(self.active_requests());
                    (share as u32).max(budget.min_retry_concurrency)
                }
            },
        }
    }

    fn acquire(self: &Arc<Self>, kind: Kind) -> Result<Permit, Overflow> {
        let counter = self.counter(kind);
        let limit = self.limit(kind);
        let taken = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        });
        self.publish();
        match taken {
            Ok(_) => Ok(Permit {
                breaker: self.clone(),
                kind,
            }),
            Err(_) => Err(kind.overflow()),
        }
    }

    fn counter(&self, kind: Kind) -> &AtomicU32 {
        match kind {
            Kind::Requests => &self.requests,
            Kind::Retries => &self.retries,
            Kind::Connections => &self.connections,
            Kind::Pending => &self.pending,
        }
    }

    /// The `*_open` gauges, the `remaining_*` ones when `track_remaining` asks for them, and the active request
    /// gauge.
    fn publish(&self) {
        let requests = self.requests.load(Ordering::Relaxed);
        let retries = self.retries.load(Ordering::Relaxed);
        let connections = self.connections.load(Ordering::Relaxed);
        let pending = self.pending.load(Ordering::Relaxed);
        let s = &self.stats;
        // A request waiting for its connection is pending, not yet active (as in Envoy).
        s.rq_active.set(i64::from(requests.saturating_sub(pending)));
        s.rq_pending_active.set(i64::from(pending));
        let open = |now: u32, limit: u32| i64::from(now >= limit);
        s.rq_open.set(open(requests, self.limits.max_requests));
        s.rq_retry_open
            .set(open(retries, self.limit(Kind::Retries)));
        s.cx_open
            .set(open(connections, self.limits.max_connections));
        s.rq_pending_open
            .set(open(pending, self.limits.max_pending_requests));
        if let Some(remaining) = &s.remaining {
            let left = |now: u32, limit: u32| i64::from(limit.saturating_sub(now));
            remaining.rq.set(left(requests, self.limits.max_requests));
            remaining
                .cx
                .set(left(connections, self.limits.max_connections));
            remaining
                .pending
                .set(left(pending, self.limits.max_pending_requests));
            // Envoy pins it to 0 under a retry budget.
            let retries_left = match self.limits.retry_budget {
                Some(_) => 0,
                None => left(retries, self.limits.max_retries),
            };
            remaining.retries.set(retries_left);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Requests,
    Retries,
    Connections,
    Pending,
}

impl Kind {
    fn overflow(self) -> Overflow {
        match self {
            Kind::Requests => Overflow::Requests,
            Kind::Retries => Overflow::Retries,
            Kind::Connections => Overflow::Connections,
            Kind::Pending => Overflow::Pending,
        }
    }
}

/// One unit of a limit, given back when dropped.
pub struct Permit {
    breaker: Arc<Breaker>,
    kind: Kind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.breaker
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
        if self.kind == Kind::Connections {
            self.breaker.connection_closed.notify_waiters();
        }
        self.breaker.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::model::cluster::RetryBudget;

    fn breaker(limits: Thresholds) -> Arc<Breaker> {
        Breaker::new(limits, Arc::default())
    }

    #[test]
    fn requests_are_refused_at_the_limit_and_given_back() {
        let b = breaker(Thresholds {
            max_requests: 2,
            ..Thresholds::default()
        });
        let first = b.request().unwrap();
        let _second = b.request().unwrap();
        assert_eq!(b.request().err(), Some(Overflow::Requests));
        drop(first);
        assert!(b.request().is_ok());
    }

    #[test]
    fn max_retries_zero_refuses_every_retry() {
        let b = breaker(Thresholds {
            max_retries: 0,
            ..Thresholds::default()
        });
        assert_eq!(b.retry().err(), Some(Overflow::Retries));
    }

    #[test]
    fn retry_budget_is_a_share_of_active_requests_with_a_floor() {
        let b = breaker(Thresholds {
            max_retries: 0,
            retry_budget: Some(RetryBudget {
                budget_percent: 20.0,
                min_retry_concurrency: 1,
            }),
            ..Thresholds::default()
        });
        // No request in flight: the floor of 1 applies.
        let one = b.retry().unwrap();
        assert!(b.retry().is_err());
        drop(one);
        // 10 requests in flight: 20 % of them is 2 retries.
        let _requests: Vec<_> = (0..10).map(|_| b.request().unwrap()).collect();
        let _a = b.retry().unwrap();
        let _b = b.retry().unwrap();
        assert!(b.retry().is_err());
    }

    #[test]
    fn gauges_follow_the_limits() {
        let mut stats = ClusterStats::default();
        stats.remaining = Some(crate::metrics::Remaining::default());
        let b = Breaker::new(
            Thresholds {
                max_requests: 1,
                track_remaining: true,
                ..Thresholds::default()
            },
            Arc::new(stats.clone()),
        );
        let remaining = stats.remaining.clone().unwrap();
        assert_eq!(remaining.rq.get(), 1);
        let permit = b.request().unwrap();
        assert_eq!(stats.rq_open.get(), 1);
        assert_eq!(remaining.rq.get(), 0);
        drop(permit);
        assert_eq!(stats.rq_open.get(), 0);
        assert_eq!(stats.rq_active.get(), 0);
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_a_connection_and_pending_ones_overflow() {
        let stats = ClusterStats::default();
        let b = Breaker::new(
            Thresholds {
                max_connections: 1,
                max_pending_requests: 1,
                ..Thresholds::default()
            },
            Arc::new(stats.clone()),
        );
        let first = b.new_connection().await.unwrap();
        // The second waits for the first connection to close...
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.new_connection().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stats.cx_overflow.get(), 1);
        // ... and holds the only pending slot, so a third is refused at once.
        assert_eq!(b.new_connection().await.err(), Some(Overflow::Pending));
        assert_eq!(stats.pending_overflow.get(), 1);
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }
}
