//! The ADS client against the real file-backed control plane (state of the world and delta: a first version
//! with a listener on RDS, an EDS cluster, its routes and endpoints; then an edit), and against a scripted
//! server in this file (NACKs that name the resource and field, a sink that refuses, a server that goes away
//! and comes back on the same port).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::core::v3 as core_pb;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint_pb;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use outrigger_config::model::Node;
use outrigger_control_api::ads_client::{self, Api, Event, Kind, Options, Resources, Server, Sink};
use outrigger_control_api::control_plane::ControlPlane;
use prost::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

const SOON: Duration = Duration::from_secs(10);

// ---- the sink -------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Seen {
    Applied(Kind, Resources),
    Event(Event),
}

struct Recorder {
    seen: mpsc::UnboundedSender<Seen>,
    /// When set, `apply` refuses with this message.
    refuse: Mutex<Option<String>>,
}

impl Sink for Recorder {
    fn apply(&self, kind: Kind, next: &Resources) -> Result<(), String> {
        if let Some(message) = self.refuse.lock().unwrap().clone() {
            return Err(message);
        }
        let _ = self.seen.send(Seen::Applied(kind, next.clone()));
        Ok(())
    }

    fn event(&self, event: Event) {
        let _ = self.seen.send(Seen::Event(event));
    }
}

fn recorder() -> (Arc<Recorder>, mpsc::UnboundedReceiver<Seen>) {
    let (seen, receiver) = mpsc::unbounded_channel();
    (
        Arc::new(Recorder {
            seen,
            refuse: Mutex::new(None),
        }),
        receiver,
    )
}

/// Waits (bounded) for the first thing seen that `found` accepts; panics with `what` otherwise.
async fn until<T>(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    what: &str,
    mut found: impl FnMut(&Seen) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(s)) => {
                if let Some(t) = found(&s) {
                    return t;
                }
            }
            _ => panic!("never saw {what}"),
        }
    }
}

fn options(delta: bool) -> Options {
    Options {
        node: Node {
            id: "sidecar~127.0.0.1~web.test~test.svc.cluster.local".into(),
            cluster: "web".into(),
            user_agent_name: "outrigger".into(),
            ..Default::default()
        },
        delta,
        set_node_on_first_message_only: true,
        listeners: true,
        clusters: true,
        static_route_names: Vec::new(),
        static_endpoint_names: Vec::new(),
        static_secret_names: Vec::new(),
        initial_fetch_timeout: Duration::from_secs(15),
        api: Api::Aggregated,
        extra_secret_names: None,
    }
}

fn server_at(address: SocketAddr) -> Server {
    Server::plaintext("xds", address.to_string())
}

// ---- against the file-backed control plane --------------------------------------------------------------

const LISTENER: &str = r#"
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: http
  address: {socket_address: {address: 127.0.0.1, port_value: 18080}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: http
        rds: {route_config_name: web, config_source: {ads: {}}}
        http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: backend
  type: EDS
  eds_cluster_config: {eds_config: {ads: {}}}
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: web
  virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]
"#;

fn endpoints(port: u16) -> String {
    format!(
        "\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: backend\n  endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]\n"
    )
}

struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, file: &str, resources: &str) {
    std::fs::write(dir.join(file), format!("resources:{resources}")).unwrap();
}

async fn control_plane(test: &str) -> (Folder, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let dir = std::env::temp_dir().join(format!(
        "outrigger-ads-client-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "config.yaml", LISTENER);
    write(&dir, "endpoints.yaml", &endpoints(9001));
    let control_plane = ControlPlane::bind(dir.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = control_plane.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(control_plane.serve(async move {
        let _ = stopped.await;
    }));
    (Folder(dir), address, stop)
}

fn endpoint_port(resources: &Resources) -> Option<u16> {
    resources
        .endpoints
        .get("backend")
        .and_then(|e| e.value.localities.first())
        .and_then(|l| l.endpoints.first())
        .map(|e| e.port)
}

async fn against_the_control_plane(delta: bool) {
    let (folder, address, _stop) = control_plane(if delta { "delta" } else { "sotw" }).await;
    let (sink, mut seen) = recorder();
    let client = ads_client::spawn(server_at(address), options(delta), sink);

    // Version 1: every type reaches the sink, then the initial fetch is done.
    let mut kinds = std::collections::BTreeSet::new();
    let mut last = Resources::default();
    until(&mut seen, "the initial fetch", |s| match s {
        Seen::Applied(kind, next) => {
            kinds.insert(*kind);
            last = next.clone();
            None
        }
        Seen::Event(Event::InitialFetchDone) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(last.listeners.contains_key("http"));
    assert!(last.routes.contains_key("web"));
    assert!(last.clusters.contains_key("backend"));
    assert_eq!(endpoint_port(&last), Some(9001));

    // Version 2 (an edit of the folder) reaches the sink.
    write(&folder.0, "endpoints.yaml", &endpoints(9002));
    let next = until(&mut seen, "the edited endpoints", |s| match s {
        Seen::Applied(Kind::Endpoints, next) if endpoint_port(next) == Some(9002) => {
            Some(next.clone())
        }
        _ => None,
    })
    .await;
    assert_ne!(
        next.endpoints["backend"].version, last.endpoints["backend"].version,
        "a new version"
    );
    assert!(next.endpoints["backend"].last_updated >= last.endpoints["backend"].last_updated);
    // The rest is unchanged and kept.
    assert_eq!(
        next.listeners["http"].version,
        last.listeners["http"].version
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_from_the_control_plane() {
    against_the_control_plane(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_from_the_control_plane() {
    against_the_control_plane(true).await;
}

// ---- against a scripted server ----------------------------------------------------------------------------

type SotwStream = (
    Streaming<DiscoveryRequest>,
    mpsc::Sender<Result<DiscoveryResponse, Status>>,
);
type DeltaStream = (
    Streaming<DeltaDiscoveryRequest>,
    mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
);

/// Hands every stream to the test, which reads the requests and writes the responses.
struct Scripted {
    sotw: mpsc::UnboundedSender<SotwStream>,
    delta: mpsc::UnboundedSender<DeltaStream>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Scripted {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (send, receive) = mpsc::channel(8);
        let _ = self.sotw.send((request.into_inner(), send));
        Ok(Response::new(ReceiverStream::new(receive)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (send, receive) = mpsc::channel(8);
        let _ = self.delta.send((request.into_inner(), send));
        Ok(Response::new(ReceiverStream::new(receive)))
    }
}

struct ScriptedServer {
    sotw: mpsc::UnboundedReceiver<SotwStream>,
    delta: mpsc::UnboundedReceiver<DeltaStream>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    async fn start(address: SocketAddr) -> (Self, SocketAddr) {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sotw, sotw_streams) = mpsc::unbounded_channel();
        let (delta, delta_streams) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(Scripted {
                    sotw,
                    delta,
                }))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await;
        });
        (
            Self {
                sotw: sotw_streams,
                delta: delta_streams,
                stop: Some(stop),
                served,
            },
            address,
        )
    }

    async fn sotw_stream(&mut self) -> SotwStream {
        tokio::time::timeout(SOON, self.sotw.recv())
            .await
            .expect("a stream in time")
            .expect("a stream")
    }

    async fn delta_stream(&mut self) -> DeltaStream {
        tokio::time::timeout(SOON, self.delta.recv())
            .await
            .expect("a stream in time")
            .expect("a stream")
    }

    /// Stops serving; the test drops its streams so that the shutdown completes.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(SOON, &mut self.served).await;
        self.served.abort();
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.served.abort();
    }
}

async fn next<T>(requests: &mut Streaming<T>) -> T {
    tokio::time::timeout(SOON, requests.message())
        .await
        .expect("a request in time")
        .expect("a healthy stream")
        .expect("a request")
}

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn cluster(name: &str, port: u32) -> cluster_pb::Cluster {
    use cluster_pb::cluster::{ClusterDiscoveryType, DiscoveryType};
    let address = core_pb::Address {
        address: Some(core_pb::address::Address::SocketAddress(
            core_pb::SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(core_pb::socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            },
        )),
    };
    cluster_pb::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(endpoint_pb::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![endpoint_pb::LocalityLbEndpoints {
                lb_endpoints: vec![endpoint_pb::LbEndpoint {
                    host_identifier: Some(endpoint_pb::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint_pb::Endpoint {
                            address: Some(address),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn eds_cluster(name: &str) -> cluster_pb::Cluster {
    use cluster_pb::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
    cluster_pb::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(core_pb::ConfigSource {
                config_source_specifier: Some(core_pb::config_source::ConfigSourceSpecifier::Ads(
                    core_pb::AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

fn any(message: &impl Message, type_url: &str) -> Any {
    Any {
        type_url: type_url.into(),
        value: message.encode_to_vec(),
    }
}

fn clusters(version: &str, nonce: &str, clusters: &[cluster_pb::Cluster]) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        type_url: CLUSTER.into(),
        nonce: nonce.into(),
        resources: clusters.iter().map(|c| any(c, CLUSTER)).collect(),
        ..Default::default()
    }
}

fn cluster_names(resources: &Resources) -> Vec<String> {
    resources.clusters.keys().cloned().collect()
}

/// Asserts a NACK of `nonce` that keeps `version`, and returns its message.
fn nack_message(request: &DiscoveryRequest, version: &str, nonce: &str) -> String {
    let error = request.error_detail.as_ref().expect("a NACK");
    assert_eq!(error.code, 3, "INVALID_ARGUMENT");
    assert_eq!(
        (
            request.version_info.as_str(),
            request.response_nonce.as_str()
        ),
        (version, nonce)
    );
    error.message.clone()
}

fn assert_ack(request: &DiscoveryRequest, version: &str, nonce: &str) {
    assert!(request.error_detail.is_none(), "{:?}", request.error_detail);
    assert_eq!(
        (
            request.version_info.as_str(),
            request.response_nonce.as_str()
        ),
        (version, nonce)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacks_name_the_resource_and_keep_the_last_good_version() {
    let (mut server, address) = ScriptedServer::start("127.0.0.1:0".parse().unwrap()).await;
    let (sink, mut seen) = recorder();
    let mut opts = options(false);
    opts.listeners = false;
    let client = ads_client::spawn(server_at(address), opts, sink.clone());
    let (mut requests, responses) = server.sotw_stream().await;

    // The wildcard CDS request, with the node (first message only).
    let first = next(&mut requests).await;
    assert_eq!(first.type_url, CLUSTER);
    assert!(first.resource_names.is_empty() && first.version_info.is_empty());
    assert_eq!(first.node.as_ref().unwrap().id, options(false).node.id);

    // Version 1 is applied and ACKed (without the node this time).
    responses
        .send(Ok(clusters("1", "n1", &[cluster("a", 81)])))
        .await
        .unwrap();
    let ack = next(&mut requests).await;
    assert_ack(&ack, "1", "n1");
    assert!(
        ack.node.is_none(),
        "the node goes with the first message only"
    );
    let applied = until(&mut seen, "version 1", |s| match s {
        Seen::Applied(Kind::Cluster, next) => Some(next.clone()),
        _ => None,
    })
    .await;
    assert_eq!(cluster_names(&applied), ["a"]);
    assert_eq!(applied.clusters["a"].version, "1");

    // Version 2 holds a cluster with an unsupported lb_policy: NACKed with its name and field, version 1 kept.
    let mut maglev = cluster("m", 82);
    maglev.lb_policy = cluster_pb::cluster::LbPolicy::LoadBalancingPolicyConfig as i32;
    responses
        .send(Ok(clusters("2", "n2", &[cluster("a", 81), maglev])))
        .await
        .unwrap();
    let message = nack_message(&next(&mut requests).await, "1", "n2");
    assert!(
        message.starts_with("error: Cluster \"m\".lb_policy: "),
        "{message}"
    );
    until(&mut seen, "the rejection", |s| {
        matches!(s, Seen::Event(Event::UpdateRejected(Kind::Cluster))).then_some(())
    })
    .await;

    // Several problems at once, joined with "; ": an empty name, and a duplicate.
    responses
        .send(Ok(clusters(
            "3",
            "n3",
            &[cluster("", 83), cluster("d", 84), cluster("d", 85)],
        )))
        .await
        .unwrap();
    let message = nack_message(&next(&mut requests).await, "1", "n3");
    assert!(message.contains("error: Cluster \"\".name: "), "{message}");
    assert!(message.contains("; "), "{message}");
    assert!(
        message.contains("two CDS resources are named \"d\""),
        "{message}"
    );

    // A resource of another type in a CDS response.
    let mut wrong = clusters("4", "n4", &[cluster("a", 81)]);
    wrong.resources[0].type_url = ENDPOINTS.into();
    responses.send(Ok(wrong)).await.unwrap();
    let message = nack_message(&next(&mut requests).await, "1", "n4");
    assert!(
        message.contains("a CDS response holds a resource of type"),
        "{message}"
    );

    // A response of a type never asked for.
    let mut unasked = clusters("5", "n5", &[]);
    unasked.type_url = "type.googleapis.com/envoy.config.listener.v3.Listener".into();
    responses.send(Ok(unasked)).await.unwrap();
    let nack = next(&mut requests).await;
    assert!(nack.error_detail.is_some(), "{nack:?}");
    assert_eq!(nack.response_nonce, "n5");

    // Version 6 is good again: applied (a and b) and ACKed.
    responses
        .send(Ok(clusters(
            "6",
            "n6",
            &[cluster("a", 81), cluster("b", 86)],
        )))
        .await
        .unwrap();
    assert_ack(&next(&mut requests).await, "6", "n6");
    let applied = until(&mut seen, "version 6", |s| match s {
        Seen::Applied(Kind::Cluster, next) => Some(next.clone()),
        _ => None,
    })
    .await;
    assert_eq!(cluster_names(&applied), ["a", "b"]);
    // `a` did not change: it keeps the version that brought it.
    assert_eq!(applied.clusters["a"].version, "1");
    assert_eq!(applied.clusters["b"].version, "6");

    // The sink refuses version 7: NACKed with its message, version 6 kept.
    *sink.refuse.lock().unwrap() = Some("the proxy cannot take it".into());
    responses
        .send(Ok(clusters("7", "n7", &[cluster("c", 87)])))
        .await
        .unwrap();
    let message = nack_message(&next(&mut requests).await, "6", "n7");
    assert_eq!(message, "the proxy cannot take it");
    *sink.refuse.lock().unwrap() = None;

    client.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_the_clusters_and_a_restarted_server_gets_the_next_version() {
    let (mut server, address) = ScriptedServer::start("127.0.0.1:0".parse().unwrap()).await;
    let (sink, mut seen) = recorder();
    let mut opts = options(false);
    opts.listeners = false;
    opts.set_node_on_first_message_only = false;
    let client = ads_client::spawn(server_at(address), opts, sink);
    let (mut requests, responses) = server.sotw_stream().await;
    assert_eq!(next(&mut requests).await.type_url, CLUSTER);
    until(&mut seen, "connected", |s| {
        matches!(s, Seen::Event(Event::Connected)).then_some(())
    })
    .await;

    // An EDS cluster: the client asks for its endpoints by name; the initial fetch waits for them.
    responses
        .send(Ok(clusters("1", "c1", &[eds_cluster("backend")])))
        .await
        .unwrap();
    // As Envoy: the new subscription goes out before the ACK of the response that led to it.
    let eds = next(&mut requests).await;
    assert_eq!(
        (eds.type_url.as_str(), eds.resource_names.clone()),
        (ENDPOINTS, vec!["backend".to_string()])
    );
    let ack = next(&mut requests).await;
    assert_ack(&ack, "1", "c1");
    assert!(ack.node.is_some(), "the node goes with every request");
    let assignment = endpoint_pb::ClusterLoadAssignment {
        cluster_name: "backend".into(),
        ..cluster("backend", 90).load_assignment.unwrap()
    };
    responses
        .send(Ok(DiscoveryResponse {
            version_info: "e1".into(),
            type_url: ENDPOINTS.into(),
            nonce: "e1".into(),
            resources: vec![any(&assignment, ENDPOINTS)],
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_ack(&next(&mut requests).await, "e1", "e1");
    let mut applied = None;
    until(&mut seen, "the initial fetch", |s| match s {
        Seen::Applied(Kind::Endpoints, next) => {
            applied = Some(next.clone());
            None
        }
        Seen::Event(Event::InitialFetchDone) => Some(()),
        _ => None,
    })
    .await;
    assert!(
        applied
            .expect("endpoints applied first")
            .endpoints
            .contains_key("backend")
    );

    // The server goes away: Disconnected, and the state stays.
    drop(requests);
    drop(responses);
    server.stop().await;
    until(&mut seen, "the disconnection", |s| {
        matches!(s, Seen::Event(Event::Disconnected)).then_some(())
    })
    .await;

    // Back on the same port: the client reconnects with its accepted versions and no nonces.
    let (mut server, _) = ScriptedServer::start(address).await;
    let (mut requests, responses) = server.sotw_stream().await;
    let cds = next(&mut requests).await;
    assert_eq!(
        (
            cds.type_url.as_str(),
            cds.version_info.as_str(),
            cds.response_nonce.as_str()
        ),
        (CLUSTER, "1", "")
    );
    let eds = next(&mut requests).await;
    assert_eq!(
        (
            eds.type_url.as_str(),
            eds.version_info.as_str(),
            eds.resource_names.clone()
        ),
        (ENDPOINTS, "e1", vec!["backend".to_string()])
    );
    until(&mut seen, "connected again", |s| {
        matches!(s, Seen::Event(Event::Connected)).then_some(())
    })
    .await;

    // The next version: the EDS cluster replaced by a static one; its endpoints are dropped and unsubscribed.
    responses
        .send(Ok(clusters("2", "c2", &[cluster("static", 91)])))
        .await
        .unwrap();
    let eds = next(&mut requests).await;
    assert_eq!(eds.type_url, ENDPOINTS);
    assert!(eds.resource_names.is_empty());
    assert_ack(&next(&mut requests).await, "2", "c2");
    let applied = until(&mut seen, "version 2", |s| match s {
        Seen::Applied(Kind::Cluster, next) => Some(next.clone()),
        _ => None,
    })
    .await;
    assert_eq!(cluster_names(&applied), ["static"]);
    assert!(applied.endpoints.is_empty());

    client.shutdown().await;
    drop((requests, responses));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_nacks_keep_what_the_client_holds_and_reconnects_say_so() {
    let (mut server, address) = ScriptedServer::start("127.0.0.1:0".parse().unwrap()).await;
    let (sink, mut seen) = recorder();
    let mut opts = options(true);
    opts.listeners = false;
    let client = ads_client::spawn(server_at(address), opts, sink);
    let (mut requests, responses) = server.delta_stream().await;
    let first = next(&mut requests).await;
    assert_eq!(first.type_url, CLUSTER);
    assert!(
        first.resource_names_subscribe.is_empty() && first.initial_resource_versions.is_empty()
    );

    let resource = |c: &cluster_pb::Cluster, version: &str| Resource {
        name: c.name.clone(),
        version: version.into(),
        resource: Some(any(c, CLUSTER)),
        ..Default::default()
    };
    let response =
        |nonce: &str, resources: Vec<Resource>, removed: &[&str]| DeltaDiscoveryResponse {
            system_version_info: nonce.into(),
            type_url: CLUSTER.into(),
            nonce: nonce.into(),
            resources,
            removed_resources: removed.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
    responses
        .send(Ok(response(
            "d1",
            vec![
                resource(&cluster("a", 81), "va"),
                resource(&cluster("b", 82), "vb"),
            ],
            &[],
        )))
        .await
        .unwrap();
    let ack = next(&mut requests).await;
    assert!(
        ack.error_detail.is_none() && ack.response_nonce == "d1",
        "{ack:?}"
    );

    // An invalid cluster: NACKed, nothing of the response taken (not even the removal).
    let mut maglev = cluster("m", 83);
    maglev.lb_policy = cluster_pb::cluster::LbPolicy::LoadBalancingPolicyConfig as i32;
    responses
        .send(Ok(response("d2", vec![resource(&maglev, "vm")], &["a"])))
        .await
        .unwrap();
    let nack = next(&mut requests).await;
    assert_eq!(nack.response_nonce, "d2");
    let message = nack.error_detail.expect("a NACK").message;
    assert!(
        message.starts_with("error: Cluster \"m\".lb_policy: "),
        "{message}"
    );

    // A removal alone is applied.
    responses
        .send(Ok(response("d3", Vec::new(), &["a"])))
        .await
        .unwrap();
    assert!(next(&mut requests).await.error_detail.is_none());
    let applied = until(&mut seen, "the removal", |s| match s {
        Seen::Applied(Kind::Cluster, next) if !next.clusters.contains_key("a") => {
            Some(next.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(cluster_names(&applied), ["b"]);

    // A new stream says what the client holds.
    drop((requests, responses));
    server.stop().await;
    let (mut server, _) = ScriptedServer::start(address).await;
    let (mut requests, responses) = server.delta_stream().await;
    let resumed = next(&mut requests).await;
    assert_eq!(resumed.type_url, CLUSTER);
    assert!(resumed.response_nonce.is_empty());
    assert_eq!(
        resumed
            .initial_resource_versions
            .into_iter()
            .collect::<Vec<_>>(),
        [("b".to_string(), "vb".to_string())]
    );
    client.shutdown().await;
    drop((requests, responses));
    server.stop().await;
}

/// TTL over a real delta stream: a cluster sent with a TTL stays while body-less heartbeats refresh it, and
/// once they stop it is removed (a new state for the sink) while the stream stays quiet: the client wakes up
/// for the expiry itself. A cluster without a TTL stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_resources_with_a_ttl_expire_unless_refreshed() {
    let (mut server, address) = ScriptedServer::start("127.0.0.1:0".parse().unwrap()).await;
    let (sink, mut seen) = recorder();
    let mut opts = options(true);
    opts.listeners = false;
    let client = ads_client::spawn(server_at(address), opts, sink);
    let (mut requests, responses) = server.delta_stream().await;
    next(&mut requests).await;
    let ttl = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 0,
        nanos: 600_000_000,
    });
    let with_ttl = |c: Option<&cluster_pb::Cluster>| Resource {
        name: "t".into(),
        version: "vt".into(),
        resource: c.map(|c| any(c, CLUSTER)),
        ttl,
        ..Default::default()
    };
    let response = |nonce: &str, resources: Vec<Resource>| DeltaDiscoveryResponse {
        system_version_info: "1".into(),
        type_url: CLUSTER.into(),
        nonce: nonce.into(),
        resources,
        ..Default::default()
    };
    let plain = Resource {
        name: "a".into(),
        version: "va".into(),
        resource: Some(any(&cluster("a", 81), CLUSTER)),
        ..Default::default()
    };
    responses
        .send(Ok(response(
            "h0",
            vec![with_ttl(Some(&cluster("t", 82))), plain],
        )))
        .await
        .unwrap();
    assert!(next(&mut requests).await.error_detail.is_none());
    let started = tokio::time::Instant::now();
    // Heartbeats every 300 ms for 1.5 s (2.5 TTLs): nothing removed.
    for i in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        responses
            .send(Ok(response(&format!("h{i}"), vec![with_ttl(None)])))
            .await
            .unwrap();
        assert!(
            next(&mut requests).await.error_detail.is_none(),
            "heartbeat {i} ACKed"
        );
    }
    while let Ok(s) = seen.try_recv() {
        if let Seen::Applied(_, next) = s {
            assert!(
                next.clusters.contains_key("t"),
                "removed despite heartbeats"
            );
        }
    }
    // Silence: gone about 600 ms after the last heartbeat, `a` kept.
    let last = tokio::time::Instant::now();
    let applied = until(&mut seen, "the expiry", |s| match s {
        Seen::Applied(Kind::Cluster, next) if !next.clusters.contains_key("t") => {
            Some(next.clone())
        }
        _ => None,
    })
    .await;
    let waited = last.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?} (started {:?} ago)",
        started.elapsed()
    );
    assert_eq!(cluster_names(&applied), ["a"]);
    until(&mut seen, "the expiry counted as an update", |s| {
        matches!(s, Seen::Event(Event::UpdateSuccess(Kind::Cluster, v)) if v.is_empty())
            .then_some(())
    })
    .await;
    client.shutdown().await;
    drop((requests, responses));
    server.stop().await;
}
