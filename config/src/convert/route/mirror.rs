//! `RouteAction.request_mirror_policies`: where copies of a route's requests go.

use super::super::Out;
use crate::diagnostic::Path;
use crate::model::http::Percentage;
use crate::model::route::{MirrorPolicy, MirrorTarget};
use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;

pub fn mirror_policies(
    list: &[RequestMirrorPolicy],
    at: &Path,
    out: &mut Out,
) -> Vec<MirrorPolicy> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| mirror_policy(p, &at.index(i), out))
        .collect()
}

fn mirror_policy(p: &RequestMirrorPolicy, at: &Path, out: &mut Out) -> Option<MirrorPolicy> {
    // Envoy 1.40 refuses both and neither, in these words.
    let target = match (p.cluster.is_empty(), p.cluster_header.is_empty()) {
        (false, true) => MirrorTarget::Cluster(p.cluster.clone()),
        (true, false) => MirrorTarget::ClusterHeader(p.cluster_header.to_ascii_lowercase()),
        (false, false) => {
            out.error(
                at,
                "only one of `cluster` or `cluster_header` can be set in a request mirror policy; keep one",
            );
            return None;
        }
        (true, true) => {
            out.error(
                at,
                "a request mirror policy needs exactly one of `cluster` or `cluster_header`",
            );
            return None;
        }
    };
    // No runtime layers are read, so the default value is the fraction (see RuntimeFractionalPercent).
    let fraction = match p
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value.as_ref())
    {
        Some(f) => Percentage {
            numerator: f.numerator,
            denominator: match DenominatorType::try_from(f.denominator) {
                Ok(DenominatorType::TenThousand) => 10_000,
                Ok(DenominatorType::Million) => 1_000_000,
                _ => 100,
            },
        },
        // A runtime_fraction without default_value is 0 % in Envoy; no runtime_fraction at all is 100 %.
        None if p.runtime_fraction.is_some() => Percentage {
            numerator: 0,
            denominator: 100,
        },
        None => Percentage {
            numerator: 100,
            denominator: 100,
        },
    };
    Some(MirrorPolicy { target, fraction })
}
