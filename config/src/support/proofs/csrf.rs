//! `envoy.filters.http.csrf`: its policy in the chain and per route and virtual host.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.http.csrf.v3.CsrfPolicy.filter_enabled",
        Tests(&[CSRF_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.csrf.v3.CsrfPolicy.shadow_enabled",
        Tests(&[CSRF_DIFF]),
    ),
    (
        "envoy.extensions.filters.http.csrf.v3.CsrfPolicy.additional_origins",
        Tests(&[CSRF_DIFF, CSRF_ORIGINS]),
    ),
];
