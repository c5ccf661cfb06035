//! Load balancing over a cluster's endpoints: round robin (smooth, weighted), least request (power of two
//! choices), random (weighted), and the consistent hashes (ring hash, Maglev: `hash_balancer.rs`).

use super::Target;
use super::hash_balancer::{Cached, Table};
use outrigger_config::model::cluster::LbPolicy;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Balancer {
    policy: LbPolicy,
    /// Smooth weighted round robin state: the current weight of each endpoint.
    round_robin: Mutex<HashMap<SocketAddr, i64>>,
    /// Requests in flight per endpoint, for least request.
    active: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    next: AtomicUsize,
    /// RING_HASH and MAGLEV: the table of the hosts last balanced over.
    table: Cached,
}

impl Balancer {
    pub fn new(policy: LbPolicy) -> Self {
        Self {
            policy,
            round_robin: Mutex::default(),
            active: Arc::default(),
            next: AtomicUsize::new(0),
            table: Cached::default(),
        }
    }

    pub fn pick(&self, targets: &[Target]) -> Option<SocketAddr> {
        self.pick_hashed(targets, None)
    }

    /// `hash`: the request's (from the route's `hash_policy`), read by the consistent-hash policies; without one
    /// they draw a random hash, as Envoy does.
    pub fn pick_hashed(&self, targets: &[Target], hash: Option<u64>) -> Option<SocketAddr> {
        match targets {
            [] => None,
            [only] => Some(only.address),
            _ => Some(match self.policy {
                LbPolicy::RingHash {
                    min_ring_size,
                    max_ring_size,
                } => {
                    let table = self.table.get(targets, || {
                        Table::ring(targets, min_ring_size, max_ring_size)
                    });
                    return table.pick(hash.unwrap_or_else(|| fastrand::u64(..)));
                }
                LbPolicy::Maglev { table_size } => {
                    let table = self
                        .table
                        .get(targets, || Table::maglev(targets, table_size));
                    return table.pick(hash.unwrap_or_else(|| fastrand::u64(..)));
                }
                LbPolicy::LeastRequest { choice_count } => {
                    self.least_request(targets, choice_count.max(2))
                }
                LbPolicy::Random => weighted_random(targets),
                LbPolicy::RoundRobin | LbPolicy::ClusterProvided => self.round_robin(targets),
            }),
        }
    }

    /// Marks a request as started on `address`; the guard marks it done. Only least request reads the counts,
    /// so the other policies take no lock for them.
    pub fn start(&self, address: SocketAddr) -> Option<ActiveRequest> {
        if !matches!(self.policy, LbPolicy::LeastRequest { .. }) {
            return None;
        }
        if let Ok(mut active) = self.active.lock() {
            *active.entry(address).or_default() += 1;
        }
        Some(ActiveRequest {
            active: self.active.clone(),
            address,
        })
    }

    fn round_robin(&self, targets: &[Target]) -> SocketAddr {
        if targets.iter().all(|t| t.weight == targets[0].weight) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            return targets[i % targets.len()].address;
        }
        let Ok(mut current) = self.round_robin.lock() else {
            return targets[0].address;
        };
        current.retain(|address, _| targets.iter().any(|t| t.address == *address));
        let total: i64 = targets.iter().map(|t| i64::from(t.weight)).sum();
        let mut best = targets[0].address;
        let mut best_weight = i64::MIN;
        for target in targets {
            let weight = current.entry(target.address).or_insert(0);
            *weight += i64::from(target.weight);
            if *weight > best_weight {
                best_weight = *weight;
                best = target.address;
            }
        }
        if let Some(weight) = current.get_mut(&best) {
            *weight -= total;
        }
        best
    }

    fn least_request(&self, targets: &[Target], choices: u32) -> SocketAddr {
        let active = self.active.lock().ok();
        let load = |address: &SocketAddr| {
            active
                .as_ref()
                .and_then(|a| a.get(address).copied())
                .unwrap_or(0)
        };
        let mut best: Option<&Target> = None;
        for _ in 0..choices {
            let candidate = &targets[fastrand::usize(..targets.len())];
            // Weighted endpoints count their load relative to their weight.
            let score = |t: &Target| (load(&t.address) as f64 + 1.0) / f64::from(t.weight);
            if best.is_none_or(|b| score(candidate) < score(b)) {
                best = Some(candidate);
            }
        }
        best.map(|t| t.address).unwrap_or(targets[0].address)
    }
}

fn weighted_random(targets: &[Target]) -> SocketAddr {
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    let mut point = fastrand::u64(..total.max(1));
    for target in targets {
        let weight = u64::from(target.weight);
        if point < weight {
            return target.address;
        }
        point -= weight;
    }
    targets[0].address
}

pub struct ActiveRequest {
    active: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    address: SocketAddr,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        if let Ok(mut active) = self.active.lock()
            && let Some(count) = active.get_mut(&self.address)
        {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(weights: &[u32]) -> Vec<Target> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Target {
                address: format!("198.18.0.{}:80", i + 1).parse().unwrap(),
                weight: *w,
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

    fn counts(balancer: &Balancer, targets: &[Target], n: usize) -> Vec<usize> {
        let mut counts = vec![0; targets.len()];
        for _ in 0..n {
            let chosen = balancer.pick(targets).unwrap();
            counts[targets.iter().position(|t| t.address == chosen).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_follows_weights_exactly() {
        let t = targets(&[1, 1, 1]);
        assert_eq!(
            counts(&Balancer::new(LbPolicy::RoundRobin), &t, 300),
            vec![100, 100, 100]
        );
        let t = targets(&[3, 1]);
        assert_eq!(
            counts(&Balancer::new(LbPolicy::RoundRobin), &t, 400),
            vec![300, 100]
        );
    }

    #[test]
    fn random_follows_weights_roughly() {
        fastrand::seed(7);
        let t = targets(&[9, 1]);
        let c = counts(&Balancer::new(LbPolicy::Random), &t, 10_000);
        assert!((8_500..9_500).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        fastrand::seed(7);
        let t = targets(&[1, 1]);
        let balancer = Balancer::new(LbPolicy::LeastRequest { choice_count: 2 });
        let _busy: Vec<_> = (0..10).map(|_| balancer.start(t[0].address)).collect();
        let c = counts(&balancer, &t, 1_000);
        // With two choices, the busy endpoint wins only when both draws land on it (about a quarter).
        assert!(c[1] > 700, "{c:?}");
    }

    /// `least_request_lb_config.choice_count` from a cluster's configuration: with 30 draws the one idle endpoint
    /// of four is nearly always among them; with Envoy's default of 2 it would win less than half the picks.
    #[test]
    fn choice_count_from_the_config_sets_the_draws() {
        let yaml = r#"
static_resources:
  clusters:
  - name: c
    lb_policy: LEAST_REQUEST
    least_request_lb_config: {choice_count: 30}
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 198.18.0.1, port_value: 80}}}}]}]}
"#;
        let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
            .expect("loads");
        let policy = loaded.snapshot.clusters[0].lb_policy;
        fastrand::seed(7);
        let t = targets(&[1, 1, 1, 1]);
        let draws = |policy| {
            let balancer = Balancer::new(policy);
            let _busy: Vec<_> = [0, 1, 2]
                .iter()
                .flat_map(|&i| (0..5).map(move |_| i))
                .map(|i| balancer.start(t[i].address))
                .collect();
            counts(&balancer, &t, 1_000)[3]
        };
        // (3/4)^30 of the picks miss it: about none.
        assert!(draws(policy) > 990, "{policy:?}");
        assert!(draws(LbPolicy::LeastRequest { choice_count: 2 }) < 600);
    }
}
