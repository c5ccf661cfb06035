//! Single resources as they arrive over xDS (listeners, clusters, route configurations): the same checks and
//! the same conversion as the bootstrap file, one resource at a time.

pub mod documents;

use crate::convert;
use crate::diagnostic::{Diagnostics, Path};
use crate::model::cluster::ClusterEndpoints;
use crate::model::listener::ApiListener;
use crate::model::tls::Secret;
use crate::model::{Cluster, Listener, RouteConfig};
use crate::support::Reader;
use crate::{descriptors, walk};
use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint_pb;
use envoy_types::pb::envoy::config::listener::v3 as listener_pb;
use envoy_types::pb::envoy::config::route::v3 as route_pb;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

/// A resource converted, with the warnings about what it carries that Outrigger ignores.
#[derive(Debug)]
pub struct Converted<T> {
    pub value: T,
    pub warnings: Diagnostics,
}

/// A model type that an xDS resource converts into.
pub trait Resource: Sized {
    type Proto: Message + Default;
    /// The protobuf message name (the xDS type URL without its `type.googleapis.com/` prefix).
    const PROTO_NAME: &'static str;
    /// Who reads it: decides which fields are accepted (see `support::Reader`).
    const READER: Reader = Reader::Proxy;
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self>;
}

impl Resource for Listener {
    type Proto = listener_pb::Listener;
    const PROTO_NAME: &'static str = "envoy.config.listener.v3.Listener";
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        convert::listener::listener(proto, at, out)
    }
}

/// A Listener served to proxyless gRPC clients: `api_listener` and no address. Only the control plane serves it;
/// the proxy refuses it as a [`Listener`].
impl Resource for ApiListener {
    type Proto = listener_pb::Listener;
    const PROTO_NAME: &'static str = "envoy.config.listener.v3.Listener";
    const READER: Reader = Reader::ProxylessClient;
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        convert::api_listener::api_listener(proto, at, out)
    }
}

impl Resource for Cluster {
    type Proto = cluster_pb::Cluster;
    const PROTO_NAME: &'static str = "envoy.config.cluster.v3.Cluster";
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        convert::cluster::cluster(proto, at, out)
    }
}

impl Resource for RouteConfig {
    type Proto = route_pb::RouteConfiguration;
    const PROTO_NAME: &'static str = "envoy.config.route.v3.RouteConfiguration";
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        // From RDS: `validate_clusters` defaults to false, as in Envoy.
        convert::route::route_config(proto, false, at, out)
    }
}

impl Resource for ClusterEndpoints {
    type Proto = endpoint_pb::ClusterLoadAssignment;
    const PROTO_NAME: &'static str = "envoy.config.endpoint.v3.ClusterLoadAssignment";
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        convert::cluster::eds_assignment(proto, at, out)
    }
}

impl Resource for Secret {
    type Proto = tls_pb::Secret;
    const PROTO_NAME: &'static str = "envoy.extensions.transport_sockets.tls.v3.Secret";
    fn convert(proto: &Self::Proto, at: &Path, out: &mut Diagnostics) -> Option<Self> {
        convert::tls::secret(proto, at, out)
    }
}

/// Checks and converts one resource. Paths in problems start at the resource (`Cluster "backend"`).
pub fn from_proto<R: Resource>(proto: &R::Proto) -> Result<Converted<R>, Diagnostics> {
    from_bytes::<R>(&proto.encode_to_vec())
}

/// The same from the bytes of an xDS `Any.value`. Decodes the core descriptor pool (several MB) for this one
/// resource: to convert many, use one [`Decoder`].
pub fn from_bytes<R: Resource>(bytes: &[u8]) -> Result<Converted<R>, Diagnostics> {
    match Decoder::new() {
        Ok(decoder) => decoder.convert::<R>(bytes),
        Err(e) => {
            let mut out = Diagnostics::default();
            out.error(&Path::root(), e);
            Err(out)
        }
    }
}

/// Envoy's descriptors decoded once, to check and convert every resource of an xDS response with them. It
/// holds the core of Envoy's API (several MB; `descriptors.rs`): keep it for one response, not for the life of
/// the process.
pub struct Decoder {
    pool: DescriptorPool,
}

impl Decoder {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            // An xDS payload is decoded from bytes: an `Any` inside stays bytes until the walk checks its type,
            // and the walk refuses every type outside the support table before it looks one up, so the core
            // pool (which holds every supported type) reads a resource exactly as the whole API would.
            pool: descriptors::core_pool()?,
        })
    }

    /// Checks and converts one resource from the bytes of an xDS `Any.value`. Paths in problems start at the
    /// resource (`Cluster "backend".lb_policy`).
    pub fn convert<R: Resource>(&self, bytes: &[u8]) -> Result<Converted<R>, Diagnostics> {
        let mut out = Diagnostics::default();
        let short_name = R::PROTO_NAME.rsplit('.').next().unwrap_or(R::PROTO_NAME);
        let descriptor = self
            .pool
            .get_message_by_name(R::PROTO_NAME)
            .ok_or_else(|| {
                out.error(
                    &Path::root(),
                    format!("built-in Envoy descriptors lack {}", R::PROTO_NAME),
                );
                out.clone()
            })?;
        let dynamic = DynamicMessage::decode(descriptor, bytes).map_err(|e| {
            out.error(
                &Path::from_label(short_name),
                format!("cannot decode the resource: {e}"),
            );
            out.clone()
        })?;
        let proto = R::Proto::decode(bytes).map_err(|e| {
            out.error(
                &Path::from_label(short_name),
                format!("cannot decode the resource: {e}"),
            );
            out.clone()
        })?;
        let name_field = if R::PROTO_NAME.ends_with("ClusterLoadAssignment") {
            "cluster_name"
        } else {
            "name"
        };
        let name = match dynamic.get_field_by_name(name_field).as_deref() {
            Some(prost_reflect::Value::String(name)) => name.clone(),
            _ => String::new(),
        };
        let at = Path::from_label(format!("{short_name} {name:?}"));
        walk::check_for(R::READER, &dynamic, &at, &mut out);
        if out.has_errors() {
            return Err(out);
        }
        match R::convert(&proto, &at, &mut out) {
            Some(value) if !out.has_errors() => Ok(Converted {
                value,
                warnings: out,
            }),
            _ => Err(out),
        }
    }
}

impl TryFrom<&cluster_pb::Cluster> for Cluster {
    type Error = Diagnostics;
    fn try_from(proto: &cluster_pb::Cluster) -> Result<Self, Diagnostics> {
        from_proto::<Cluster>(proto).map(|c| c.value)
    }
}

impl TryFrom<&listener_pb::Listener> for Listener {
    type Error = Diagnostics;
    fn try_from(proto: &listener_pb::Listener) -> Result<Self, Diagnostics> {
        from_proto::<Listener>(proto).map(|c| c.value)
    }
}

impl TryFrom<&route_pb::RouteConfiguration> for RouteConfig {
    type Error = Diagnostics;
    fn try_from(proto: &route_pb::RouteConfiguration) -> Result<Self, Diagnostics> {
        from_proto::<RouteConfig>(proto).map(|c| c.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, LbPolicy,
    };

    #[test]
    fn an_xds_cluster_converts_like_a_static_one() {
        let proto = cluster_pb::Cluster {
            name: "reviews".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            )),
            lb_policy: LbPolicy::ClusterProvided as i32,
            ..Default::default()
        };
        let cluster = Cluster::try_from(&proto).unwrap();
        assert_eq!(cluster.name, "reviews");
        assert_eq!(cluster.connect_timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn one_decoder_converts_many_resources() {
        let decoder = Decoder::new().unwrap();
        for name in ["a", "b"] {
            let proto = cluster_pb::Cluster {
                name: name.into(),
                cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                    DiscoveryType::OriginalDst as i32,
                )),
                lb_policy: LbPolicy::ClusterProvided as i32,
                ..Default::default()
            };
            let cluster = decoder
                .convert::<Cluster>(&proto.encode_to_vec())
                .unwrap()
                .value;
            assert_eq!(cluster.name, name);
        }
        let bad = cluster_pb::Cluster {
            name: "m".into(),
            lb_policy: LbPolicy::LoadBalancingPolicyConfig as i32,
            ..Default::default()
        };
        let problems = decoder
            .convert::<Cluster>(&bad.encode_to_vec())
            .unwrap_err();
        assert!(
            problems
                .errors()
                .any(|d| d.path.as_str() == "Cluster \"m\".lb_policy"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_proxy_refuses_an_api_listener_that_proxyless_clients_read() {
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
        use envoy_types::pb::google::protobuf::Any;
        let manager = hcm::HttpConnectionManager {
            stat_prefix: "echo".into(),
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
                hcm::Rds {
                    route_config_name: "echo-routes".into(),
                    config_source: Some(Default::default()),
                },
            )),
            ..Default::default()
        };
        let proto = listener_pb::Listener {
            name: "echo-target".into(),
            api_listener: Some(listener_pb::ApiListener {
                api_listener: Some(Any {
                    type_url: format!("type.googleapis.com/{}", manager_name()),
                    value: manager.encode_to_vec(),
                }),
            }),
            ..Default::default()
        };
        // Over xDS to the proxy: refused, naming the field and where it belongs.
        let problems = Listener::try_from(&proto).unwrap_err();
        let first = problems.errors().next().unwrap();
        assert_eq!(first.path.as_str(), "Listener \"echo-target\".api_listener");
        assert!(first.message.contains("Envoy Mobile"), "{first}");
        assert!(first.message.contains("outrigger control-plane"), "{first}");
        // For proxyless clients: the connection manager is converted as the proxy's would be (RDS needs `ads`).
        let problems = from_proto::<ApiListener>(&proto).unwrap_err();
        assert!(
            problems.errors().any(|d| d.path.as_str()
                == "Listener \"echo-target\".api_listener.api_listener.rds.config_source"),
            "{problems:?}"
        );
    }

    fn manager_name() -> &'static str {
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    }

    #[test]
    fn an_xds_resource_is_checked_with_the_same_rules() {
        let proto = cluster_pb::Cluster {
            name: String::new(),
            ..Default::default()
        };
        let problems = Cluster::try_from(&proto).unwrap_err();
        let first = problems.errors().next().unwrap();
        assert_eq!(first.path.as_str(), "Cluster \"\".name");
        let proto = cluster_pb::Cluster {
            name: "x".into(),
            lb_policy: LbPolicy::LoadBalancingPolicyConfig as i32,
            ..Default::default()
        };
        let problems = Cluster::try_from(&proto).unwrap_err();
        assert!(
            problems.errors().any(|d| d
                .message
                .contains("LOAD_BALANCING_POLICY_CONFIG is not supported")),
            "{problems:?}"
        );
    }
}
