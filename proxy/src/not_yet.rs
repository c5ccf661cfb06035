//! What the configuration may say that this data path does not do yet, beyond single fields.
//!
//! A field that is accepted but not proven to act (xDS in `dynamic_resources`, an HCM's `rds`, a cluster's
//! `eds_cluster_config`, and every other one) is marked `NotYet` in the support table
//! (`config/src/support/proofs.rs`), and the loader warns about it. That table is the one source: `outrigger
//! validate` and `outrigger run` print its warnings alike, so this module repeats none of them. It is where a
//! warning about a combination of fields, which no single field can carry, would go; there is none today.

use outrigger_config::Snapshot;

/// One warning per configured feature that is not enforced and that no field's own warning covers.
pub fn check(_snapshot: &Snapshot) -> Vec<String> {
    Vec::new()
}
