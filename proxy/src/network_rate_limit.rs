//! `envoy.filters.network.local_ratelimit`: every new connection takes a token from its filter's bucket; with
//! none left the connection is closed at once and the filters after it never run
//! (`local_rate_limit.<stat_prefix>.rate_limited`). One bucket per filter config, shared by every worker, or one
//! per `share_key` (with the same bucket settings).

use crate::metrics::{Labels, Metrics};
use crate::token_bucket::TokenBucket;
use outrigger_config::Snapshot;
use outrigger_config::model::listener::{NetworkFilter, NetworkLocalRateLimit};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// One filter's limit: its bucket (shared with the filters of the same `share_key`) and its own counter (Envoy
/// counts each filter's refusals under its own `stat_prefix`, even when the bucket is shared).
#[derive(Clone)]
struct Limit {
    bucket: Arc<TokenBucket>,
    rate_limited: Counter,
}

/// Every network local rate limit filter of a snapshot, built once.
#[derive(Default)]
pub struct NetworkRateLimits {
    /// By the filter config's address (each is one `Arc` in the snapshot, which outlives this map).
    by_config: HashMap<usize, Limit>,
}

impl NetworkRateLimits {
    pub fn new(snapshot: &Snapshot, metrics: &Metrics) -> Self {
        Self::update(snapshot, metrics, &Self::default())
    }

    /// The limits of `snapshot`; a filter config kept from `previous` (the same `Arc`, as an unchanged listener
    /// keeps its filters) keeps its bucket and the tokens left in it.
    pub fn update(snapshot: &Snapshot, metrics: &Metrics, previous: &Self) -> Self {
        let mut shared: HashMap<(String, String), Arc<TokenBucket>> = HashMap::new();
        let mut by_config = HashMap::new();
        let filters = snapshot.listeners.iter().flat_map(|l| {
            l.filter_chains
                .iter()
                .chain(l.default_filter_chain.iter())
                .flat_map(|c| c.filters.iter())
        });
        for filter in filters {
            let NetworkFilter::LocalRateLimit(config) = filter else {
                continue;
            };
            let key = Arc::as_ptr(config) as usize;
            if let Some(kept) = previous.by_config.get(&key) {
                by_config.insert(key, kept.clone());
                continue;
            }
            let make = || Arc::new(TokenBucket::new(&config.token_bucket, Instant::now()));
            let bucket = if config.share_key.is_empty() {
                make()
            } else {
                let key = (
                    config.share_key.clone(),
                    format!("{:?}", config.token_bucket),
                );
                shared.entry(key).or_insert_with(make).clone()
            };
            let labels: Labels = vec![(
                "envoy_local_network_ratelimit_prefix",
                config.stat_prefix.clone(),
            )];
            let rate_limited = metrics.network_rate_limited.get_or_create(&labels).clone();
            by_config.insert(
                Arc::as_ptr(config) as usize,
                Limit {
                    bucket,
                    rate_limited,
                },
            );
        }
        Self { by_config }
    }

    /// Whether a new connection may go on past this filter.
    pub fn admit(&self, config: &Arc<NetworkLocalRateLimit>) -> bool {
        if !config.enabled {
            return true;
        }
        let Some(limit) = self.by_config.get(&(Arc::as_ptr(config) as usize)) else {
            return true;
        };
        if limit.bucket.take(Instant::now()).allowed {
            return true;
        }
        limit.rate_limited.inc();
        false
    }
}
