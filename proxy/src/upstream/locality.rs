//! Locality weighted load balancing (`common_lb_config.locality_weighted_lb_config`): within the chosen priority,
//! a locality is drawn first, then the cluster's `lb_policy` picks the endpoint within it.
//!
//! A locality's effective weight is its `load_balancing_weight` times its availability: its share of healthy
//! hosts times the overprovisioning factor (1.4 by default), capped at 1 (Envoy's `effectiveLocalityWeight`). So a locality
//! keeps its full weight until fewer than 1/1.4 (about 71 %) of its hosts are healthy. A locality without a
//! weight gets none. When no locality has any weight left, the pick falls back to every healthy host of the
//! priority, as Envoy's does. Envoy walks the weights with a deterministic weighted round robin (an EDF
//! schedule); this draws at random by the same weights, so the shares are the same over many requests.

use super::Target;
use std::borrow::Cow;

/// Narrows `healthy` (the hosts the priority choice left, all of one priority and not in panic) to one locality.
/// `all` is every host of the cluster; `overprovisioning` the factor (1.4 for Envoy's 140); `draw(total)` returns
/// a uniform number in `[0, total)`.
pub fn choose<'a>(
    all: &[Target],
    healthy: Cow<'a, [Target]>,
    overprovisioning: f64,
    draw: impl FnOnce(f64) -> f64,
) -> Cow<'a, [Target]> {
    let Some(priority) = healthy.first().map(|t| t.priority) else {
        return healthy;
    };
    // Localities of the priority in configuration order, with their weight, host count and healthy count.
    let mut localities: Vec<(u32, u32, usize, usize)> = Vec::new();
    for target in all.iter().filter(|t| t.priority == priority) {
        match localities.iter_mut().find(|l| l.0 == target.locality) {
            Some(entry) => entry.2 += 1,
            None => localities.push((target.locality, target.locality_weight, 1, 0)),
        }
    }
    for target in healthy.iter() {
        if let Some(entry) = localities.iter_mut().find(|l| l.0 == target.locality) {
            entry.3 += 1;
        }
    }
    let weights: Vec<(u32, f64)> = localities
        .iter()
        .map(|&(locality, weight, hosts, healthy)| {
            let availability = (overprovisioning * healthy as f64 / hosts.max(1) as f64).min(1.0);
            (locality, f64::from(weight) * availability)
        })
        .collect();
    let total: f64 = weights.iter().map(|w| w.1).sum();
    if total <= 0.0 {
        return healthy;
    }
    let mut point = draw(total);
    let chosen = weights
        .iter()
        .find(|(_, weight)| {
            let hit = *weight > 0.0 && point < *weight;
            point -= weight;
            hit
        })
        .or_else(|| weights.iter().rev().find(|w| w.1 > 0.0))
        .map(|w| w.0);
    match chosen {
        Some(locality) => Cow::Owned(
            healthy
                .iter()
                .filter(|t| t.locality == locality)
                .cloned()
                .collect(),
        ),
        None => healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: u8, locality: u32, weight: u32) -> Target {
        Target {
            address: std::net::SocketAddr::from(([198, 18, 0, n], 80)),
            weight: 1,
            hostname: None,
            transport: 0,
            priority: 0,
            healthy: true,
            health_check: None,
            locality,
            locality_weight: weight,
        }
    }

    fn share_of_first(all: &[Target], healthy: &[Target]) -> f64 {
        // Walk the draw over its whole range in even steps: the share each locality gets, exactly.
        let steps = 10_000;
        let mut first = 0;
        for i in 0..steps {
            let picked = choose(all, Cow::Borrowed(healthy), 1.4, |total| {
                total * f64::from(i) / f64::from(steps)
            });
            if picked.iter().all(|t| t.locality == 0) {
                first += 1;
            }
        }
        f64::from(first) / f64::from(steps)
    }

    #[test]
    fn weights_scaled_by_health_with_overprovisioning() {
        // Locality 0: weight 1, two hosts. Locality 1: weight 3, four hosts.
        let all = vec![
            target(1, 0, 1),
            target(2, 0, 1),
            target(3, 1, 3),
            target(4, 1, 3),
            target(5, 1, 3),
            target(6, 1, 3),
        ];
        // All healthy: 1:3.
        assert!((share_of_first(&all, &all) - 0.25).abs() < 0.001);
        // 3 of 4 healthy in locality 1: 75 % * 1.4 > 1, still the full weight.
        let healthy: Vec<Target> = all[..5].to_vec();
        assert!((share_of_first(&all, &healthy) - 0.25).abs() < 0.001);
        // 2 of 4 healthy: 3 * 0.7 = 2.1 against 1.
        let healthy: Vec<Target> = all[..4].to_vec();
        assert!((share_of_first(&all, &healthy) - 1.0 / 3.1).abs() < 0.001);
        // Only the healthy hosts of the drawn locality are returned.
        let picked = choose(&all, Cow::Borrowed(&healthy), 1.4, |total| total - 0.0001);
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|t| t.locality == 1));
    }

    #[test]
    fn a_locality_without_weight_gets_nothing_unless_none_has_any() {
        let all = vec![target(1, 0, 0), target(2, 1, 2)];
        assert_eq!(share_of_first(&all, &all), 0.0);
        // No weight anywhere: every healthy host, as without locality weighting.
        let all = vec![target(1, 0, 0), target(2, 1, 0)];
        assert_eq!(choose(&all, Cow::Borrowed(&all), 1.4, |_| 0.0).len(), 2);
    }
}
