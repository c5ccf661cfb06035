//! One state-of-the-world ADS stream (`StreamAggregatedResources`). Per type the stream remembers the nonce of
//! the last response and the names it asked for; the accepted versions live in the [`State`] and outlive the
//! stream, nonces do not. Listeners and clusters are asked for with no names (the wildcard, as Envoy does),
//! routes and endpoints by name, and again with the whole list whenever it changes.

use super::pause::CdsPause;
use super::server::MAX_MESSAGE_BYTES;
use super::state::{Incoming, State, Update};
use super::{Api, Ended, Kind, Server};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

/// gRPC's INVALID_ARGUMENT, the code of a NACK's `error_detail`.
pub const INVALID_ARGUMENT: i32 = 3;

struct Stream<'a> {
    state: &'a mut State,
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    first: bool,
    nonces: HashMap<Kind, String>,
    /// The names last asked for, by type (only the types asked for).
    asked: HashMap<Kind, BTreeSet<String>>,
    pause: CdsPause<DiscoveryRequest>,
}

impl Stream<'_> {
    fn send(
        &mut self,
        kind_or_url: &str,
        names: Vec<String>,
        version: String,
        nonce: String,
        error: Option<String>,
    ) {
        let request = DiscoveryRequest {
            version_info: version,
            resource_names: names,
            type_url: kind_or_url.to_string(),
            response_nonce: nonce,
            error_detail: error.map(|message| Status {
                code: INVALID_ARGUMENT,
                message,
                ..Default::default()
            }),
            ..Default::default()
        };
        let is_cds = request.type_url == Kind::Cluster.type_url();
        for request in self.pause.pass(is_cds, request) {
            self.transmit(request);
        }
    }

    fn transmit(&mut self, mut request: DiscoveryRequest) {
        request.node = self.state.node_for(self.first);
        self.first = false;
        // The receiver lives as long as the call; a send after it is gone changes nothing.
        let _ = self.requests.send(request);
    }

    /// Asks again for every by-name type whose names changed (or that is now wanted for the first time).
    fn follow_names(&mut self) {
        for kind in Kind::BY_NAME {
            let wanted = self.state.wanted(kind);
            let changed = match self.asked.get(&kind) {
                Some(asked) => *asked != wanted,
                None => !wanted.is_empty(),
            };
            if changed {
                let nonce = self.nonces.get(&kind).cloned().unwrap_or_default();
                self.send(
                    kind.type_url(),
                    wanted.iter().cloned().collect(),
                    self.state.accepted(kind),
                    nonce,
                    None,
                );
                self.asked.insert(kind, wanted);
            }
        }
    }

    fn respond(&mut self, response: DiscoveryResponse) {
        let Some(kind) = Kind::from_type_url(&response.type_url).filter(|k| {
            if k.is_wildcard() {
                self.state.subscribed(*k)
            } else {
                self.asked.contains_key(k)
            }
        }) else {
            let message = format!(
                "error: type_url: {:?} was not asked for on this stream",
                response.type_url
            );
            tracing::warn!(node = self.state.node_id(), "NACK: {message}");
            self.send(
                &response.type_url,
                Vec::new(),
                String::new(),
                response.nonce,
                Some(message),
            );
            return;
        };
        self.nonces.insert(kind, response.nonce.clone());
        let accepted = self.state.accepted(kind);
        let update = Update {
            kind,
            version: response.version_info.clone(),
            resources: response
                .resources
                .into_iter()
                .map(|any| incoming(any, &response.version_info, &accepted))
                .collect(),
            removed: Vec::new(),
            full_set: kind.is_wildcard(),
            per_resource_versions: false,
        };
        let error = self.state.apply(update).err();
        // As Envoy: the subscriptions an update leads to (a new cluster's endpoints, a new listener's routes) go
        // out before its ACK, so a control plane that orders its pushes (make before break) sees them first.
        self.follow_names();
        let names = self
            .asked
            .get(&kind)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default();
        self.send(
            kind.type_url(),
            names,
            self.state.accepted(kind),
            response.nonce,
            error,
        );
    }
}

/// The wrapper a SotW response may put a resource in, to give it a TTL.
const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// One resource of a response: as it is, or out of its `Resource` wrapper with its TTL. A wrapper without a
/// resource is a heartbeat (refreshing the TTL of what the client holds) when its version is the last accepted
/// one (Envoy's rule); otherwise the response is refused.
pub(super) fn incoming(any: Any, version: &str, accepted: &str) -> Incoming {
    let plain = |any| Incoming::plain(None, version.to_string(), Some(any));
    if any.type_url != RESOURCE_WRAPPER {
        return plain(any);
    }
    let wrapper = match Resource::decode(any.value.as_slice()) {
        Ok(wrapper) => wrapper,
        Err(e) => {
            let mut refused = plain(any);
            refused.problem = Some(format!(
                "error: resources: an envoy.service.discovery.v3.Resource that does not decode: {e}"
            ));
            return refused;
        }
    };
    let ttl = super::state::ttl(wrapper.ttl);
    let problem = (wrapper.resource.is_none() && wrapper.version != accepted).then(|| {
        format!(
            "error: resources: the Resource {:?} has no resource and is not a heartbeat (its version {:?} is \
             not the last accepted one, {accepted:?})",
            wrapper.name, wrapper.version
        )
    });
    Incoming {
        // The name only finds a heartbeat's resource; a wrapped resource is known by its own name.
        name: wrapper.resource.is_none().then_some(wrapper.name),
        version: version.to_string(),
        any: wrapper.resource,
        ttl,
        problem,
    }
}

pub async fn run(channel: Channel, server: &Server, state: &mut State) -> Ended {
    let (requests, receiver) = mpsc::unbounded_channel();
    let pause = CdsPause::new(state.cds_pause(), true);
    let mut stream = Stream {
        state,
        requests,
        first: true,
        nonces: HashMap::new(),
        asked: HashMap::new(),
        pause,
    };
    for (kind, names) in stream.state.initial_subscriptions() {
        stream.send(
            kind.type_url(),
            names.iter().cloned().collect(),
            stream.state.accepted(kind),
            String::new(),
            None,
        );
        if !kind.is_wildcard() {
            stream.asked.insert(kind, names);
        }
    }
    let requests = UnboundedReceiverStream::new(receiver);
    let opened = match &stream.state.options().api {
        Api::Aggregated => {
            AggregatedDiscoveryServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .stream_aggregated_resources(requests)
                .await
        }
        Api::Secrets(_) => {
            SecretDiscoveryServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .stream_secrets(requests)
                .await
        }
    };
    super::follow(opened, &mut stream, server, "state of the world").await
}

impl super::Responses<DiscoveryResponse> for Stream<'_> {
    fn state(&mut self) -> &mut State {
        self.state
    }

    fn respond(&mut self, response: DiscoveryResponse) {
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
