//! What the control plane publishes: the folder's resources, and the certificates it issued to nodes (with
//! `--ca-dir`) under each node's own folder resources. A node is issued its certificate when a stream first
//! names it, and again at two thirds of the certificate's life; each change reaches its streams as a folder
//! change does.

use super::issuer::Issuer;
use super::store::{Resources, Store};
use envoy_types::pb::envoy::config::core::v3 as core_pb;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often issued certificates are checked for renewal.
const RENEW_CHECK: Duration = Duration::from_secs(1);

struct Workload {
    spiffe_id: String,
    resources: Resources,
    renew_at: Instant,
}

#[derive(Default)]
struct Parts {
    folder: Store,
    issued: BTreeMap<String, Workload>,
}

/// Publishes the folder's store merged with the issued certificates.
pub struct Publisher {
    sender: watch::Sender<Arc<Store>>,
    parts: Mutex<Parts>,
    issuer: Option<Issuer>,
}

fn lock(parts: &Mutex<Parts>) -> MutexGuard<'_, Parts> {
    match parts.lock() {
        Ok(parts) => parts,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Publisher {
    pub fn new(folder: Store, issuer: Option<Issuer>) -> (Arc<Self>, watch::Receiver<Arc<Store>>) {
        let (sender, receiver) = watch::channel(Arc::new(folder.clone()));
        let publisher = Arc::new(Self {
            sender,
            parts: Mutex::new(Parts {
                folder,
                issued: BTreeMap::new(),
            }),
            issuer,
        });
        (publisher, receiver)
    }

    pub fn folder_changed(&self, folder: Store) {
        let mut parts = lock(&self.parts);
        parts.folder = folder;
        self.publish(&parts);
    }

    fn publish(&self, parts: &Parts) {
        let mut store = parts.folder.clone();
        for (node, workload) in &parts.issued {
            let mut own = workload.resources.clone();
            // The node's own folder resources win over what was issued.
            if let Some(folder_own) = parts.folder.nodes.get(node) {
                for (type_url, entries) in folder_own {
                    own.entry(type_url.clone())
                        .or_default()
                        .extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            store.nodes.insert(node.clone(), own);
        }
        let _ = self.sender.send(Arc::new(store));
    }

    /// A stream named its node: issue its certificate now unless it holds a current one.
    pub fn node_seen(&self, node: &core_pb::Node) {
        let Some(issuer) = &self.issuer else { return };
        let spiffe_id = match issuer.identity(node) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{e}; no certificate issued");
                return;
            }
        };
        let mut parts = lock(&self.parts);
        if parts
            .issued
            .get(&node.id)
            .is_some_and(|w| w.spiffe_id == spiffe_id)
        {
            return;
        }
        if self.issue(issuer, &mut parts, &node.id, spiffe_id) {
            self.publish(&parts);
        }
    }

    fn issue(&self, issuer: &Issuer, parts: &mut Parts, node: &str, spiffe_id: String) -> bool {
        match issuer.issue(&spiffe_id) {
            Ok(issued) => {
                let mut resources = Resources::new();
                for resource in &issued.resources {
                    Store::add(&mut resources, resource);
                }
                tracing::info!(
                    node,
                    spiffe_id,
                    "issued a workload certificate (secrets `default`, `ROOTCA`)"
                );
                parts.issued.insert(
                    node.to_string(),
                    Workload {
                        spiffe_id,
                        resources,
                        renew_at: Instant::now() + issued.renew_after,
                    },
                );
                true
            }
            Err(e) => {
                tracing::error!(node, "{e}");
                false
            }
        }
    }

    /// Reissues certificates at two thirds of their life, for as long as the control plane runs.
    pub async fn renew(self: Arc<Self>) {
        let Some(issuer) = &self.issuer else { return };
        loop {
            tokio::time::sleep(RENEW_CHECK).await;
            let mut parts = lock(&self.parts);
            let now = Instant::now();
            let due: Vec<(String, String)> = parts
                .issued
                .iter()
                .filter(|(_, w)| w.renew_at <= now)
                .map(|(node, w)| (node.clone(), w.spiffe_id.clone()))
                .collect();
            let mut changed = false;
            for (node, spiffe_id) in due {
                changed |= self.issue(issuer, &mut parts, &node, spiffe_id);
            }
            if changed {
                self.publish(&parts);
            }
        }
    }
}
