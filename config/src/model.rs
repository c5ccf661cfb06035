//! The configuration Outrigger runs on: Envoy's v3 concepts after validation, with every default applied.
//!
//! Each default sits next to its field with Envoy's value; where ours differs, the comment says why. The model is
//! immutable once built and serialisable, so `/config_dump` and `outrigger validate --dump` show exactly what
//! runs.

pub mod access_log;
pub mod cache;
pub mod cluster;
pub mod core;
pub mod cors;
pub mod csrf;
pub mod ext_authz;
pub mod health_check;
pub mod http;
pub mod listener;
pub mod rate_limit;
pub mod rbac;
pub mod rbac_matcher;
pub mod route;
pub mod tls;
pub mod tracing;
pub mod udp_proxy;

pub use cluster::Cluster;
pub use listener::Listener;
pub use route::RouteConfig;

use serde::Serialize;
use std::net::SocketAddr;

/// Everything a proxy process needs: the bootstrap's static resources and where dynamic ones come from.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub node: Node,
    pub admin: Option<Admin>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// `static_resources.secrets`: what a TLS context naming a secret without `sds_config` uses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<tls::Secret>,
    pub dynamic_resources: Option<DynamicResources>,
    /// The overload manager's limits (bootstrap only).
    #[serde(skip_serializing_if = "Overload::is_unset")]
    pub overload: Overload,
    /// `cluster_manager.load_stats_config`: where load reports go (LRS), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_stats: Option<LoadStatsConfig>,
}

/// `cluster_manager.load_stats_config`: the load reporting service, a gRPC `ApiConfigSource`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadStatsConfig {
    /// The static cluster that reaches the service (`grpc_services[0].envoy_grpc.cluster_name`).
    pub cluster: String,
}

/// What the overload manager limits. Envoy's default: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Overload {
    /// `envoy.resource_monitors.global_downstream_max_connections`'s `max_active_downstream_connections`, or
    /// the deprecated runtime key `overload.global_downstream_max_connections` of a static runtime layer: the
    /// connections open at once on every listener but the admin's and those with `ignore_global_conn_limit`.
    pub global_downstream_max_connections: Option<u64>,
}

impl Overload {
    fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

impl Snapshot {
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    pub fn secret(&self, name: &str) -> Option<&tls::Secret> {
        self.secrets.iter().find(|s| s.name == name)
    }
}

/// Who this proxy is, as told to the control plane.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Node {
    pub id: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<cluster::Locality>,
    /// What the proxy calls itself to a control plane; `outrigger` when the bootstrap does not say (Envoy
    /// says `envoy`).
    pub user_agent_name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Admin {
    pub address: SocketAddr,
}

/// `dynamic_resources`: an aggregated (ADS) gRPC source for listeners and clusters.
#[derive(Clone, Debug, Serialize)]
pub struct DynamicResources {
    pub ads: Option<AdsConfig>,
    pub lds: Option<core::ConfigSource>,
    pub cds: Option<core::ConfigSource>,
}

/// A gRPC xDS source: `ads_config`, or an SDS `api_config_source` (Istio's `sds-grpc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AdsConfig {
    /// Incremental (delta) xDS or state of the world.
    pub delta: bool,
    /// The static cluster that reaches the control plane (`grpc_services[0].envoy_grpc.cluster_name`).
    pub cluster: String,
    /// Envoy's default: false (send the node on every request).
    pub set_node_on_first_message_only: bool,
}
