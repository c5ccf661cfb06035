//! One incremental ADS stream (`DeltaAggregatedResources`). Listeners and clusters are subscribed with no
//! names (the wildcard), routes and endpoints by name, then by the names that come and go. On every (re)connect
//! the client subscribes anew and says what it holds in `initial_resource_versions`, so the server sends only
//! what changed. A response carries the resources added or changed and the names removed.

use super::pause::CdsPause;
use super::server::MAX_MESSAGE_BYTES;
use super::sotw::INVALID_ARGUMENT;
use super::state::{Incoming, State, Update};
use super::{Api, Ended, Kind, Server};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status;
use std::collections::{BTreeSet, HashMap};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

struct Stream<'a> {
    state: &'a mut State,
    requests: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    first: bool,
    /// The names subscribed, by type (only the types subscribed; empty for the wildcard ones).
    subscribed: HashMap<Kind, BTreeSet<String>>,
    pause: CdsPause<DeltaDiscoveryRequest>,
}

impl Stream<'_> {
    fn send(&mut self, request: DeltaDiscoveryRequest) {
        let is_cds = request.type_url == Kind::Cluster.type_url();
        for request in self.pause.pass(is_cds, request) {
            self.transmit(request);
        }
    }

    fn transmit(&mut self, mut request: DeltaDiscoveryRequest) {
        request.node = self.state.node_for(self.first);
        self.first = false;
        // The receiver lives as long as the call; a send after it is gone changes nothing.
        let _ = self.requests.send(request);
    }

    /// The first request of a type on this stream: the subscription and what the client holds.
    fn subscribe(&mut self, kind: Kind, names: BTreeSet<String>) {
        let held = self.state.resources().versions(kind);
        self.send(DeltaDiscoveryRequest {
            type_url: kind.type_url().to_string(),
            resource_names_subscribe: names.iter().cloned().collect(),
            initial_resource_versions: held.into_iter().collect(),
            ..Default::default()
        });
        self.subscribed.insert(kind, names);
    }

    /// Subscribes to the names now wanted and unsubscribes from those no longer wanted.
    fn follow_names(&mut self) {
        for kind in Kind::BY_NAME {
            let wanted = self.state.wanted(kind);
            let Some(current) = self.subscribed.get(&kind) else {
                if !wanted.is_empty() {
                    self.subscribe(kind, wanted);
                }
                continue;
            };
            let subscribe: Vec<String> = wanted.difference(current).cloned().collect();
            let unsubscribe: Vec<String> = current.difference(&wanted).cloned().collect();
            if subscribe.is_empty() && unsubscribe.is_empty() {
                continue;
            }
            self.send(DeltaDiscoveryRequest {
                type_url: kind.type_url().to_string(),
                resource_names_subscribe: subscribe,
                resource_names_unsubscribe: unsubscribe,
                ..Default::default()
            });
            self.subscribed.insert(kind, wanted);
        }
    }

    fn respond(&mut self, response: DeltaDiscoveryResponse) {
        let Some(kind) =
            Kind::from_type_url(&response.type_url).filter(|k| self.subscribed.contains_key(k))
        else {
            let message = format!(
                "error: type_url: {:?} was not subscribed to on this stream",
                response.type_url
            );
            tracing::warn!(node = self.state.node_id(), "NACK: {message}");
            self.send(nack(&response.type_url, response.nonce, message));
            return;
        };
        let update = Update {
            kind,
            version: response.system_version_info.clone(),
            resources: response
                .resources
                .into_iter()
                .map(|resource| {
                    let mut incoming =
                        Incoming::plain(Some(resource.name), resource.version, resource.resource);
                    incoming.ttl = super::state::ttl(resource.ttl);
                    incoming
                })
                .collect(),
            removed: response.removed_resources,
            full_set: false,
            per_resource_versions: true,
        };
        let applied = self.state.apply(update);
        // As Envoy: the subscriptions an update leads to (a new cluster's endpoints, a new listener's routes) go
        // out before its ACK, so a control plane that orders its pushes (make before break) sees them first.
        self.follow_names();
        match applied {
            Ok(()) => self.send(DeltaDiscoveryRequest {
                type_url: kind.type_url().to_string(),
                response_nonce: response.nonce,
                ..Default::default()
            }),
            Err(message) => self.send(nack(kind.type_url(), response.nonce, message)),
        }
    }
}

fn nack(type_url: &str, nonce: String, message: String) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        response_nonce: nonce,
        error_detail: Some(Status {
            code: INVALID_ARGUMENT,
            message,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn run(channel: Channel, server: &Server, state: &mut State) -> Ended {
    let (requests, receiver) = mpsc::unbounded_channel();
    let pause = CdsPause::new(state.cds_pause(), false);
    let mut stream = Stream {
        state,
        requests,
        first: true,
        subscribed: HashMap::new(),
        pause,
    };
    for (kind, names) in stream.state.initial_subscriptions() {
        stream.subscribe(kind, names);
    }
    let requests = UnboundedReceiverStream::new(receiver);
    let opened = match &stream.state.options().api {
        Api::Aggregated => {
            AggregatedDiscoveryServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .delta_aggregated_resources(requests)
                .await
        }
        Api::Secrets(_) => {
            SecretDiscoveryServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .delta_secrets(requests)
                .await
        }
    };
    super::follow(opened, &mut stream, server, "delta").await
}

impl super::Responses<DeltaDiscoveryResponse> for Stream<'_> {
    fn state(&mut self) -> &mut State {
        self.state
    }

    fn respond(&mut self, response: DeltaDiscoveryResponse) {
        Stream::respond(self, response);
    }

    fn follow_names(&mut self) {
        Stream::follow_names(self);
    }

    fn resume(&mut self) {
        for request in self.pause.released() {
            self.transmit(request);
        }
    }
}
