//! Which endpoints a pick may choose from: Envoy's priority levels and panic mode.
//!
//! Each priority's health is its share of healthy hosts (not marked unhealthy, not ejected) times the
//! overprovisioning factor (1.4 unless the endpoints' `policy.overprovisioning_factor` says otherwise), capped at
//! 100 %. Priority 0 takes as much of the load as its health allows, the
//! next priority the rest, and so on (normalised when the total is under 100 %). Within a priority, only healthy
//! hosts are used, unless fewer than `healthy_panic_threshold` percent are healthy: then that priority is in
//! panic and all of its hosts are used (a 0 threshold disables panic, so nothing healthy means no host at all).

use super::Target;
use std::borrow::Cow;

/// The outcome of choosing hosts for one pick.
pub struct Choice<'a> {
    pub hosts: Cow<'a, [Target]>,
    /// The chosen priority is in panic (counted as `lb_healthy_panic`).
    pub panic: bool,
}

/// `draw(n)` returns a uniform whole number in `[0, n)`; `overprovisioning` is the factor (1.4 for Envoy's 140).
pub fn choose<'a>(
    targets: &'a [Target],
    healthy: impl Fn(&Target) -> bool,
    panic_threshold: f64,
    overprovisioning: f64,
    draw: impl FnOnce(u32) -> u32,
) -> Choice<'a> {
    let single_priority = targets.iter().all(|t| t.priority == targets[0].priority);
    if single_priority && targets.iter().all(&healthy) {
        return Choice {
            hosts: Cow::Borrowed(targets),
            panic: false,
        };
    }
    let mut levels: Vec<u32> = targets.iter().map(|t| t.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    let counts: Vec<(usize, usize)> = levels
        .iter()
        .map(|p| {
            let at: Vec<&Target> = targets.iter().filter(|t| t.priority == *p).collect();
            (at.iter().filter(|t| healthy(t)).count(), at.len())
        })
        .collect();
    let in_panic = |(healthy, total): (usize, usize)| {
        panic_threshold > 0.0 && (healthy as f64) * 100.0 < panic_threshold * total as f64
    };
    let health: Vec<f64> = counts
        .iter()
        .map(|&(h, t)| (overprovisioning * 100.0 * h as f64 / t.max(1) as f64).min(100.0))
        .collect();
    let total_health: f64 = health.iter().sum::<f64>().min(100.0);
    let level_hosts = |index: usize, all: bool| -> Cow<'a, [Target]> {
        let priority = levels.get(index).copied().unwrap_or_default();
        Cow::Owned(
            targets
                .iter()
                .filter(|t| t.priority == priority && (all || healthy(t)))
                .cloned()
                .collect(),
        )
    };
    if total_health <= 0.0 {
        // Nothing healthy anywhere: with panic on, all load goes to priority 0 and all of its hosts.
        let panic = panic_threshold > 0.0;
        return Choice {
            hosts: if panic {
                level_hosts(0, true)
            } else {
                Cow::Owned(Vec::new())
            },
            panic,
        };
    }
    if counts.iter().all(|c| in_panic(*c)) {
        // Every priority in panic: the load follows host counts, over all hosts.
        return Choice {
            hosts: Cow::Borrowed(targets),
            panic: true,
        };
    }
    // Each priority's share of the load, in hundredths of a percent, by priority order.
    let mut left = 100.0;
    let loads: Vec<u32> = health
        .iter()
        .map(|h| {
            let share = (h * 100.0 / total_health).min(left);
            left -= share;
            (share * 100.0).round() as u32
        })
        .collect();
    let mut point = draw(loads.iter().sum::<u32>().max(1));
    let index = loads
        .iter()
        .position(|load| {
            let hit = point < *load;
            point = point.saturating_sub(*load);
            hit
        })
        .unwrap_or(0);
    let panic = counts.get(index).is_some_and(|c| in_panic(*c));
    Choice {
        hosts: level_hosts(index, panic),
        panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn target(n: u8, priority: u32) -> Target {
        Target {
            address: SocketAddr::from(([198, 18, 0, n], 80)),
            weight: 1,
            hostname: None,
            transport: 0,
            priority,
            healthy: true,
            health_check: None,
            locality: 0,
            locality_weight: 0,
        }
    }

    fn addresses(choice: &Choice) -> Vec<u8> {
        choice
            .hosts
            .iter()
            .map(|t| match t.address.ip() {
                std::net::IpAddr::V4(ip) => ip.octets()[3],
                std::net::IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn all_healthy_in_one_priority_borrows_everything() {
        let targets = vec![target(1, 0), target(2, 0)];
        let choice = choose(&targets, |_| true, 50.0, 1.4, |_| 0);
        assert!(matches!(choice.hosts, Cow::Borrowed(_)));
        assert!(!choice.panic);
    }

    #[test]
    fn unhealthy_hosts_are_skipped_until_the_panic_threshold() {
        let targets: Vec<Target> = (1..=4).map(|n| target(n, 0)).collect();
        // Half healthy: not below 50 %, so only the healthy ones.
        let choice = choose(&targets, |t| addresses_of(t) <= 2, 50.0, 1.4, |_| 0);
        assert_eq!(addresses(&choice), vec![1, 2]);
        assert!(!choice.panic);
        // One in four healthy: panic, all four.
        let choice = choose(&targets, |t| addresses_of(t) == 1, 50.0, 1.4, |_| 0);
        assert_eq!(addresses(&choice), vec![1, 2, 3, 4]);
        assert!(choice.panic);
        // Panic disabled: only the healthy one.
        let choice = choose(&targets, |t| addresses_of(t) == 1, 0.0, 1.4, |_| 0);
        assert_eq!(addresses(&choice), vec![1]);
    }

    fn addresses_of(t: &Target) -> u8 {
        match t.address.ip() {
            std::net::IpAddr::V4(ip) => ip.octets()[3],
            std::net::IpAddr::V6(_) => 0,
        }
    }

    #[test]
    fn nothing_healthy_and_no_panic_leaves_no_host() {
        let targets = vec![target(1, 0), target(2, 0)];
        assert!(
            choose(&targets, |_| false, 0.0, 1.4, |_| 0)
                .hosts
                .is_empty()
        );
        let panicked = choose(&targets, |_| false, 50.0, 1.4, |_| 0);
        assert_eq!(addresses(&panicked), vec![1, 2]);
    }

    #[test]
    fn a_lower_priority_gets_traffic_only_as_the_higher_one_loses_health() {
        let targets = vec![
            target(1, 0),
            target(2, 0),
            target(3, 0),
            target(4, 0),
            target(5, 1),
        ];
        // All of priority 0 healthy: all load there, whatever the draw.
        for draw in [0, 9_999] {
            let choice = choose(&targets, |_| true, 50.0, 1.4, |_| draw);
            assert_eq!(addresses(&choice), vec![1, 2, 3, 4], "draw {draw}");
        }
        // 3 of 4 healthy: 75 % * 1.4 = 105 %, still all load on priority 0.
        let choice = choose(&targets, |t| addresses_of(t) != 1, 50.0, 1.4, |_| 9_999);
        assert_eq!(addresses(&choice), vec![2, 3, 4]);
        // 2 of 4 healthy: 70 % on priority 0, 30 % spills to priority 1.
        let healthy = |t: &Target| addresses_of(t) != 1 && addresses_of(t) != 2;
        assert_eq!(
            addresses(&choose(&targets, healthy, 50.0, 1.4, |_| 6_999)),
            vec![3, 4]
        );
        assert_eq!(
            addresses(&choose(&targets, healthy, 50.0, 1.4, |_| 7_000)),
            vec![5]
        );
    }

    #[test]
    fn the_overprovisioning_factor_sets_when_load_spills() {
        let targets = vec![target(1, 0), target(2, 0), target(3, 1)];
        let one_healthy = |t: &Target| addresses_of(t) != 2;
        // 1 of 2 healthy: with 1.4, 70 % stays and 30 % spills; with 2.0, all stays on priority 0.
        assert_eq!(
            addresses(&choose(&targets, one_healthy, 50.0, 1.4, |_| 7_000)),
            vec![3]
        );
        assert_eq!(
            addresses(&choose(&targets, one_healthy, 50.0, 2.0, |_| 9_999)),
            vec![1]
        );
    }
}
