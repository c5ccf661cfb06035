//! The buckets of one local rate limit config and the decision over them, as Envoy 1.40 makes it:
//!
//! - each request descriptor equal to a configured one (same keys and values, in order) takes that one's
//!   bucket; otherwise the first wildcard descriptor it fits (same keys, any value where the configured value
//!   is empty) takes the bucket of that exact value, made on first use and kept in a least-recently-used set of
//!   `max_dynamic_descriptors`;
//! - the matched buckets are tried slowest-filling first, each taking a token; the first without one refuses
//!   the request (the ones before keep their loss, as in Envoy);
//! - the default bucket takes a token too when nothing matched, or always with
//!   `always_consume_default_token_bucket`; no default bucket lets such requests through.
//!
//! The bucket that decided gives the `x-ratelimit-*` values: the refusing one, else the first matched, else the
//! default.

use super::descriptors::Descriptor;
use crate::token_bucket::{Taken, TokenBucket};
use outrigger_config::model::http::{LocalRateLimit, TokenBucket as BucketConfig};
use outrigger_config::model::rate_limit::DescriptorEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Buckets {
    default: Option<Arc<TokenBucket>>,
    exact: HashMap<Descriptor, Arc<TokenBucket>>,
    wildcards: Vec<Wildcard>,
    always_consume_default: bool,
}

/// A configured descriptor with an empty value somewhere, and the buckets of the values seen.
struct Wildcard {
    entries: Vec<DescriptorEntry>,
    config: BucketConfig,
    capacity: usize,
    seen: Mutex<Recent>,
}

/// Buckets by exact descriptor, with the tick of their last use: the least recent goes when full.
#[derive(Default)]
struct Recent {
    tick: u64,
    buckets: HashMap<Descriptor, (Arc<TokenBucket>, u64)>,
}

/// The bucket that decided and what it said.
pub struct Decided {
    pub max_tokens: u32,
    pub taken: Taken,
}

pub struct Outcome {
    pub allowed: bool,
    pub decided: Option<Decided>,
}

impl Buckets {
    pub fn new(config: &LocalRateLimit, now: Instant) -> Self {
        let bucket = |c: &BucketConfig| Arc::new(TokenBucket::new(c, now));
        let (wildcards, exact): (Vec<_>, Vec<_>) =
            config.descriptors.iter().partition(|d| d.is_wildcard());
        Self {
            default: config.token_bucket.as_ref().map(bucket),
            exact: exact
                .into_iter()
                .map(|d| (d.entries.clone(), bucket(&d.token_bucket)))
                .collect(),
            wildcards: wildcards
                .into_iter()
                .map(|d| Wildcard {
                    entries: d.entries.clone(),
                    config: d.token_bucket,
                    capacity: usize::try_from(config.max_dynamic_descriptors).unwrap_or(usize::MAX),
                    seen: Mutex::default(),
                })
                .collect(),
            always_consume_default: config.always_consume_default_token_bucket,
        }
    }

    /// Takes the tokens the request needs (see the module comment).
    pub fn decide(&self, request: &[Descriptor], now: Instant) -> Outcome {
        let mut matched: Vec<Arc<TokenBucket>> = request
            .iter()
            .filter_map(|d| self.bucket_for(d, now))
            .collect();
        // Stable: equal rates keep the request's order.
        matched.sort_by(|a, b| a.fill_rate().total_cmp(&b.fill_rate()));
        let mut first = None;
        for bucket in &matched {
            let taken = bucket.take(now);
            let decided = Decided {
                max_tokens: bucket.max_tokens(),
                taken,
            };
            if !decided.taken.allowed {
                return Outcome {
                    allowed: false,
                    decided: Some(decided),
                };
            }
            first.get_or_insert(decided);
        }
        if !matched.is_empty() && !self.always_consume_default {
            return Outcome {
                allowed: true,
                decided: first,
            };
        }
        let Some(default) = &self.default else {
            return Outcome {
                allowed: true,
                decided: first,
            };
        };
        let taken = default.take(now);
        let allowed = taken.allowed;
        let own = Decided {
            max_tokens: default.max_tokens(),
            taken,
        };
        Outcome {
            allowed,
            decided: Some(if allowed { first.unwrap_or(own) } else { own }),
        }
    }

    fn bucket_for(&self, descriptor: &Descriptor, now: Instant) -> Option<Arc<TokenBucket>> {
        if let Some(bucket) = self.exact.get(descriptor) {
            return Some(bucket.clone());
        }
        let wildcard = self
            .wildcards
            .iter()
            .find(|w| fits(&w.entries, descriptor))?;
        let mut seen = wildcard.seen.lock().ok()?;
        seen.tick += 1;
        let tick = seen.tick;
        if let Some((bucket, used)) = seen.buckets.get_mut(descriptor) {
            *used = tick;
            return Some(bucket.clone());
        }
        let bucket = Arc::new(TokenBucket::new(&wildcard.config, now));
        seen.buckets
            .insert(descriptor.clone(), (bucket.clone(), tick));
        if seen.buckets.len() > wildcard.capacity {
            let oldest = seen
                .buckets
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| d.clone());
            if let Some(oldest) = oldest {
                seen.buckets.remove(&oldest);
            }
        }
        Some(bucket)
    }
}

/// Whether a request descriptor fits a configured one: same keys in the same order, and the same value
/// wherever the configured value is not empty.
pub fn fits(configured: &[DescriptorEntry], request: &[DescriptorEntry]) -> bool {
    configured.len() == request.len()
        && configured
            .iter()
            .zip(request)
            .all(|(c, r)| c.key == r.key && (c.value.is_empty() || c.value == r.value))
}

#[cfg(test)]
#[path = "buckets_tests.rs"]
mod tests;
