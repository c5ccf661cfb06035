//! Envoy's local token bucket since 1.31, for the HTTP and the network local rate limit filters: it starts full
//! and refills continuously, `tokens_per_fill` every `fill_interval` spread evenly over the interval, up to
//! `max_tokens`; a request (or a connection) takes one token.
//!
//! Not tower's `RateLimit`: that one makes callers *wait* for the next window, while Envoy refuses at once with
//! 429; and its state is per service instance, while Envoy's bucket is shared by every worker.

use outrigger_config::model::http::TokenBucket as Config;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The result of asking for a token.
pub struct Taken {
    pub allowed: bool,
    /// Whole tokens left.
    pub remaining: u32,
    /// Until the next token.
    pub reset: Duration,
}

pub struct TokenBucket {
    max: f64,
    /// Tokens per second.
    rate: f64,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(config: &Config, now: Instant) -> Self {
        let max = f64::from(config.max_tokens);
        let seconds = config.fill_interval.as_secs_f64().max(f64::EPSILON);
        Self {
            max,
            rate: f64::from(config.tokens_per_fill) / seconds,
            state: Mutex::new(State {
                tokens: max,
                updated: now,
            }),
        }
    }

    /// Takes a token if there is one, and says what is left (for the `x-ratelimit-*` headers).
    pub fn take(&self, now: Instant) -> Taken {
        let Ok(mut state) = self.state.lock() else {
            return Taken {
                allowed: true,
                remaining: 0,
                reset: Duration::ZERO,
            };
        };
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.max);
        state.updated = now;
        let allowed = state.tokens >= 1.0;
        if allowed {
            state.tokens -= 1.0;
        }
        // Until the next whole token; zero while the bucket is full.
        let missing = if state.tokens >= self.max {
            0.0
        } else {
            1.0 - state.tokens.fract()
        };
        Taken {
            allowed,
            remaining: state.tokens.floor() as u32,
            reset: Duration::from_secs_f64(missing / self.rate),
        }
    }

    pub fn max_tokens(&self) -> u32 {
        self.max as u32
    }

    /// Tokens per second: the local rate limit filter tries the slowest-filling descriptor bucket first.
    pub fn fill_rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(max: u32, per_fill: u32, interval_ms: u64, now: Instant) -> TokenBucket {
        TokenBucket::new(
            &Config {
                max_tokens: max,
                tokens_per_fill: per_fill,
                fill_interval: Duration::from_millis(interval_ms),
            },
            now,
        )
    }

    #[test]
    fn starts_full_and_empties() {
        let now = Instant::now();
        let b = bucket(3, 1, 1000, now);
        assert!((0..3).all(|_| b.take(now).allowed));
        assert!(!b.take(now).allowed);
    }

    #[test]
    fn refills_continuously_not_in_steps() {
        let start = Instant::now();
        let b = bucket(10, 10, 1000, start);
        (0..10).for_each(|_| assert!(b.take(start).allowed));
        // 10 tokens a second: one every 100 ms, not 10 at once after a second.
        assert!(!b.take(start + Duration::from_millis(50)).allowed);
        assert!(b.take(start + Duration::from_millis(101)).allowed);
        assert!(!b.take(start + Duration::from_millis(150)).allowed);
        assert!(b.take(start + Duration::from_millis(350)).allowed);
        assert!(b.take(start + Duration::from_millis(350)).allowed);
    }

    #[test]
    fn tells_what_is_left_and_when_the_next_token_comes() {
        let start = Instant::now();
        let b = bucket(2, 1, 60_000, start);
        let first = b.take(start);
        assert!(first.allowed);
        assert_eq!(first.remaining, 1);
        assert_eq!(first.reset.as_secs(), 60);
        let third = {
            let _ = b.take(start);
            b.take(start)
        };
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
    }

    #[test]
    fn never_holds_more_than_max() {
        let start = Instant::now();
        let b = bucket(2, 5, 100, start);
        let later = start + Duration::from_secs(60);
        assert!(b.take(later).allowed);
        assert!(b.take(later).allowed);
        assert!(!b.take(later).allowed);
    }
}
