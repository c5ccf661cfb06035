//! What a client asks for: the [`Options`] of the ADS stream or of one SDS gRPC source's stream, read from the
//! bootstrap, and the SDS sources and secret names the static and dynamic resources name.

use super::{DEFAULT_INITIAL_FETCH_TIMEOUT, Resources, subscriptions};
use outrigger_config::model::core::ConfigSource;
use outrigger_config::model::{AdsConfig, Node, Snapshot};
use std::collections::BTreeSet;
use std::time::Duration;

/// Which stream a client opens: the aggregated one (every type), or a SecretDiscoveryService stream to one
/// SDS gRPC source (secrets only), as Envoy opens one gRPC mux per distinct config source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    Aggregated,
    Secrets(AdsConfig),
}

/// Who we are and what to ask for.
#[derive(Clone, Debug)]
pub struct Options {
    pub node: Node,
    /// The aggregated stream, or an SDS stream.
    pub api: Api,
    /// `DELTA_GRPC` rather than `GRPC`.
    pub delta: bool,
    /// Envoy's default: false (the node goes with every request).
    pub set_node_on_first_message_only: bool,
    /// `lds_config: {ads: {}}`: listeners by wildcard.
    pub listeners: bool,
    /// `cds_config: {ads: {}}`: clusters by wildcard.
    pub clusters: bool,
    /// Route configurations the static listeners name (`rds` in their connection managers).
    pub static_route_names: Vec<String>,
    /// EDS service names of the static clusters.
    pub static_endpoint_names: Vec<String>,
    /// Secrets the static listeners and clusters take from SDS over ADS.
    pub static_secret_names: Vec<String>,
    /// Envoy's default: 15s. Zero waits for ever, as in Envoy.
    pub initial_fetch_timeout: Duration,
    /// An SDS stream's secrets that the resources of the ADS stream name (dynamic listeners and clusters);
    /// the stream follows each change.
    pub extra_secret_names: Option<tokio::sync::watch::Receiver<BTreeSet<String>>>,
}

impl Options {
    /// The options a bootstrap asks for, or `None` when it has no `ads_config`. The initial fetch timeout is
    /// the longest of `lds_config`'s and `cds_config`'s (each 15 s unless set), or none if either is `0s`.
    pub fn from_snapshot(snapshot: &Snapshot) -> Option<Options> {
        let dynamic = snapshot.dynamic_resources.as_ref()?;
        let ads = dynamic.ads.as_ref()?;
        // One timeout for both: the longest, or none (zero, wait for ever) when either has none.
        let timeouts: Vec<Duration> = [&dynamic.lds, &dynamic.cds]
            .into_iter()
            .flatten()
            .map(
                |ConfigSource::Ads {
                     initial_fetch_timeout,
                 }| { initial_fetch_timeout.unwrap_or(Duration::ZERO) },
            )
            .collect();
        let initial_fetch_timeout = longest_initial_fetch_timeout(timeouts);
        Some(Options {
            node: snapshot.node.clone(),
            api: Api::Aggregated,
            delta: ads.delta,
            set_node_on_first_message_only: ads.set_node_on_first_message_only,
            listeners: dynamic.lds.is_some(),
            clusters: dynamic.cds.is_some(),
            static_route_names: snapshot
                .listeners
                .iter()
                .flat_map(subscriptions::listener_routes)
                .collect(),
            static_endpoint_names: snapshot
                .clusters
                .iter()
                .filter_map(subscriptions::cluster_service)
                .collect(),
            static_secret_names: static_secrets(snapshot, &Api::Aggregated),
            initial_fetch_timeout,
            extra_secret_names: None,
        })
    }

    /// The options of the SDS stream to `source`: the secrets the static listeners and clusters take from it,
    /// and those `extra` names (the dynamic ones). The initial fetch timeout is the longest of the static
    /// references' (none when one is `0s`).
    pub fn for_secrets(
        snapshot: &Snapshot,
        source: &AdsConfig,
        extra: tokio::sync::watch::Receiver<BTreeSet<String>>,
    ) -> Options {
        use outrigger_config::model::tls::SecretSource;
        let api = Api::Secrets(source.clone());
        let timeouts: Vec<Duration> = tls_contexts(snapshot)
            .flat_map(|common| common.secrets())
            .filter_map(|r| match &r.source {
                SecretSource::Grpc {
                    source: s,
                    initial_fetch_timeout,
                } if s == source => Some(initial_fetch_timeout.unwrap_or(Duration::ZERO)),
                _ => None,
            })
            .collect();
        let initial_fetch_timeout = longest_initial_fetch_timeout(timeouts);
        Options {
            node: snapshot.node.clone(),
            delta: source.delta,
            set_node_on_first_message_only: source.set_node_on_first_message_only,
            listeners: false,
            clusters: false,
            static_route_names: Vec::new(),
            static_endpoint_names: Vec::new(),
            static_secret_names: static_secrets(snapshot, &api),
            api,
            initial_fetch_timeout,
            extra_secret_names: Some(extra),
        }
    }
}

/// The secrets the static listeners and clusters take from the stream `api`.
fn static_secrets(snapshot: &Snapshot, api: &Api) -> Vec<String> {
    snapshot
        .listeners
        .iter()
        .flat_map(|l| subscriptions::listener_secrets(l, api))
        .chain(
            snapshot
                .clusters
                .iter()
                .flat_map(|c| subscriptions::cluster_secrets(c, api)),
        )
        .collect()
}

/// Every TLS context of the static listeners and clusters.
fn tls_contexts(
    snapshot: &Snapshot,
) -> impl Iterator<Item = &outrigger_config::model::tls::CommonTls> {
    let listeners = snapshot.listeners.iter().flat_map(|l| {
        l.filter_chains
            .iter()
            .chain(l.default_filter_chain.iter())
            .filter_map(|c| c.tls.as_ref().map(|t| &t.common))
    });
    let clusters = snapshot.clusters.iter().flat_map(|c| {
        c.tls
            .iter()
            .chain(
                c.transport_socket_matches
                    .iter()
                    .filter_map(|m| m.tls.as_ref()),
            )
            .map(|t| &t.common)
    });
    listeners.chain(clusters)
}

/// The SDS gRPC sources the dynamic listeners and clusters of `resources` name, each once.
pub fn dynamic_secret_sources(resources: &Resources) -> BTreeSet<AdsConfig> {
    use outrigger_config::model::tls::SecretSource;
    let listeners = resources.listeners.values().flat_map(|l| {
        l.value
            .filter_chains
            .iter()
            .chain(l.value.default_filter_chain.iter())
            .filter_map(|c| c.tls.as_ref().map(|t| t.common.clone()))
            .collect::<Vec<_>>()
    });
    let clusters = resources.clusters.values().flat_map(|c| {
        c.value
            .tls
            .iter()
            .chain(
                c.value
                    .transport_socket_matches
                    .iter()
                    .filter_map(|m| m.tls.as_ref()),
            )
            .map(|t| t.common.clone())
            .collect::<Vec<_>>()
    });
    listeners
        .chain(clusters)
        .flat_map(|common| {
            common
                .secrets()
                .filter_map(|r| match &r.source {
                    SecretSource::Grpc { source, .. } => Some(source.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The secrets the dynamic listeners and clusters of `resources` take from the SDS source `source`.
pub fn dynamic_secret_names(resources: &Resources, source: &AdsConfig) -> BTreeSet<String> {
    let api = Api::Secrets(source.clone());
    resources
        .listeners
        .values()
        .flat_map(|l| subscriptions::listener_secrets(&l.value, &api))
        .chain(
            resources
                .clusters
                .values()
                .flat_map(|c| subscriptions::cluster_secrets(&c.value, &api)),
        )
        .collect()
}

/// The SDS gRPC sources the static listeners and clusters name, each once.
pub fn secret_sources(snapshot: &Snapshot) -> Vec<AdsConfig> {
    use outrigger_config::model::tls::SecretSource;
    let found: BTreeSet<AdsConfig> = tls_contexts(snapshot)
        .flat_map(|common| common.secrets())
        .filter_map(|r| match &r.source {
            SecretSource::Grpc { source, .. } => Some(source.clone()),
            _ => None,
        })
        .collect();
    found.into_iter().collect()
}

/// The initial fetch timeout of a stream whose resources name several: the longest, none (zero: wait for
/// ever) when one says `0s`, Envoy's default when none is named.
fn longest_initial_fetch_timeout(timeouts: Vec<Duration>) -> Duration {
    if timeouts.contains(&Duration::ZERO) {
        Duration::ZERO
    } else {
        timeouts
            .into_iter()
            .max()
            .unwrap_or(DEFAULT_INITIAL_FETCH_TIMEOUT)
    }
}
