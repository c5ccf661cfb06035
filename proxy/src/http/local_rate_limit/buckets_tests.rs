use super::*;
use outrigger_config::model::core::Fraction;
use outrigger_config::model::rate_limit::LocalDescriptor;
use std::time::Duration;

fn per_minute(max_tokens: u32) -> BucketConfig {
    BucketConfig {
        max_tokens,
        tokens_per_fill: 1,
        fill_interval: Duration::from_secs(60),
    }
}

fn entries(pairs: &[(&str, &str)]) -> Vec<DescriptorEntry> {
    pairs
        .iter()
        .map(|(k, v)| DescriptorEntry {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn config(default: Option<u32>, descriptors: &[(&[(&str, &str)], BucketConfig)]) -> LocalRateLimit {
    LocalRateLimit {
        stat_prefix: "t".into(),
        token_bucket: default.map(per_minute),
        filter_enabled: Fraction(1.0),
        filter_enforced: Fraction(1.0),
        status: 429,
        response_headers_to_add: Vec::new(),
        local_rate_limit_per_downstream_connection: false,
        x_ratelimit_headers: true,
        descriptors: descriptors
            .iter()
            .map(|(e, b)| LocalDescriptor {
                entries: entries(e),
                token_bucket: *b,
            })
            .collect(),
        stage: 0,
        vh_rate_limits: Default::default(),
        always_consume_default_token_bucket: true,
        max_dynamic_descriptors: 20,
        rate_limits: Vec::new(),
    }
}

/// Which of `requests` (each a list of descriptors) are allowed, in order, at one instant.
fn allowed(buckets: &Buckets, requests: &[&[&[(&str, &str)]]], now: Instant) -> Vec<bool> {
    requests
        .iter()
        .map(|r| {
            let descriptors: Vec<Descriptor> = r.iter().map(|d| entries(d)).collect();
            buckets.decide(&descriptors, now).allowed
        })
        .collect()
}

const GK: &[(&str, &str)] = &[("generic_key", "gk")];
const OTHER: &[(&str, &str)] = &[("generic_key", "other")];

#[test]
fn a_matching_descriptor_has_its_own_bucket_and_charges_the_default_too() {
    let now = Instant::now();
    let b = Buckets::new(&config(Some(3), &[(GK, per_minute(1))]), now);
    // gk: its own bucket of 1 (and a default token); refused by its bucket, the default keeps its tokens.
    assert_eq!(allowed(&b, &[&[GK], &[GK]], now), [true, false]);
    assert_eq!(
        allowed(&b, &[&[OTHER], &[OTHER], &[OTHER]], now),
        [true, true, false]
    );
}

#[test]
fn without_always_consume_a_matched_request_leaves_the_default_alone() {
    let now = Instant::now();
    let mut c = config(Some(2), &[(GK, per_minute(3))]);
    c.always_consume_default_token_bucket = false;
    let b = Buckets::new(&c, now);
    assert_eq!(
        allowed(&b, &[&[GK], &[GK], &[GK], &[GK]], now),
        [true, true, true, false]
    );
    assert_eq!(allowed(&b, &[&[], &[], &[]], now), [true, true, false]);
}

#[test]
fn a_descriptor_that_passes_keeps_its_loss_when_the_default_refuses() {
    let now = Instant::now();
    let b = Buckets::new(&config(Some(1), &[(GK, per_minute(2))]), now);
    assert_eq!(
        allowed(&b, &[&[GK], &[GK], &[GK]], now),
        [true, false, false]
    );
    // The third was refused by gk's bucket (emptied by the second, which the default refused).
    let last = b.decide(&[entries(GK)], now);
    assert_eq!(last.decided.map(|d| d.max_tokens), Some(2));
}

#[test]
fn no_default_bucket_lets_unmatched_requests_through_without_headers() {
    let now = Instant::now();
    let b = Buckets::new(&config(None, &[(GK, per_minute(1))]), now);
    let outcome = b.decide(&[entries(OTHER)], now);
    assert!(outcome.allowed && outcome.decided.is_none());
    assert_eq!(allowed(&b, &[&[GK], &[GK]], now), [true, false]);
}

#[test]
fn the_headers_come_from_the_first_matched_bucket_when_allowed() {
    let now = Instant::now();
    let b = Buckets::new(&config(Some(5), &[(GK, per_minute(2))]), now);
    let d = b.decide(&[entries(GK)], now).decided.unwrap();
    assert_eq!((d.max_tokens, d.taken.remaining), (2, 1));
    let d = b.decide(&[entries(OTHER)], now).decided.unwrap();
    assert_eq!((d.max_tokens, d.taken.remaining), (5, 3));
}

#[test]
fn the_slowest_filling_bucket_is_tried_first() {
    let now = Instant::now();
    let fast = BucketConfig {
        max_tokens: 2,
        tokens_per_fill: 10,
        fill_interval: Duration::from_secs(1),
    };
    let b = Buckets::new(&config(None, &[(GK, fast), (OTHER, per_minute(1))]), now);
    // Both match, fast one listed first: the slow one is still tried first. On the second request it refuses
    // before the fast one is charged, so the fast one has one token left for the third.
    let seen = allowed(&b, &[&[GK, OTHER], &[GK, OTHER], &[GK], &[GK]], now);
    assert_eq!(seen, [true, false, true, false]);
}

#[test]
fn a_wildcard_keeps_a_bucket_per_value_least_recently_used_out() {
    let now = Instant::now();
    let mut c = config(None, &[(&[("user", "")], per_minute(1))]);
    c.max_dynamic_descriptors = 2;
    let b = Buckets::new(&c, now);
    let user = |u: &'static str| -> Vec<Descriptor> { vec![entries(&[("user", u)])] };
    let seq = ["u1", "u1", "u2", "u1", "u3", "u2", "u1", "u1"];
    let seen: Vec<bool> = seq
        .iter()
        .map(|u| b.decide(&user(u), now).allowed)
        .collect();
    // As Envoy 1.40 was seen doing: u3 pushes out u2, u2 then pushes out u1.
    assert_eq!(seen, [true, false, true, false, true, true, true, false]);
}

#[test]
fn an_exact_descriptor_wins_over_a_wildcard() {
    let now = Instant::now();
    let b = Buckets::new(
        &config(
            None,
            &[
                (&[("user", "")], per_minute(1)),
                (&[("user", "alice")], per_minute(2)),
            ],
        ),
        now,
    );
    let alice = [entries(&[("user", "alice")])];
    assert!(b.decide(&alice, now).allowed);
    assert!(b.decide(&alice, now).allowed);
    assert!(!b.decide(&alice, now).allowed);
}

#[test]
fn fitting_needs_the_same_keys_in_order() {
    let configured = entries(&[("a", ""), ("b", "2")]);
    assert!(fits(&configured, &entries(&[("a", "x"), ("b", "2")])));
    assert!(!fits(&configured, &entries(&[("a", "x"), ("b", "3")])));
    assert!(!fits(&configured, &entries(&[("b", "2"), ("a", "x")])));
    assert!(!fits(&configured, &entries(&[("a", "x")])));
}
