//! Consistent hashing: Envoy's ring hash (Ketama) and Maglev tables, built as Envoy 1.40 builds them so that the
//! same request hash picks the same endpoint in both proxies.
//!
//! Both hash each host's address as text (`127.0.0.1:8080`, `[::1]:8080`) with xxHash64. The ring gives each host
//! `xxHash64("<address>_<n>")` points in proportion to its weight, at least `min_ring_size` points in all; a
//! request goes to the first point at or after its hash (wrapping). Maglev fills a prime-sized table from each
//! host's permutation (offset `xxHash64(address) % size`, skip `xxHash64(address, seed 1) % (size - 1) + 1`),
//! weighted turns in host order; a request goes to `table[hash % size]`.

use super::Target;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh64::xxh64;

/// A built table, for the host list it was built from.
pub enum Table {
    Ring(Vec<(u64, SocketAddr)>),
    Maglev(Vec<SocketAddr>),
}

impl Table {
    pub fn ring(targets: &[Target], min_ring_size: u64, max_ring_size: u64) -> Table {
        let weights = normalized(targets);
        let min_weight = weights.iter().map(|(_, w)| *w).fold(f64::MAX, f64::min);
        if weights.is_empty() || min_weight <= 0.0 {
            return Table::Ring(Vec::new());
        }
        // The least weighted host gets a whole number of points; the others follow, within the maximum.
        let scale =
            ((min_weight * min_ring_size as f64).ceil() / min_weight).min(max_ring_size as f64);
        let mut ring = Vec::with_capacity(scale.ceil() as usize);
        let (mut current, mut target) = (0.0_f64, 0.0_f64);
        for (address, weight) in weights {
            let key = address.to_string();
            target += scale * weight;
            let mut i = 0_u64;
            while current < target {
                ring.push((xxh64(format!("{key}_{i}").as_bytes(), 0), address));
                i += 1;
                current += 1.0;
            }
        }
        ring.sort_by_key(|(hash, _)| *hash);
        Table::Ring(ring)
    }

    pub fn maglev(targets: &[Target], table_size: u64) -> Table {
        let weights = normalized(targets);
        let size = table_size.max(2);
        if weights.is_empty() {
            return Table::Maglev(Vec::new());
        }
        let max_weight = weights.iter().map(|(_, w)| *w).fold(0.0, f64::max);
        struct Entry {
            address: SocketAddr,
            offset: u64,
            skip: u64,
            weight: f64,
            target_weight: f64,
            next: u64,
        }
        let mut entries: Vec<Entry> = weights
            .into_iter()
            .map(|(address, weight)| {
                let key = address.to_string();
                Entry {
                    address,
                    offset: xxh64(key.as_bytes(), 0) % size,
                    skip: xxh64(key.as_bytes(), 1) % (size - 1) + 1,
                    weight,
                    target_weight: 0.0,
                    next: 0,
                }
            })
            .collect();
        let mut table: Vec<Option<SocketAddr>> = vec![None; usize::try_from(size).unwrap_or(0)];
        let mut filled = 0_u64;
        let mut iteration = 1_u64;
        while filled < size {
            for entry in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                // A host of the largest weight takes a slot every turn; one of a third of it, every third turn.
                if (iteration as f64) * entry.weight < entry.target_weight {
                    continue;
                }
                entry.target_weight += max_weight;
                let mut slot = (entry.offset + entry.skip * entry.next) % size;
                while table.get(slot as usize).is_some_and(Option::is_some) {
                    entry.next += 1;
                    slot = (entry.offset + entry.skip * entry.next) % size;
                }
                if let Some(cell) = table.get_mut(slot as usize) {
                    *cell = Some(entry.address);
                }
                entry.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Table::Maglev(table.into_iter().flatten().collect())
    }

    pub fn pick(&self, hash: u64) -> Option<SocketAddr> {
        match self {
            Table::Ring(ring) => ring_lookup(ring, hash),
            Table::Maglev(table) => {
                let len = u64::try_from(table.len()).ok().filter(|l| *l > 0)?;
                table.get(usize::try_from(hash % len).ok()?).copied()
            }
        }
    }
}

/// Ketama's search (as Envoy ports it): the first point whose hash is at or above `hash`, else the first point.
fn ring_lookup(ring: &[(u64, SocketAddr)], hash: u64) -> Option<SocketAddr> {
    if ring.is_empty() {
        return None;
    }
    let len = ring.len() as i64;
    let (mut low, mut high) = (0_i64, len);
    let index = loop {
        let mid = (low + high) / 2;
        if mid == len {
            break 0;
        }
        let value = ring[mid as usize].0;
        let below = if mid == 0 {
            0
        } else {
            ring[mid as usize - 1].0
        };
        if hash <= value && hash > below {
            break mid;
        }
        if value < hash {
            low = mid + 1;
        } else {
            high = mid - 1;
        }
        if low > high {
            break 0;
        }
    };
    ring.get(index as usize).map(|(_, address)| *address)
}

/// Each host's share of the total weight, in the order given.
fn normalized(targets: &[Target]) -> Vec<(SocketAddr, f64)> {
    let sum: u64 = targets.iter().map(|t| u64::from(t.weight.max(1))).sum();
    targets
        .iter()
        .map(|t| (t.address, f64::from(t.weight.max(1)) / sum.max(1) as f64))
        .collect()
}

/// The hosts (address, weight) a table was built from.
type Hosts = Vec<(SocketAddr, u32)>;

/// The table of the last host list seen: a pick with the same hosts reuses it; another list builds anew.
#[derive(Default)]
pub struct Cached {
    last: Mutex<Option<(Hosts, Arc<Table>)>>,
}

impl Cached {
    pub fn get(&self, targets: &[Target], build: impl FnOnce() -> Table) -> Arc<Table> {
        let key = || {
            targets
                .iter()
                .map(|t| (t.address, t.weight))
                .collect::<Vec<_>>()
        };
        let Ok(mut last) = self.last.lock() else {
            return Arc::new(build());
        };
        if let Some((hosts, table)) = last.as_ref()
            && hosts.len() == targets.len()
            && hosts
                .iter()
                .zip(targets)
                .all(|((a, w), t)| *a == t.address && *w == t.weight)
        {
            return table.clone();
        }
        let table = Arc::new(build());
        *last = Some((key(), table.clone()));
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: u8) -> Vec<Target> {
        (1..=n)
            .map(|i| Target {
                address: SocketAddr::from(([127, 0, 0, 1], 8000 + u16::from(i))),
                weight: 1,
                hostname: None,
                transport: 0,
                priority: 0,
                healthy: true,
                health_check: None,
                locality: 0,
                locality_weight: 0,
            })
            .collect()
    }

    /// Keys that moved when `removed` left: (its keys, which all move; others' keys that moved too).
    fn moved(before: &Table, after: &Table, removed: SocketAddr) -> (usize, usize) {
        let (mut own, mut others) = (0, 0);
        for key in 0..2_000_u64 {
            let hash = xxh64(&key.to_le_bytes(), 0);
            let (a, b) = (before.pick(hash).unwrap(), after.pick(hash).unwrap());
            if a == removed {
                own += 1;
            } else if a != b {
                others += 1;
            }
        }
        (own, others)
    }

    #[test]
    fn ring_is_consistent_and_spreads_keys() {
        let all = targets(4);
        let ring = Table::ring(&all, 1024, 8 << 20);
        let Table::Ring(points) = &ring else { panic!() };
        assert_eq!(points.len(), 1024, "256 points per host");
        let mut counts = std::collections::HashMap::new();
        for key in 0..4_000_u64 {
            let host = ring.pick(xxh64(&key.to_le_bytes(), 0)).unwrap();
            assert_eq!(Some(host), ring.pick(xxh64(&key.to_le_bytes(), 0)));
            *counts.entry(host).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4);
        assert!(
            counts.values().all(|c| (600..1_400).contains(c)),
            "{counts:?}"
        );
        let fewer: Vec<Target> = all.iter().skip(1).cloned().collect();
        // The others' rings grow (each host keeps its points and gets more), so a few other keys move too.
        let (own, others) = moved(&ring, &Table::ring(&fewer, 1024, 8 << 20), all[0].address);
        assert!(own > 300 && others < own / 2, "{own} own, {others} others");
    }

    #[test]
    fn maglev_fills_its_table_evenly_and_moves_only_the_removed_hosts_keys_mostly() {
        let all = targets(3);
        let table = Table::maglev(&all, 65537);
        let Table::Maglev(slots) = &table else {
            panic!()
        };
        assert_eq!(slots.len(), 65537);
        for host in &all {
            let n = slots.iter().filter(|a| **a == host.address).count();
            assert!((21_800..21_900).contains(&n), "{n}");
        }
        // Maglev moves a few other keys too (its "minimal disruption"), far fewer than the removed host's.
        let fewer: Vec<Target> = all.iter().skip(1).cloned().collect();
        let after = Table::maglev(&fewer, 65537);
        let mut moved_other = 0;
        for key in 0..3_000_u64 {
            let hash = xxh64(&key.to_le_bytes(), 0);
            let (a, b) = (table.pick(hash).unwrap(), after.pick(hash).unwrap());
            if a != b && a != all[0].address {
                moved_other += 1;
            }
        }
        assert!(moved_other < 150, "{moved_other}");
    }

    #[test]
    fn ring_lookup_wraps_past_the_last_point() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        let ring = vec![(10, a), (20, b)];
        assert_eq!(ring_lookup(&ring, 5), Some(a));
        assert_eq!(ring_lookup(&ring, 10), Some(a));
        assert_eq!(ring_lookup(&ring, 11), Some(b));
        assert_eq!(ring_lookup(&ring, 21), Some(a));
    }
}
