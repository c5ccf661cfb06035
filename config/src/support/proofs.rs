//! Why each Supported field may be Supported: the tests that prove the data path acts on it (or, for a field that
//! only shapes configuration, that the loader checks it), or what is still missing.
//!
//! The table is here, one section per area in `proofs/` (in the order of `support.rs`), and the tests it cites
//! are named in `proofs/cited.rs`. "Never silently different from Envoy" is kept by construction: a unit test
//! (`proofs/tests.rs`) fails when a Supported field has no entry, when an entry names a field that is not
//! Supported, or when a cited test does not exist. There is no third way: a field the data path acts on comes
//! with its proof, and one it does not act on yet is `NotYet`, which makes the loader warn whenever it is set
//! (so `outrigger run` and `validate` say the same thing).
//!
//! What counts as a proof. The cited test sets the field (in a configuration it loads, or as the model value the
//! field becomes) to something other than Envoy's default, and its assertions would fail if the field were
//! ignored. A field whose correct effect is no change (a `runtime_key` without runtime layers, a 0s merge window)
//! is proven by a test that sets it and behaves as Envoy does. Tests of one component (the breaker, the outlier detector, a balancer) prove the leaves they set;
//! the field that switches the feature on for a cluster or route needs a test through the configuration, since
//! that is where the wiring is. A `NotYet` field's warning stands for everything below it.

/// How a Supported field is known to behave as in Envoy.
pub enum Proof {
    /// Tests that exercise it, each written `path/from/the/repository/root.rs::test_fn`.
    Tests(
        #[cfg_attr(
            not(test),
            expect(
                dead_code,
                reason = "only the unit test that finds each cited test reads them"
            )
        )]
        &'static [&'static str],
    ),
    /// Accepted, but not acted on yet (xDS, RDS, EDS, and a few settings listed here): the loader warns whenever
    /// it is set. The text completes "accepted, but ... is not enforced yet".
    NotYet(&'static str),
}

/// What is missing for `message.field`, when its entry is `NotYet`.
pub fn not_yet(message: &str, field: &str) -> Option<&'static str> {
    entries().find_map(|(key, proof)| match proof {
        Proof::NotYet(what) if names(key, message, field) => Some(*what),
        _ => None,
    })
}

/// True when `key` is `message.field`, without building that string for every field of every config.
fn names(key: &str, message: &str, field: &str) -> bool {
    key.strip_prefix(message)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == field)
}

mod access_log;
mod bootstrap;
mod cache;
mod cited;
mod cluster;
mod clusters_extra;
mod cors;
mod csrf;
mod http;
mod listener;
mod mirror_locality;
mod proxyless;
mod route;
mod security;
mod tracing;
mod udp_proxy;

/// The table: one section per area of Envoy's API.
const SECTIONS: &[&[(&str, Proof)]] = &[
    bootstrap::PROOFS,
    listener::PROOFS,
    http::PROOFS,
    cors::PROOFS,
    csrf::PROOFS,
    cache::PROOFS,
    route::PROOFS,
    cluster::PROOFS,
    clusters_extra::PROOFS,
    mirror_locality::PROOFS,
    security::PROOFS,
    proxyless::PROOFS,
    access_log::PROOFS,
    tracing::PROOFS,
    udp_proxy::PROOFS,
];

/// Every entry: `("envoy.package.Message.field", proof)`.
pub fn entries() -> impl Iterator<Item = &'static (&'static str, Proof)> {
    SECTIONS.iter().flat_map(|section| section.iter())
}

#[cfg(test)]
mod tests;
