//! Resource documents: a YAML or JSON file shaped like an xDS `DiscoveryResponse`, whose `resources` list holds
//! Envoy resources, each with its `"@type"` (the form Envoy reads from filesystem config sources too):
//!
//! ```yaml
//! resources:
//! - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
//!   name: backend
//!   ...
//! ```
//!
//! Every resource is checked and converted exactly as the proxy would when it arrives over xDS, so a document
//! that passes here is one an Outrigger client accepts. One exception, for proxyless gRPC clients: a Listener
//! with `api_listener` (and no address) is checked as they read it (`support/proxyless.rs`: its connection
//! manager with the proxy's own conversion); an Outrigger or Envoy proxy refuses such a listener, so serve it
//! only to the gRPC clients' node ids (their own sub-folder) when proxies share the folder.

use super::{Decoder, Resource};
use crate::diagnostic::{Diagnostics, Path};
use crate::model::cluster::ClusterEndpoints;
use crate::model::listener::ApiListener;
use crate::model::tls::Secret;
use crate::model::{Cluster, Listener, RouteConfig};
use crate::source::{self, Format};
use envoy_types::pb::envoy::config::listener::v3 as listener_pb;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use prost::Message;

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_CONFIGURATION: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const CLUSTER_LOAD_ASSIGNMENT: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The resource types a document may hold, by type URL.
pub const TYPES: [&str; 5] = [
    LISTENER,
    ROUTE_CONFIGURATION,
    CLUSTER,
    CLUSTER_LOAD_ASSIGNMENT,
    SECRET,
];

/// One checked resource, as it goes on the wire: its type URL, its name and the encoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedResource {
    pub type_url: String,
    pub name: String,
    pub value: Vec<u8>,
}

/// The resources of a document, with the warnings about what they carry that Outrigger ignores; or every
/// problem found, each with its path (`resources[2]` and then the resource's own `Cluster "backend".field`).
pub fn parse(
    bytes: &[u8],
    format: Format,
) -> Result<(Vec<TypedResource>, Diagnostics), Diagnostics> {
    let message = source::parse_dynamic(
        bytes,
        format,
        "envoy.service.discovery.v3.DiscoveryResponse",
    )?;
    let mut out = Diagnostics::default();
    let response: DiscoveryResponse = source::to_struct(&message).map_err(|e| {
        out.error(&Path::root(), e);
        out.clone()
    })?;
    let extra = [
        (!response.version_info.is_empty(), "version_info"),
        (!response.type_url.is_empty(), "type_url"),
        (!response.nonce.is_empty(), "nonce"),
        (response.canary, "canary"),
        (response.control_plane.is_some(), "control_plane"),
        (!response.resource_errors.is_empty(), "resource_errors"),
    ];
    for (set, field) in extra {
        if set {
            out.error(
                &Path::root().field(field),
                "a resource document holds only `resources`; the control plane sets the rest",
            );
        }
    }
    let decoder = Decoder::new().map_err(|e| {
        out.error(&Path::root(), e);
        out.clone()
    })?;
    let mut resources = Vec::new();
    for (i, any) in response.resources.iter().enumerate() {
        let at = Path::root().field("resources").index(i);
        let checked = match any.type_url.as_str() {
            LISTENER if for_proxyless_clients(&any.value) => {
                check::<ApiListener>(&decoder, &any.value, |l| l.name.clone())
            }
            LISTENER => check::<Listener>(&decoder, &any.value, |l| l.name.clone()),
            ROUTE_CONFIGURATION => check::<RouteConfig>(&decoder, &any.value, |r| r.name.clone()),
            CLUSTER => check::<Cluster>(&decoder, &any.value, |c| c.name.clone()),
            CLUSTER_LOAD_ASSIGNMENT => {
                check::<ClusterEndpoints>(&decoder, &any.value, |e| e.cluster_name.clone())
            }
            SECRET => check::<Secret>(&decoder, &any.value, |s| s.name.clone()),
            other => {
                out.error(
                    &at.field("@type"),
                    format!(
                        "{other:?} is not a resource the control plane serves; write one of {}",
                        TYPES.join(", ")
                    ),
                );
                continue;
            }
        };
        match checked {
            Ok((name, warnings)) if name.is_empty() => {
                out.extend_at(&at, warnings);
                out.error(&at, "the resource has no name; xDS finds resources by name");
            }
            Ok((name, warnings)) => {
                out.extend_at(&at, warnings);
                resources.push(TypedResource {
                    type_url: any.type_url.clone(),
                    name,
                    value: any.value.clone(),
                });
            }
            Err(problems) => out.extend_at(&at, problems),
        }
    }
    for (i, resource) in resources.iter().enumerate() {
        if resources[..i]
            .iter()
            .any(|r| r.type_url == resource.type_url && r.name == resource.name)
        {
            out.error(
                &Path::root().field("resources"),
                format!(
                    "two resources of type {} are named {:?}; names must be unique per type",
                    resource.type_url, resource.name
                ),
            );
        }
    }
    if out.has_errors() {
        return Err(out);
    }
    Ok((resources, out))
}

/// A listener with `api_listener` is served to proxyless gRPC clients, and checked as they read it.
fn for_proxyless_clients(listener: &[u8]) -> bool {
    listener_pb::Listener::decode(listener).is_ok_and(|l| l.api_listener.is_some())
}

fn check<R: Resource>(
    decoder: &Decoder,
    bytes: &[u8],
    name: impl Fn(&R) -> String,
) -> Result<(String, Diagnostics), Diagnostics> {
    let converted = decoder.convert::<R>(bytes)?;
    Ok((name(&converted.value), converted.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: backend
  type: EDS
  eds_cluster_config: {eds_config: {ads: {}}}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: backend
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 198.18.0.2, port_value: 80}}}}]}]
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: web
  virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]
"#;

    fn problems(yaml: &str) -> Vec<String> {
        parse(yaml.as_bytes(), Format::Yaml)
            .unwrap_err()
            .errors()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_resource_is_checked_and_kept_with_its_type_and_name() {
        let (resources, warnings) = parse(GOOD.as_bytes(), Format::Yaml).unwrap();
        assert_eq!(warnings.warnings().count(), 0, "{warnings:?}");
        let names: Vec<(&str, &str)> = resources
            .iter()
            .map(|r| (r.type_url.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (CLUSTER, "backend"),
                (CLUSTER_LOAD_ASSIGNMENT, "backend"),
                (ROUTE_CONFIGURATION, "web")
            ]
        );
    }

    #[test]
    fn a_bad_resource_is_named_by_its_place_and_its_field() {
        let bad = GOOD.replace(
            "type: EDS",
            "type: EDS\n  lb_policy: LOAD_BALANCING_POLICY_CONFIG",
        );
        let found = problems(&bad);
        assert!(
            found
                .iter()
                .any(|p| p.contains("resources[0] Cluster \"backend\".lb_policy")),
            "{found:?}"
        );
    }

    const API_LISTENER: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: echo-target
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: echo
      rds: {route_config_name: echo-routes, config_source: {ads: {}}}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;

    #[test]
    fn a_listener_for_proxyless_clients_is_served_and_checked_as_they_read_it() {
        let (resources, warnings) = parse(API_LISTENER.as_bytes(), Format::Yaml).unwrap();
        assert!(!warnings.has_errors());
        assert_eq!(resources[0].name, "echo-target");
        assert_eq!(resources[0].type_url, LISTENER);
        // Its connection manager goes through the proxy's conversion: RDS needs `ads`.
        let found =
            problems(&API_LISTENER.replace("config_source: {ads: {}}", "config_source: {}"));
        assert!(
            found.iter().any(|p| p.contains(
                "resources[0] Listener \"echo-target\".api_listener.api_listener.rds.config_source"
            )),
            "{found:?}"
        );
        // A proxy's fields have no meaning for gRPC clients.
        let found = problems(&API_LISTENER.replace(
            "  name: echo-target\n",
            "  name: echo-target\n  address: {socket_address: {address: 127.0.0.1, port_value: 80}}\n",
        ));
        assert!(
            found
                .iter()
                .any(|p| p.contains(".address") && p.contains("proxyless gRPC clients")),
            "{found:?}"
        );
        // gRPC clients run only the router.
        let found = problems(&API_LISTENER.replace(
            "      http_filters:\n",
            "      http_filters:\n      - name: limit\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: l}\n",
        ));
        assert!(
            found
                .iter()
                .any(|p| p.contains("http_filters[0]") && p.contains("only the router")),
            "{found:?}"
        );
        // Another payload than a connection manager.
        let tcp = "resources:\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: t\n  \
                   api_listener: {api_listener: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.\
                   tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}}\n";
        let found = problems(tcp);
        assert!(
            found
                .iter()
                .any(|p| p.contains("TcpProxy is not read by proxyless gRPC clients")),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_types_duplicates_and_extra_fields_are_refused() {
        let found = problems(&format!(
            "version_info: \"7\"\n{}\n- \"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n  name: web\n- \"@type\": type.googleapis.com/envoy.config.route.v3.VirtualHost\n  name: v\n  domains: [\"*\"]\n",
            GOOD.trim_end()
        ));
        let all = found.join("\n");
        assert!(
            all.contains("version_info: a resource document holds only"),
            "{all}"
        );
        assert!(all.contains("resources[4].@type"), "{all}");
        assert!(all.contains("two resources of type"), "{all}");
    }
}
