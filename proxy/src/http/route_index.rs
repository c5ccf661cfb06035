//! A virtual host's routes indexed by path, so that finding the first matching route does not test every route.
//!
//! Envoy takes the first route, in order, whose match holds. The index never changes that: it only tells which
//! routes *could* match a path (an exact path equal to it, a prefix it starts with, every regex route), and
//! those candidates are tested with the full matcher in ascending order, so the first that holds is the first
//! in the table that holds. Paths are keyed by a 64-bit FNV-1a hash; two keys sharing a hash only add
//! candidates, which the full matcher then rejects.

use super::route::matches;
use http::request::Parts;
use outrigger_config::model::route::{PathMatch, VirtualHost};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The route positions keyed by the hash of a path or prefix, each list ascending.
type Buckets = HashMap<u64, Vec<u32>, BuildHasherDefault<Prehashed>>;

/// Prefixes keyed by their hash, with the distinct prefix lengths to try (ascending).
#[derive(Default)]
struct Prefixes {
    by_hash: Buckets,
    lengths: Vec<usize>,
}

/// The routes of one virtual host by the paths they can match, built once per route table.
#[derive(Default)]
pub struct RouteIndex {
    exact: Buckets,
    /// Exact paths of `case_sensitive: false` routes, keyed by their ASCII-lower-cased hash.
    exact_folded: Buckets,
    prefixes: Prefixes,
    prefixes_folded: Prefixes,
    /// Routes the index cannot narrow (regular expressions): always candidates.
    others: Vec<u32>,
}

impl RouteIndex {
    pub fn new(vhost: &VirtualHost) -> Self {
        let mut index = RouteIndex::default();
        for (position, route) in vhost.routes.iter().enumerate() {
            // More than four billion routes in one virtual host cannot be loaded; were it ever so, the route is
            // simply not indexed and can never be picked, so the index errs on the side of matching nothing.
            let Ok(position) = u32::try_from(position) else {
                break;
            };
            let folded = !route.matcher.case_sensitive;
            match &route.matcher.path {
                PathMatch::Path(path) => {
                    let map = if folded {
                        &mut index.exact_folded
                    } else {
                        &mut index.exact
                    };
                    map.entry(fnv(path.as_bytes(), folded))
                        .or_default()
                        .push(position);
                }
                PathMatch::Prefix(prefix) | PathMatch::PathSeparatedPrefix(prefix) => {
                    let prefixes = if folded {
                        &mut index.prefixes_folded
                    } else {
                        &mut index.prefixes
                    };
                    prefixes
                        .by_hash
                        .entry(fnv(prefix.as_bytes(), folded))
                        .or_default()
                        .push(position);
                    prefixes.lengths.push(prefix.len());
                }
                PathMatch::SafeRegex(_) => index.others.push(position),
            }
        }
        for prefixes in [&mut index.prefixes, &mut index.prefixes_folded] {
            prefixes.lengths.sort_unstable();
            prefixes.lengths.dedup();
        }
        index
    }

    /// The position of the first route of `vhost` (the virtual host this index was built from) whose match
    /// holds: the same answer as testing every route in order.
    pub fn first(&self, vhost: &VirtualHost, request: &Parts) -> Option<usize> {
        let path = request.uri.path().as_bytes();
        let mut best = None;
        let mut consider = |candidates: &[u32]| {
            for &position in candidates {
                if best.is_some_and(|b| position >= b) {
                    return;
                }
                let holds = vhost
                    .routes
                    .get(position as usize)
                    .is_some_and(|route| matches(&route.matcher, request));
                if holds {
                    best = Some(position);
                    return;
                }
            }
        };
        if !self.exact.is_empty()
            && let Some(candidates) = self.exact.get(&fnv(path, false))
        {
            consider(candidates);
        }
        if !self.exact_folded.is_empty()
            && let Some(candidates) = self.exact_folded.get(&fnv(path, true))
        {
            consider(candidates);
        }
        for (prefixes, folded) in [(&self.prefixes, false), (&self.prefixes_folded, true)] {
            let mut hash = Fnv::new();
            let mut hashed = 0;
            for &length in &prefixes.lengths {
                let Some(more) = path.get(hashed..length) else {
                    break;
                };
                hash.feed(more, folded);
                hashed = length;
                if let Some(candidates) = prefixes.by_hash.get(&hash.0) {
                    consider(candidates);
                }
            }
        }
        // Last, so that a match found above bounds how many regular expressions run.
        consider(&self.others);
        best.map(|b| b as usize)
    }
}

/// 64-bit FNV-1a, fed in pieces (the hash of a prefix extends to the hash of a longer one).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8], folded: bool) {
        for &byte in bytes {
            let byte = if folded {
                byte.to_ascii_lowercase()
            } else {
                byte
            };
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn fnv(bytes: &[u8], folded: bool) -> u64 {
    let mut hash = Fnv::new();
    hash.feed(bytes, folded);
    hash.0
}

/// The map's hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
#[path = "route_index_tests.rs"]
mod tests;
