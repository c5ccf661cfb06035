//! The bootstrap: node, admin, static resources and the ADS source.

use super::{Out, cluster, ip_address, listener, struct_to_json};
use crate::diagnostic::Path;
use crate::model::cluster::Locality;
use crate::model::{Admin, AdsConfig, DynamicResources, Node, Snapshot};
use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, api_config_source, grpc_service,
};

pub fn snapshot(b: &Bootstrap, out: &mut Out) -> Snapshot {
    let top = Path::root();
    let node = b.node.as_ref().map(|n| Node {
        id: n.id.clone(),
        cluster: n.cluster.clone(),
        metadata: n.metadata.as_ref().map(struct_to_json).unwrap_or_default(),
        locality: n.locality.as_ref().map(|l| Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            sub_zone: l.sub_zone.clone(),
        }),
        user_agent_name: if n.user_agent_name.is_empty() {
            "outrigger".to_string()
        } else {
            n.user_agent_name.clone()
        },
    });
    let admin = b.admin.as_ref().and_then(|a| {
        let at = top.field("admin");
        // An admin block without an address disables the admin server, as in Envoy.
        a.address.as_ref()?;
        ip_address(&a.address, &at.field("address"), out).map(|address| Admin { address })
    });
    let statics = b.static_resources.clone().unwrap_or_default();
    let at_static = top.field("static_resources");
    let listeners = statics
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| listener::listener(l, &at_static.field("listeners").index(i), out))
        .collect();
    let clusters = statics
        .clusters
        .iter()
        .enumerate()
        .filter_map(|(i, c)| cluster::cluster(c, &at_static.field("clusters").index(i), out))
        .collect();
    let secrets = statics
        .secrets
        .iter()
        .enumerate()
        .filter_map(|(i, s)| super::tls::secret(s, &at_static.field("secrets").index(i), out))
        .collect();
    let dynamic_resources = b
        .dynamic_resources
        .as_ref()
        .map(|d| dynamic_resources(d, &top.field("dynamic_resources"), out));
    Snapshot {
        node: node.unwrap_or_else(|| Node {
            user_agent_name: "outrigger".to_string(),
            ..Node::default()
        }),
        admin,
        listeners,
        clusters,
        secrets,
        dynamic_resources,
    }
}

fn dynamic_resources(
    d: &bootstrap::DynamicResources,
    at: &Path,
    out: &mut Out,
) -> DynamicResources {
    let lds = d
        .lds_config
        .as_ref()
        .map(|_| super::config_source(&d.lds_config, &at.field("lds_config"), out));
    let cds = d
        .cds_config
        .as_ref()
        .map(|_| super::config_source(&d.cds_config, &at.field("cds_config"), out));
    DynamicResources {
        ads: d
            .ads_config
            .as_ref()
            .and_then(|a| api_config_source(a, "ADS", &at.field("ads_config"), out)),
        lds: lds.flatten(),
        cds: cds.flatten(),
    }
}

/// A gRPC `ApiConfigSource` (`ads_config`, or an SDS `api_config_source`): `what` says which in messages.
pub(crate) fn api_config_source(
    a: &ApiConfigSource,
    what: &str,
    at: &Path,
    out: &mut Out,
) -> Option<AdsConfig> {
    use api_config_source::ApiType;
    let delta = match ApiType::try_from(a.api_type) {
        Ok(ApiType::Grpc) => false,
        Ok(ApiType::DeltaGrpc) => true,
        _ => {
            out.error(
                &at.field("api_type"),
                format!("{what} supports GRPC and DELTA_GRPC"),
            );
            return None;
        }
    };
    // Absent (AUTO) means V3 in Envoy 1.40; only V2 is refused.
    if a.transport_api_version == ApiVersion::V2 as i32 {
        out.error(
            &at.field("transport_api_version"),
            "the v2 xDS transport has been removed from Envoy; write `transport_api_version: V3`",
        );
    }
    let at_services = at.field("grpc_services");
    let cluster = match a.grpc_services.as_slice() {
        [service] => match &service.target_specifier {
            Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) => g.cluster_name.clone(),
            _ => {
                out.error(
                    &at_services.index(0),
                    "only `envoy_grpc: {cluster_name: ...}` is supported",
                );
                return None;
            }
        },
        [] => {
            out.error(
                &at_services,
                format!(
                    "{what} needs one gRPC service: `grpc_services: [{{envoy_grpc: {{cluster_name: ...}}}}]`"
                ),
            );
            return None;
        }
        _ => {
            out.error(
                &at_services,
                format!("{what} takes exactly one gRPC service"),
            );
            return None;
        }
    };
    Some(AdsConfig {
        delta,
        cluster,
        set_node_on_first_message_only: a.set_node_on_first_message_only,
    })
}
