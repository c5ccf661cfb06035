//! Envoy's reconnect back-off for xDS streams (`JitteredExponentialBackOffStrategy`): the ceiling starts at
//! 500 ms and doubles up to 30 s; each wait is drawn uniformly below the ceiling ("full jitter"), so that
//! many proxies cut off together do not come back together. It starts again from 500 ms once a stream has
//! carried a response.

use std::time::Duration;

pub const BASE: Duration = Duration::from_millis(500);
pub const MAX: Duration = Duration::from_secs(30);

pub struct Backoff {
    ceiling: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new() -> Self {
        Self::with_rng(fastrand::Rng::new())
    }

    pub fn with_rng(rng: fastrand::Rng) -> Self {
        Self { ceiling: BASE, rng }
    }

    /// The next wait, in `[0, ceiling)`; the ceiling then doubles (up to [`MAX`]).
    pub fn next(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(MAX);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(self.rng.u64(0..millis))
    }

    pub fn reset(&mut self) {
        self.ceiling = BASE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_to_thirty_seconds_and_waits_stay_below_it() {
        let mut backoff = Backoff::with_rng(fastrand::Rng::with_seed(7));
        let mut ceiling = BASE;
        for _ in 0..12 {
            let wait = backoff.next();
            assert!(wait < ceiling, "{wait:?} under {ceiling:?}");
            ceiling = (ceiling * 2).min(MAX);
        }
        assert_eq!(backoff.ceiling, MAX);
        backoff.reset();
        assert!(backoff.next() < BASE);
    }

    #[test]
    fn waits_are_spread_out() {
        let mut backoff = Backoff::with_rng(fastrand::Rng::with_seed(1));
        for _ in 0..10 {
            backoff.next();
        }
        let waits: std::collections::BTreeSet<Duration> = (0..20).map(|_| backoff.next()).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    /// On paused time, a run of failed attempts sleeps what the back-off says and no more: with the ceilings
    /// 0.5, 1, 2, 4, 8 s, five attempts take under 15.5 s.
    #[tokio::test(start_paused = true)]
    async fn attempts_sleep_on_the_clock() {
        let mut backoff = Backoff::with_rng(fastrand::Rng::with_seed(3));
        let start = tokio::time::Instant::now();
        let mut expected = Duration::ZERO;
        for _ in 0..5 {
            let wait = backoff.next();
            expected += wait;
            tokio::time::sleep(wait).await;
        }
        assert_eq!(start.elapsed(), expected);
        assert!(expected < Duration::from_millis(15_500));
    }
}
