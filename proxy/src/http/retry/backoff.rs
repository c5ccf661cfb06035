//! Envoy's retry back-off, as its code computes it (its documentation describes an older formula): retry `n`
//! waits a uniformly drawn time in `[0, min(base * 2^(n-1), max))`.

use std::time::Duration;

/// The interval retry `retry` (1 for the first) draws its wait from.
pub fn ceiling(base: Duration, max: Duration, retry: u32) -> Duration {
    let doubling = retry.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doubling).min(max)
}

/// The wait before retry `retry`: `draw(n)` picks a whole number of milliseconds uniformly in `[0, n)`.
pub fn wait(base: Duration, max: Duration, retry: u32, draw: impl FnOnce(u64) -> u64) -> Duration {
    let ceiling = ceiling(base, max, retry).as_millis().max(1);
    Duration::from_millis(draw(u64::try_from(ceiling).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(25);
    const MAX: Duration = Duration::from_millis(250);

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_maximum() {
        let ceilings: Vec<u128> = (1..=6).map(|n| ceiling(BASE, MAX, n).as_millis()).collect();
        assert_eq!(ceilings, vec![25, 50, 100, 200, 250, 250]);
        // A huge retry number neither overflows nor passes the maximum.
        assert_eq!(ceiling(BASE, MAX, u32::MAX), MAX);
    }

    #[test]
    fn draws_stay_below_the_ceiling() {
        fastrand::seed(3);
        for retry in 1..=5 {
            let limit = ceiling(BASE, MAX, retry);
            for _ in 0..1000 {
                let w = wait(BASE, MAX, retry, |n| fastrand::u64(..n));
                assert!(w < limit, "retry {retry}: {w:?} >= {limit:?}");
            }
        }
        // The draw spans the interval: both ends of the first one (0..25 ms) come up.
        let draws: Vec<Duration> = (0..2000)
            .map(|_| wait(BASE, MAX, 1, |n| fastrand::u64(..n)))
            .collect();
        assert!(draws.contains(&Duration::ZERO));
        assert!(draws.contains(&Duration::from_millis(24)));
    }
}
