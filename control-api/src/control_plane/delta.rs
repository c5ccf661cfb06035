//! Incremental ADS (`DeltaAggregatedResources`): a response carries only the resources the client does not
//! have in their current version, and the names of those that are gone.
//!
//! Per type, the stream remembers the client's subscription (names, or the wildcard) and the version of each
//! resource the client holds (from `initial_resource_versions` on a reconnect, then from what was sent). A NACK
//! is logged with the node id; what it rejected is not sent again until it changes.

use super::folder::short_type;
use super::store::{Entry, Store, is_wildcard_type, node_id};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

#[derive(Default)]
struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// The version of each resource the client holds.
    held: BTreeMap<String, String>,
    /// Subscribed names the client was told do not exist (so it stops waiting for them), not to repeat it.
    told_absent: BTreeSet<String>,
    /// Nothing was sent on this type yet: the first answer goes out even when empty, so the client's initial
    /// fetch completes.
    answered: bool,
}

impl Subscription {
    fn covers(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// Serves one delta ADS stream until the client goes away or the server stops.
pub async fn serve(
    mut requests: Streaming<DeltaDiscoveryRequest>,
    mut store: watch::Receiver<Arc<Store>>,
    publisher: Arc<super::workloads::Publisher>,
    responses: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    peer: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut node = String::new();
    let mut subscriptions: HashMap<String, Subscription> = HashMap::new();
    let mut nonces = 0u64;
    loop {
        let types: Vec<String> = tokio::select! {
            _ = stop.changed() => return,
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    if let Some(id) = node_id(request.node.as_ref()) {
                        if node != id
                            && let Some(full) = &request.node
                        {
                            // Before the request is answered: a certificate issued now is in its answer.
                            publisher.node_seen(full);
                        }
                        id.clone_into(&mut node);
                    }
                    accept(&request, &mut subscriptions, &node, &peer);
                    if store.has_changed().unwrap_or(false) {
                        // A folder change that arrived with the request is for every subscribed type.
                        subscriptions.keys().cloned().collect()
                    } else {
                        vec![request.type_url]
                    }
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%peer, node, "delta ADS stream ended: {status}");
                    return;
                }
            },
            changed = store.changed() => {
                if changed.is_err() {
                    return;
                }
                subscriptions.keys().cloned().collect()
            }
        };
        let current = store.borrow_and_update().clone();
        for type_url in types {
            let Some(subscription) = subscriptions.get_mut(&type_url) else {
                continue;
            };
            let view = current.view(&node, &type_url);
            let (resources, removed) = difference(&view, subscription);
            if resources.is_empty() && removed.is_empty() && subscription.answered {
                continue;
            }
            subscription.answered = true;
            nonces += 1;
            tracing::info!(
                node,
                "sending {} {} ({} removed)",
                resources.len(),
                short_type(&type_url),
                removed.len()
            );
            let response = DeltaDiscoveryResponse {
                resources: resources
                    .into_iter()
                    .map(|(name, entry)| Resource {
                        name,
                        version: entry.version.clone(),
                        resource: Some(Any {
                            type_url: type_url.clone(),
                            value: entry.value.as_ref().clone(),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                type_url: type_url.clone(),
                removed_resources: removed,
                nonce: nonces.to_string(),
                ..Default::default()
            };
            if responses.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

/// Applies a request to the type's subscription; logs a NACK.
fn accept(
    request: &DeltaDiscoveryRequest,
    subscriptions: &mut HashMap<String, Subscription>,
    node: &str,
    peer: &str,
) {
    let first = !subscriptions.contains_key(&request.type_url);
    let subscription = subscriptions.entry(request.type_url.clone()).or_default();
    if request.error_detail.is_some() || !request.response_nonce.is_empty() {
        let which = format!("(nonce {})", request.response_nonce);
        super::log_answer(
            node,
            peer,
            &request.type_url,
            &which,
            request.error_detail.as_ref(),
        );
    }
    if first {
        // A first request without names subscribes listeners and clusters to everything.
        subscription.wildcard =
            request.resource_names_subscribe.is_empty() && is_wildcard_type(&request.type_url);
        subscription.held = request
            .initial_resource_versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    for name in &request.resource_names_subscribe {
        if name == "*" {
            subscription.wildcard = true;
        } else {
            subscription.names.insert(name.clone());
        }
    }
    for name in &request.resource_names_unsubscribe {
        if name == "*" {
            subscription.wildcard = false;
        } else {
            subscription.names.remove(name);
        }
    }
    let Subscription {
        wildcard,
        names,
        held,
        ..
    } = subscription;
    held.retain(|name, _| *wildcard || names.contains(name));
}

/// What to send: resources in the subscription whose version the client does not hold, and names the client
/// holds that are gone. Records them as held.
fn difference(
    view: &BTreeMap<String, Entry>,
    subscription: &mut Subscription,
) -> (Vec<(String, Entry)>, Vec<String>) {
    let resources: Vec<(String, Entry)> = view
        .iter()
        .filter(|(name, entry)| {
            subscription.covers(name) && subscription.held.get(*name) != Some(&entry.version)
        })
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect();
    let mut removed: Vec<String> = subscription
        .held
        .keys()
        .filter(|name| !view.contains_key(*name))
        .cloned()
        .collect();
    for name in &removed {
        subscription.held.remove(name);
        subscription.told_absent.insert(name.clone());
    }
    // A name subscribed explicitly that the folder does not have: say so once (in `removed_resources`, as the
    // incremental protocol does), so the client does not wait out its initial fetch timeout for it.
    let absent: Vec<String> = subscription
        .names
        .iter()
        .filter(|name| !view.contains_key(*name) && !subscription.told_absent.contains(*name))
        .cloned()
        .collect();
    for name in absent {
        subscription.told_absent.insert(name.clone());
        removed.push(name);
    }
    subscription.told_absent.retain(|name| {
        !view.contains_key(name) && (subscription.wildcard || subscription.names.contains(name))
    });
    for (name, entry) in &resources {
        subscription
            .held
            .insert(name.clone(), entry.version.clone());
    }
    (resources, removed)
}
