//! The consistent-hash balancers' settings and `Cluster.load_balancing_policy`, the typed form of `lb_policy`.

use super::{Out, decode_any, type_name};
use crate::diagnostic::Path;
use crate::model::cluster::LbPolicy;
use envoy_types::pb::envoy::config::cluster::v3 as pb;
use envoy_types::pb::envoy::extensions::load_balancing_policies as policies;

const ROUND_ROBIN: &str = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";
const LEAST_REQUEST: &str =
    "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";
const RANDOM: &str = "envoy.extensions.load_balancing_policies.random.v3.Random";
const RING_HASH: &str = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
const MAGLEV: &str = "envoy.extensions.load_balancing_policies.maglev.v3.Maglev";

/// Envoy's bounds: a ring of at most 8M entries (the default maximum), at least 1024 by default.
const RING_MAX: u64 = 8 * 1024 * 1024;

pub fn ring_hash(min: Option<u64>, max: Option<u64>, at: &Path, out: &mut Out) -> LbPolicy {
    let min_ring_size = min.unwrap_or(1024);
    let max_ring_size = max.unwrap_or(RING_MAX);
    if min_ring_size > RING_MAX || max_ring_size > RING_MAX {
        out.error(
            at,
            format!("ring sizes are at most {RING_MAX} (Envoy's limit)"),
        );
    }
    if min_ring_size > max_ring_size {
        out.error(
            &at.field("minimum_ring_size"),
            format!(
                "{min_ring_size} is above maximum_ring_size {max_ring_size} (Envoy refuses this)"
            ),
        );
    }
    LbPolicy::RingHash {
        min_ring_size: min_ring_size.max(1),
        max_ring_size: max_ring_size.max(1),
    }
}

pub fn maglev(size: Option<u64>, at: &Path, out: &mut Out) -> LbPolicy {
    let table_size = size.unwrap_or(65537);
    if !is_prime(table_size) || table_size > 5_000_011 {
        out.error(
            &at.field("table_size"),
            format!("{table_size}: the Maglev table size must be a prime of at most 5000011 (Envoy's rule)"),
        );
        return LbPolicy::Maglev { table_size: 65537 };
    }
    LbPolicy::Maglev { table_size }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// The first policy of the list (Envoy takes the first it knows; Outrigger knows these five, and refuses any
/// other first entry by its type rather than fall through to a later one Envoy would not reach).
pub fn typed_policy(
    policy: &pb::LoadBalancingPolicy,
    at: &Path,
    out: &mut Out,
) -> Option<LbPolicy> {
    let at = at.field("policies").index(0);
    let Some(config) = policy
        .policies
        .first()
        .and_then(|p| p.typed_extension_config.as_ref())
    else {
        out.error(
            &at,
            "needs `typed_extension_config` naming a load balancing policy",
        );
        return None;
    };
    let at = at.field("typed_extension_config").field("typed_config");
    let Some(any) = &config.typed_config else {
        out.error(&at, "missing");
        return None;
    };
    Some(match type_name(any) {
        ROUND_ROBIN => {
            decode_any::<policies::round_robin::v3::RoundRobin>(any, &at, out)?;
            LbPolicy::RoundRobin
        }
        LEAST_REQUEST => {
            let l = decode_any::<policies::least_request::v3::LeastRequest>(any, &at, out)?;
            LbPolicy::LeastRequest {
                choice_count: l.choice_count.map_or(2, |v| v.value),
            }
        }
        RANDOM => {
            decode_any::<policies::random::v3::Random>(any, &at, out)?;
            LbPolicy::Random
        }
        RING_HASH => {
            use policies::ring_hash::v3::ring_hash::HashFunction;
            let r = decode_any::<policies::ring_hash::v3::RingHash>(any, &at, out)?;
            if r.hash_function == HashFunction::MurmurHash2 as i32 {
                out.error(
                    &at.field("hash_function"),
                    "MURMUR_HASH_2 is not supported; use XX_HASH (the default)",
                );
            }
            ring_hash(
                r.minimum_ring_size.map(|v| v.value),
                r.maximum_ring_size.map(|v| v.value),
                &at,
                out,
            )
        }
        MAGLEV => {
            let m = decode_any::<policies::maglev::v3::Maglev>(any, &at, out)?;
            maglev(m.table_size.map(|v| v.value), &at, out)
        }
        other => {
            out.error(
                &at,
                format!(
                    "load balancing policy {other} is not supported; supported: RoundRobin, LeastRequest, Random, \
                     RingHash, Maglev"
                ),
            );
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(5_000_011) && is_prime(2) && is_prime(11));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(0) && !is_prime(9));
    }
}

#[cfg(test)]
mod typed_tests {
    use crate::model::cluster::LbPolicy;

    /// The typed policies and the consistent-hash settings become the same balancers as `lb_policy`.
    #[test]
    fn typed_policies_map_to_the_balancers() {
        let policy = |t: &str, body: &str| {
            format!(
                "  - name: c{t}\n    load_balancing_policy: {{policies: [{{typed_extension_config: {{name: x, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.{t}, {body}}}}}}}]}}\n"
            )
        };
        let yaml = format!(
            "static_resources:\n  clusters:\n{}{}{}{}{}  - name: legacy\n    lb_policy: RING_HASH\n    ring_hash_lb_config: {{minimum_ring_size: 10, maximum_ring_size: 20, hash_function: XX_HASH}}\n  - name: m\n    lb_policy: MAGLEV\n    maglev_lb_config: {{table_size: 5003}}\n",
            policy("round_robin.v3.RoundRobin", ""),
            policy("least_request.v3.LeastRequest", "choice_count: 5"),
            policy("random.v3.Random", ""),
            policy(
                "ring_hash.v3.RingHash",
                "minimum_ring_size: 100, maximum_ring_size: 200, hash_function: XX_HASH"
            ),
            policy("maglev.v3.Maglev", "table_size: 101"),
        );
        let loaded = crate::load_bytes(yaml.as_bytes(), crate::Format::Yaml).expect("loads");
        let policies: Vec<LbPolicy> = loaded
            .snapshot
            .clusters
            .iter()
            .map(|c| c.lb_policy)
            .collect();
        assert_eq!(
            policies,
            vec![
                LbPolicy::RoundRobin,
                LbPolicy::LeastRequest { choice_count: 5 },
                LbPolicy::Random,
                LbPolicy::RingHash {
                    min_ring_size: 100,
                    max_ring_size: 200
                },
                LbPolicy::Maglev { table_size: 101 },
                LbPolicy::RingHash {
                    min_ring_size: 10,
                    max_ring_size: 20
                },
                LbPolicy::Maglev { table_size: 5003 },
            ]
        );
        for refused in [
            "lb_policy: MAGLEV\n    maglev_lb_config: {table_size: 100}",
            "lb_policy: RING_HASH\n    ring_hash_lb_config: {hash_function: MURMUR_HASH_2}",
        ] {
            let yaml = format!("static_resources:\n  clusters:\n  - name: c\n    {refused}\n");
            assert!(
                crate::load_bytes(yaml.as_bytes(), crate::Format::Yaml).is_err(),
                "{refused}"
            );
        }
    }
}
