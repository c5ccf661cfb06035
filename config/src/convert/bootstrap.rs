//! The bootstrap: node, admin, static resources and the ADS source.

use super::{Out, cluster, ip_address, listener, struct_to_json};
use crate::diagnostic::Path;
use crate::model::cluster::Locality;
use crate::model::{Admin, AdsConfig, DynamicResources, LoadStatsConfig, Node, Overload, Snapshot};
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
        overload: overload(b, &top, out),
        load_stats: b
            .cluster_manager
            .as_ref()
            .and_then(|m| m.load_stats_config.as_ref())
            .and_then(|l| {
                let at = top.field("cluster_manager").field("load_stats_config");
                // Envoy 1.40 opens the same StreamLoadStats stream for GRPC and DELTA_GRPC; REST is refused
                // by the ApiConfigSource check (the table's `api_type` of `ApiConfigSource`).
                api_config_source(l, "load_stats_config", &at, out).map(|source| LoadStatsConfig {
                    cluster: source.cluster,
                })
            }),
    }
}

const GLOBAL_CONNECTIONS_MONITOR: &str =
    "envoy.resource_monitors.global_downstream_max_connections";
const DOWNSTREAM_CONNECTIONS: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
const GLOBAL_CONNECTIONS_RUNTIME_KEY: &str = "overload.global_downstream_max_connections";

/// The global connection limit, as Envoy 1.40 reads it: the resource monitor, else the deprecated runtime key
/// in a static runtime layer (the last layer that sets it wins, as later layers override earlier ones).
fn overload(b: &Bootstrap, top: &Path, out: &mut Out) -> Overload {
    let mut limit = None;
    if let Some(manager) = &b.overload_manager {
        let at = top.field("overload_manager").field("resource_monitors");
        for (i, monitor) in manager.resource_monitors.iter().enumerate() {
            let at = at.index(i);
            use envoy_types::pb::envoy::config::overload::v3::resource_monitor::ConfigType;
            let config = match &monitor.config_type {
                Some(ConfigType::TypedConfig(any)) if super::type_name(any) == DOWNSTREAM_CONNECTIONS => {
                    super::decode_any::<envoy_types::pb::envoy::extensions::resource_monitors::downstream_connections::v3::DownstreamConnectionsConfig>(
                        any,
                        &at.field("typed_config"),
                        out,
                    )
                }
                _ => {
                    out.error(
                        &at,
                        format!(
                            "resource monitor {:?} is not supported; the only one is {GLOBAL_CONNECTIONS_MONITOR} \
                             with a DownstreamConnectionsConfig",
                            monitor.name
                        ),
                    );
                    None
                }
            };
            if let Some(config) = config {
                if config.max_active_downstream_connections <= 0 {
                    out.error(
                        &at.field("typed_config")
                            .field("max_active_downstream_connections"),
                        "must be greater than 0 (as in Envoy)",
                    );
                } else {
                    limit = Some(config.max_active_downstream_connections as u64);
                }
            }
        }
    }
    let from_runtime = b
        .layered_runtime
        .iter()
        .flat_map(|r| r.layers.iter())
        .filter_map(|layer| match &layer.layer_specifier {
            Some(envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::LayerSpecifier::StaticLayer(s)) => {
                runtime_number(&struct_to_json(s), GLOBAL_CONNECTIONS_RUNTIME_KEY)
            }
            _ => None,
        })
        .next_back();
    if let Some(value) = from_runtime {
        if limit.is_some() {
            out.error(
                &top.field("layered_runtime"),
                format!(
                    "{GLOBAL_CONNECTIONS_RUNTIME_KEY} is set here and {GLOBAL_CONNECTIONS_MONITOR} in \
                     overload_manager; keep only the resource monitor (the runtime key is deprecated)"
                ),
            );
        } else {
            out.warning(
                &top.field("layered_runtime"),
                format!(
                    "{GLOBAL_CONNECTIONS_RUNTIME_KEY} is deprecated (as in Envoy 1.40, it still limits \
                     connections); use the {GLOBAL_CONNECTIONS_MONITOR} resource monitor"
                ),
            );
            limit = Some(value);
        }
    }
    Overload {
        global_downstream_max_connections: limit,
    }
}

/// A runtime key of a static layer, written nested (`overload: {global_downstream_max_connections: 5}`) or
/// flat (`overload.global_downstream_max_connections: 5`), as a whole number.
fn runtime_number(layer: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<u64> {
    if let Some(value) = layer.get(key) {
        return value.as_f64().map(|v| v as u64);
    }
    let (head, rest) = key.split_once('.')?;
    match layer.get(head)? {
        serde_json::Value::Object(inner) => runtime_number(inner, rest),
        _ => None,
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
                format!(
                    "api_type {} is not supported for {what}; use GRPC or DELTA_GRPC",
                    ApiType::try_from(a.api_type).map_or("?", |t| t.as_str_name())
                ),
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
            Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) => {
                // The table marks `GrpcService.timeout` supported for ext_authz; the xDS streams ignore it.
                if service.timeout.is_some() {
                    out.warning(
                        &at_services.index(0).field("timeout"),
                        format!("accepted, but a timeout on the {what} stream is not enforced yet"),
                    );
                }
                g.cluster_name.clone()
            }
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
