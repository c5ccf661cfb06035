//! State-of-the-world ADS (`StreamAggregatedResources`): each response carries every resource of its type the
//! client asked for (all of them for the wildcard types, listeners and clusters).
//!
//! Per type, the stream remembers what the client subscribed to, the nonce of the last response and the version
//! it carried. A request whose nonce is not the last one sent is stale and ignored, as the xDS protocol says. A
//! request with `error_detail` is a NACK: it is logged with the node id, and the rejected version is not sent
//! again (the client keeps its last good one); the next change of the folder is.

use super::folder::short_type;
use super::store::{Entry, Store, is_wildcard_type, node_id, version_of};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

#[derive(Default)]
struct Subscription {
    /// Every resource of the type (LDS and CDS asked with no names, or with `*`).
    wildcard: bool,
    /// The stream's first request for the type named nothing (the legacy wildcard): later empty requests keep
    /// the wildcard. After explicit names, an empty list means none.
    legacy_wildcard: bool,
    names: BTreeSet<String>,
    /// The nonce and version of the last response on this type; `None` before the first.
    sent: Option<(String, String)>,
}

/// Serves one ADS stream until the client goes away or the server stops.
pub async fn serve(
    mut requests: Streaming<DiscoveryRequest>,
    mut store: watch::Receiver<Arc<Store>>,
    publisher: Arc<super::workloads::Publisher>,
    responses: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    peer: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut node = String::new();
    let mut subscriptions: HashMap<String, Subscription> = HashMap::new();
    let mut nonces = 0u64;
    loop {
        let changed_type = tokio::select! {
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
                    let Some(type_url) = accept(&request, &mut subscriptions, &node, &peer) else {
                        continue;
                    };
                    Some(type_url)
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%peer, node, "ADS stream ended: {status}");
                    return;
                }
            },
            changed = store.changed() => {
                if changed.is_err() {
                    return;
                }
                None
            }
        };
        // A folder change that arrived with the request is for every subscribed type, not only the requested one.
        let store_changed = store.has_changed().unwrap_or(false);
        let current = store.borrow_and_update().clone();
        let types: Vec<String> = match changed_type {
            Some(type_url) if !store_changed => vec![type_url],
            Some(type_url) => std::iter::once(type_url.clone())
                .chain(subscriptions.keys().filter(|t| **t != type_url).cloned())
                .collect(),
            None => subscriptions.keys().cloned().collect(),
        };
        for type_url in types {
            let Some(subscription) = subscriptions.get_mut(&type_url) else {
                continue;
            };
            let view = selected(&current.view(&node, &type_url), subscription);
            let version = version_of(view.iter());
            if subscription
                .sent
                .as_ref()
                .is_some_and(|(_, sent)| *sent == version)
            {
                continue;
            }
            nonces += 1;
            let nonce = nonces.to_string();
            let response = DiscoveryResponse {
                version_info: version.clone(),
                resources: view
                    .values()
                    .map(|entry| Any {
                        type_url: type_url.clone(),
                        value: entry.value.as_ref().clone(),
                    })
                    .collect(),
                type_url: type_url.clone(),
                nonce: nonce.clone(),
                ..Default::default()
            };
            tracing::info!(
                node,
                "sending {} {} (version {version})",
                view.len(),
                short_type(&type_url)
            );
            subscription.sent = Some((nonce, version));
            if responses.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

/// Takes in a request: returns its type when a response may be due (a new or changed subscription).
fn accept(
    request: &DiscoveryRequest,
    subscriptions: &mut HashMap<String, Subscription>,
    node: &str,
    peer: &str,
) -> Option<String> {
    let type_url = request.type_url.clone();
    let subscription = subscriptions.entry(type_url.clone()).or_default();
    let last_nonce = subscription.sent.as_ref().map(|(nonce, _)| nonce.as_str());
    if !request.response_nonce.is_empty() && Some(request.response_nonce.as_str()) != last_nonce {
        // Stale: an answer to an earlier response, overtaken by a newer one.
        return None;
    }
    if request.error_detail.is_some() || !request.response_nonce.is_empty() {
        // An ACK carries the version it accepts; a NACK the last good one, so name the version sent.
        let which = match &request.error_detail {
            None => format!("version {}", request.version_info),
            Some(_) => format!(
                "version {:?}",
                subscription.sent.as_ref().map_or("", |(_, v)| v.as_str())
            ),
        };
        super::log_answer(node, peer, &type_url, &which, request.error_detail.as_ref());
    }
    let wildcard_type = is_wildcard_type(&type_url);
    let names: BTreeSet<String> = request
        .resource_names
        .iter()
        .filter(|n| n.as_str() != "*")
        .cloned()
        .collect();
    let first = subscription.sent.is_none();
    if first {
        subscription.legacy_wildcard = wildcard_type && request.resource_names.is_empty();
    }
    let wildcard = request.resource_names.iter().any(|n| n == "*")
        || (subscription.legacy_wildcard && request.resource_names.is_empty());
    let changed = names != subscription.names || wildcard != subscription.wildcard;
    subscription.names = names;
    subscription.wildcard = wildcard;
    if changed && !first {
        // Another set of names: the same version string would not say that the content changed.
        subscription.sent = subscription
            .sent
            .take()
            .map(|(nonce, _)| (nonce, String::new()));
    }
    (first || changed).then_some(type_url)
}

/// The resources a subscription covers.
fn selected(
    view: &BTreeMap<String, Entry>,
    subscription: &Subscription,
) -> BTreeMap<String, Entry> {
    if subscription.wildcard {
        return view.clone();
    }
    view.iter()
        .filter(|(name, _)| subscription.names.contains(*name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
