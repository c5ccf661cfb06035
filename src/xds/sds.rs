//! SDS from gRPC sources (`sds_config: {api_config_source: ...}`, Istio's `sds-grpc`): one SecretDiscoveryService
//! stream per distinct source, driven by the same client as ADS (`ads_client::Api::Secrets`). Each client's
//! accepted state is one part of the configuration; an update from any of them is assembled with the others'
//! last accepted parts, so a secret from an SDS stream reaches the proxy as one from ADS does
//! (`Update.secrets`), and a listener waiting for it warms until it arrives.
//!
//! The ADS stream's listeners and clusters may name further secrets of a source (its stream follows them) or
//! a new source (its stream starts once the update naming it is accepted).

use super::ProxySink;
use super::control_plane_tls::ClusterTls;
use outrigger_config::Snapshot;
use outrigger_config::model::AdsConfig;
use outrigger_config::model::tls::Secret;
use outrigger_control_api::ads_client::{self, Event, Kind, Resources, Sink, Versioned};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which client a state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Ads,
    Sds(AdsConfig),
}

/// The last accepted state of each client.
#[derive(Default)]
pub struct Parts {
    /// Shared with the last combined state when no SDS stream adds secrets to it (a mesh's maps once).
    ads: Arc<Resources>,
    sds: BTreeMap<AdsConfig, Stream>,
}

struct Stream {
    secrets: BTreeMap<String, Versioned<Secret>>,
    /// The names the ADS stream's resources take from this source.
    names: tokio::sync::watch::Sender<BTreeSet<String>>,
    handle: Option<ads_client::Handle>,
}

/// The sink one client is given.
pub struct PartSink {
    pub shared: Arc<ProxySink>,
    pub part: Part,
}

/// Where an SDS source's stream goes: its static cluster, over TLS when the cluster has a TLS context.
pub fn server(bootstrap: &Snapshot, source: &AdsConfig) -> Result<ads_client::Server, String> {
    let cluster = bootstrap.cluster(&source.cluster).ok_or_else(|| {
        format!(
            "an sds_config names the cluster {:?}, which static_resources does not have; an SDS gRPC source \
             must be a static cluster",
            source.cluster
        )
    })?;
    ads_client::Server::from_cluster(cluster, ClusterTls::of(bootstrap, &source.cluster))
}

impl ProxySink {
    /// Starts the stream of `source` (on the xDS client's runtime).
    pub(super) fn spawn_sds(self: &Arc<Self>, source: AdsConfig, server: ads_client::Server) {
        let Ok(mut parts) = self.parts.lock() else {
            return;
        };
        self.spawn_locked(&mut parts, source, server);
    }

    fn spawn_locked(
        self: &Arc<Self>,
        parts: &mut Parts,
        source: AdsConfig,
        server: ads_client::Server,
    ) {
        if parts.sds.contains_key(&source) {
            return;
        }
        let names = ads_client::dynamic_secret_names(&parts.ads, &source);
        let (sender, receiver) = tokio::sync::watch::channel(names);
        let options = ads_client::Options::for_secrets(&self.bootstrap, &source, receiver);
        let sink = Arc::new(PartSink {
            shared: self.clone(),
            part: Part::Sds(source.clone()),
        });
        // Listed before the client starts: its first state finds its place.
        parts.sds.insert(
            source.clone(),
            Stream {
                secrets: BTreeMap::new(),
                names: sender,
                handle: None,
            },
        );
        let handle = ads_client::spawn(server, options, sink);
        if let Some(stream) = parts.sds.get_mut(&source) {
            stream.handle = Some(handle);
        }
    }

    /// Stops every SDS stream.
    pub(super) async fn shutdown_sds(&self) {
        let handles: Vec<ads_client::Handle> = match self.parts.lock() {
            Ok(mut parts) => parts
                .sds
                .values_mut()
                .filter_map(|s| s.handle.take())
                .collect(),
            Err(_) => Vec::new(),
        };
        for handle in handles {
            handle.shutdown().await;
        }
    }

    fn apply_part(
        self: &Arc<Self>,
        part: &Part,
        kind: Kind,
        next: &Resources,
    ) -> Result<(), String> {
        let mut parts = self.parts.lock().map_err(|_| {
            format!("{kind} update not applied: the xDS client's state is poisoned")
        })?;
        // The ADS stream's resources with every stream's secrets; a name from two sources is refused (secrets
        // are kept by name).
        let mut combined = match part {
            Part::Ads => next.clone(),
            Part::Sds(_) => Resources::clone(&parts.ads),
        };
        for (source, stream) in &parts.sds {
            let secrets = match part {
                Part::Sds(this) if this == source => &next.secrets,
                _ => &stream.secrets,
            };
            for (name, secret) in secrets {
                if combined
                    .secrets
                    .insert(name.clone(), secret.clone())
                    .is_some()
                {
                    return Err(format!(
                        "secret {name:?} comes from two sources (the SDS cluster {:?} and another); name it \
                         with one sds_config everywhere",
                        source.cluster
                    ));
                }
            }
        }
        // New SDS sources the dynamic resources name: static clusters, or the update is refused.
        let mut new_sources = Vec::new();
        if *part == Part::Ads {
            for source in ads_client::dynamic_secret_sources(next) {
                if parts.sds.contains_key(&source) {
                    continue;
                }
                let server = server(&self.bootstrap, &source)?;
                new_sources.push((source, server));
            }
        }
        // Each listener and cluster in the version that is warm (`warming.rs`).
        let only_ads = parts.sds.values().all(|stream| stream.secrets.is_empty())
            && !matches!(part, Part::Sds(_));
        let combined = Arc::new(combined);
        self.apply_warm(kind, combined.clone())?;
        match part {
            Part::Ads => {
                parts.ads = if only_ads {
                    combined
                } else {
                    Arc::new(next.clone())
                };
                for (source, server) in new_sources {
                    tracing::info!(sds_server = %server.uri, "taking secrets from an SDS gRPC source");
                    self.spawn_locked(&mut parts, source, server);
                }
                for (source, stream) in &parts.sds {
                    let names = ads_client::dynamic_secret_names(&parts.ads, source);
                    stream.names.send_if_modified(|current| {
                        let changed = *current != names;
                        if changed {
                            *current = names;
                        }
                        changed
                    });
                }
            }
            Part::Sds(source) => {
                if let Some(stream) = parts.sds.get_mut(source) {
                    stream.secrets = next.secrets.clone();
                }
            }
        }
        Ok(())
    }
}

impl Sink for PartSink {
    fn apply(&self, kind: Kind, next: &Resources) -> Result<(), String> {
        self.shared.apply_part(&self.part, kind, next)
    }

    fn event(&self, event: Event) {
        self.shared.event(&self.part, event);
    }

    fn cds_pause(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        // Only the ADS stream carries clusters.
        match self.part {
            Part::Ads => Some(self.shared.cds_paused.subscribe()),
            Part::Sds(_) => None,
        }
    }
}
