//! The load generator: closed-loop (as fast as the target answers) or open-loop (a fixed rate) HTTP/1.1, h2c and
//! gRPC unary, and opaque TCP throughput. Every run reports one JSON object on stdout.

pub mod http;
pub mod tcp;

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// The slowest latency a histogram holds, in microseconds (60 s); slower samples count as this.
const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// At most this many distinct error messages are kept for the report.
const ERROR_SAMPLES: usize = 5;

/// When a run measures: connections are made before `start`, the first `warmup` is not recorded, and nothing is
/// sent after `end`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
}

impl Window {
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now();
        let measure_from = start + warmup;
        Self {
            start,
            measure_from,
            end: measure_from + duration,
        }
    }

    pub fn measures(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
    }
}

/// A fresh histogram of microseconds, 3 significant figures.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)?)
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Latency percentiles in microseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            samples: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Counts errors and keeps the first few distinct messages.
#[derive(Debug, Default)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn add(&mut self, message: String) {
        self.count += 1;
        if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&message) {
            self.samples.push(message);
        }
    }

    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for message in other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&message) {
                self.samples.push(message);
            }
        }
    }
}
