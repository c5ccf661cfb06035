//! Log lines a client can cause, at most once a second per cause: a flood of bad requests or refused
//! connections must not become a flood of log lines (disk, CPU, the log pipeline). The counters count every one.
//!
//! One `static` per cause: `static REFUSED: Once = Once::per_second(); if REFUSED.allow() { warn!(..) }`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Once {
    /// Milliseconds after `epoch()` when the next line may be written.
    next: AtomicU64,
    every: Duration,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Once {
    pub const fn per_second() -> Self {
        Self {
            next: AtomicU64::new(0),
            every: Duration::from_secs(1),
        }
    }

    /// True for the first call, then at most once per interval (the caller writing the line).
    pub fn allow(&self) -> bool {
        let now = epoch().elapsed().as_millis() as u64;
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + self.every.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// One `Once` per named cause, for a site whose causes are many (TLS failure reasons, h2 error codes).
#[derive(Default)]
pub struct Causes {
    seen: std::sync::Mutex<Vec<(&'static str, &'static Once)>>,
}

impl Causes {
    pub const fn new() -> Self {
        Self {
            seen: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// True for the first line of `cause`, then at most once a second for it. The causes are a closed set of
    /// names, so each one's `Once` is made once and kept.
    pub fn allow(&self, cause: &'static str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let once = match seen.iter().find(|(name, _)| *name == cause) {
            Some((_, once)) => *once,
            None => {
                let once: &'static Once = Box::leak(Box::new(Once::per_second()));
                seen.push((cause, once));
                once
            }
        };
        once.allow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_logs_once_per_second() {
        static CAUSE: Once = Once::per_second();
        static OTHER: Once = Once::per_second();
        let allowed = (0..1000).filter(|_| CAUSE.allow()).count();
        assert_eq!(allowed, 1);
        assert!(OTHER.allow(), "another cause has its own second");
        std::thread::sleep(Duration::from_millis(1050));
        assert!(CAUSE.allow());
        assert!(!CAUSE.allow());
    }

    #[test]
    fn each_named_cause_has_its_own_second() {
        static CAUSES: Causes = Causes::new();
        assert!(CAUSES.allow("protocol"));
        assert!(!CAUSES.allow("protocol"));
        assert!(CAUSES.allow("connection_closed"));
        assert!(!CAUSES.allow("connection_closed"));
    }
}
