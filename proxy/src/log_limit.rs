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
}
