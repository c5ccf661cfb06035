//! Request mirroring (`request_mirror_policies`) and locality weighted load balancing.
//!
//! `proofs.rs` says what an entry means. The differential tests run the same YAML in Envoy 1.40 with the same
//! requests; the loader tests prove the settings reach the model, the component tests what the values do.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.config.route.v3.RouteAction.request_mirror_policies",
        Tests(&[MIRROR_DIFF, MIRROR_BOUND]),
    ),
    (
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy.cluster",
        Tests(&[MIRROR_DIFF, MIRROR_LOADER]),
    ),
    (
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy.cluster_header",
        Tests(&[MIRROR_DIFF, MIRROR_LOADER]),
    ),
    // The differential test's 0 % route sets a runtime_key too (no runtime layers: its default value applies).
    (
        "envoy.config.route.v3.RouteAction.RequestMirrorPolicy.runtime_fraction",
        Tests(&[MIRROR_DIFF, MIRROR_LOADER]),
    ),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.locality_weighted_lb_config",
        Tests(&[
            LOCALITY_DIFF,
            LOCALITY_WEIGHTS,
            LOCALITY_UNWEIGHTED,
            LOCALITY_LOADER,
        ]),
    ),
    // The differential test's second cluster sets 200; the priority test shows the spill follows it.
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.policy",
        Tests(&[LOCALITY_DIFF]),
    ),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.overprovisioning_factor",
        Tests(&[LOCALITY_DIFF, PRIORITY_FACTOR]),
    ),
];
