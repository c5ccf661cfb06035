//! Per-host request counts for load reports, as Envoy's host statistics feed them: `rq_total` (issued: the
//! attempt got a connection), `rq_active` (in progress until the response ends), `rq_success` and `rq_error`
//! (a response below 500 or not; a connect failure, a reset or a timeout is an error without being issued).
//! A cluster has them only once a load reporting service asked for it: nothing is counted otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One host's counts since the last report (`active` is a level, never reset).
#[derive(Debug, Default)]
pub struct HostLoad {
    success: AtomicU64,
    error: AtomicU64,
    issued: AtomicU64,
    active: AtomicU64,
}

/// What a report takes from a host: the counts since the previous take, and the requests open now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub success: u64,
    pub error: u64,
    pub issued: u64,
    pub active: u64,
}

impl Taken {
    /// Envoy leaves a host out of a report when all four are zero.
    pub fn is_empty(&self) -> bool {
        self.success == 0 && self.error == 0 && self.issued == 0 && self.active == 0
    }
}

impl HostLoad {
    /// The attempt has a connection: issued, and in progress until the guard is dropped.
    pub fn issue(self: &Arc<Self>) -> ActiveGuard {
        self.issued.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// How the attempt ended: a response below 500 is a success; a 5xx, a failed connect, a reset or a
    /// timeout an error (Envoy's router charges an abort as a 503 or 504).
    pub fn outcome(&self, success: bool) {
        let counter = if success { &self.success } else { &self.error };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back an `issue` whose attempt never got a connection (Envoy counts `rq_total` once a connection
    /// is there; we count from the start of the attempt so that a request waiting for its answer is in
    /// progress).
    fn unissue(&self) {
        let _ = self
            .issued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    fn take(&self) -> Taken {
        Taken {
            success: self.success.swap(0, Ordering::Relaxed),
            error: self.error.swap(0, Ordering::Relaxed),
            issued: self.issued.swap(0, Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
        }
    }
}

/// Holds one request in progress (`total_requests_in_progress`).
#[derive(Debug)]
pub struct ActiveGuard(Arc<HostLoad>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One attempt's counting, from its start to its end; an attempt dropped before it ends (a timeout) is an error.
#[derive(Debug)]
pub struct AttemptLoad {
    host: Arc<HostLoad>,
    active: Option<ActiveGuard>,
    ended: bool,
}

impl AttemptLoad {
    pub fn start(host: Arc<HostLoad>) -> Self {
        let active = Some(host.issue());
        Self {
            host,
            active,
            ended: false,
        }
    }

    /// The attempt got no connection (a failed connect, a full pool): an error, not issued.
    pub fn not_issued(mut self) {
        self.ended = true;
        self.host.unissue();
        self.host.outcome(false);
    }

    /// The response headers came: a success below 500. The guard keeps the request in progress until the
    /// response body ends.
    pub fn answered(mut self, status: u16) -> Option<ActiveGuard> {
        self.ended = true;
        self.host.outcome(status < 500);
        self.active.take()
    }
}

impl Drop for AttemptLoad {
    fn drop(&mut self) {
        if !self.ended {
            self.host.outcome(false);
        }
    }
}

/// The counts of one cluster's hosts.
#[derive(Debug, Default)]
pub struct Loads {
    hosts: RwLock<HashMap<SocketAddr, Arc<HostLoad>>>,
}

impl Loads {
    pub fn host(&self, address: SocketAddr) -> Arc<HostLoad> {
        if let Ok(hosts) = self.hosts.read()
            && let Some(host) = hosts.get(&address)
        {
            return host.clone();
        }
        let mut hosts = match self.hosts.write() {
            Ok(hosts) => hosts,
            Err(poisoned) => poisoned.into_inner(),
        };
        hosts.entry(address).or_default().clone()
    }

    /// Every host's counts since the previous take (Envoy latches them at each report and when a new
    /// period starts).
    pub fn take(&self) -> HashMap<SocketAddr, Taken> {
        let hosts = match self.hosts.read() {
            Ok(hosts) => hosts,
            Err(poisoned) => poisoned.into_inner(),
        };
        hosts.iter().map(|(a, h)| (*a, h.take())).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_are_taken_once_and_active_is_a_level() {
        let loads = Loads::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let host = loads.host(a);
        let guard = host.issue();
        host.outcome(true);
        let _open = host.issue();
        loads.host(a).outcome(false);
        drop(guard);
        let taken = loads.take()[&a];
        assert_eq!(
            taken,
            Taken {
                success: 1,
                error: 1,
                issued: 2,
                active: 1
            }
        );
        let again = loads.take()[&a];
        assert_eq!(
            again,
            Taken {
                active: 1,
                ..Taken::default()
            }
        );
        assert!(!again.is_empty());
        drop(_open);
        assert!(loads.take()[&a].is_empty());
    }

    #[test]
    fn attempts_count_as_envoys_router_charges_them() {
        let loads = Loads::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // A 503: issued and an error; a 200: a success, in progress while its body is read.
        let _ = AttemptLoad::start(loads.host(a)).answered(503);
        let body = AttemptLoad::start(loads.host(a)).answered(200);
        // A refused connect: an error, never issued; a timeout (the attempt dropped): issued and an error.
        AttemptLoad::start(loads.host(a)).not_issued();
        drop(AttemptLoad::start(loads.host(a)));
        assert_eq!(
            loads.take()[&a],
            Taken {
                success: 1,
                error: 3,
                issued: 3,
                active: 1
            }
        );
        drop(body);
        assert_eq!(loads.take()[&a].active, 0);
    }
}
