//! The control plane's side of the xDS protocol, spoken to directly with a tonic client: ACKs and stale nonces
//! get no answer, a NACKed version is not sent again, an edit is, names decide what a non-wildcard type gets,
//! and delta streams send only changes and removals (and nothing a reconnecting client already holds).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use outrigger_control_api::control_plane::ControlPlane;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn cluster(name: &str, timeout: &str) -> String {
    format!(
        "- \"@type\": {CLUSTER}\n  name: {name}\n  connect_timeout: {timeout}\n  load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 198.18.0.2, port_value: 80}}}}}}}}]}}]}}\n"
    )
}

fn endpoints(name: &str) -> String {
    format!(
        "- \"@type\": {ENDPOINTS}\n  cluster_name: {name}\n  endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 198.18.0.3, port_value: 80}}}}}}}}]}}]\n"
    )
}

fn write(dir: &Path, file: &str, resources: &[String]) {
    std::fs::write(
        dir.join(file),
        format!("resources:\n{}", resources.concat()),
    )
    .unwrap();
}

struct Server {
    dir: PathBuf,
    address: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn server(test: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("outrigger-ads-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "clusters.yaml", &[cluster("a", "1s")]);
    write(&dir, "endpoints.yaml", &[endpoints("a"), endpoints("b")]);
    let control_plane = ControlPlane::bind(dir.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = format!("http://{}", control_plane.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(control_plane.serve(async move {
        let _ = stopped.await;
    }));
    Server {
        dir,
        address,
        _stop: stop,
    }
}

fn node() -> Option<Node> {
    Some(Node {
        id: "node-1".into(),
        ..Default::default()
    })
}

/// The next message within `wait`, or `None`.
async fn next<T>(stream: &mut Streaming<T>, wait: Duration) -> Option<T> {
    tokio::time::timeout(wait, stream.message())
        .await
        .ok()
        .and_then(|m| m.ok().flatten())
}

fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node(),
        type_url: type_url.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn names(response: &DiscoveryResponse) -> usize {
    response.resources.len()
}

const SOON: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_follows_the_protocol() {
    let server = server("sotw").await;
    let mut client = AggregatedDiscoveryServiceClient::connect(server.address.clone())
        .await
        .unwrap();
    let (send, requests) = mpsc::channel(8);
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();

    // Wildcard clusters: the one cluster.
    send.send(request(CLUSTER, &[], "", "")).await.unwrap();
    let first = next(&mut responses, SOON).await.expect("a first response");
    assert_eq!((first.type_url.as_str(), names(&first)), (CLUSTER, 1));
    // The ACK gets no answer; nor does a stale nonce.
    send.send(request(CLUSTER, &[], &first.version_info, &first.nonce))
        .await
        .unwrap();
    send.send(request(CLUSTER, &[], "", "stale")).await.unwrap();
    assert!(next(&mut responses, QUIET).await.is_none());

    // An edit is pushed: two clusters, a new version.
    write(
        &server.dir,
        "clusters.yaml",
        &[cluster("a", "1s"), cluster("b", "2s")],
    );
    let second = next(&mut responses, SOON).await.expect("the edit");
    assert_eq!(names(&second), 2);
    assert_ne!(second.version_info, first.version_info);
    // NACKed: not sent again while the folder stays the same.
    let mut nack = request(CLUSTER, &[], &first.version_info, &second.nonce);
    nack.error_detail = Some(Status {
        code: 3,
        message: "refused for the test".into(),
        ..Default::default()
    });
    send.send(nack).await.unwrap();
    assert!(next(&mut responses, QUIET).await.is_none());

    // Endpoints by name: only those asked for; asking for more answers again.
    send.send(request(ENDPOINTS, &["a"], "", "")).await.unwrap();
    let one = next(&mut responses, SOON).await.expect("endpoints of a");
    assert_eq!((one.type_url.as_str(), names(&one)), (ENDPOINTS, 1));
    send.send(request(
        ENDPOINTS,
        &["a", "b"],
        &one.version_info,
        &one.nonce,
    ))
    .await
    .unwrap();
    let two = next(&mut responses, SOON)
        .await
        .expect("endpoints of a and b");
    assert_eq!(names(&two), 2);
}

fn delta_request(
    type_url: &str,
    subscribe: &[&str],
    held: &[(&str, &str)],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node(),
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        initial_resource_versions: held
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

async fn delta_stream(
    address: &str,
) -> (
    mpsc::Sender<DeltaDiscoveryRequest>,
    Streaming<DeltaDiscoveryResponse>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(address.to_string())
        .await
        .unwrap();
    let (send, requests) = mpsc::channel(8);
    let responses = client
        .delta_aggregated_resources(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    (send, responses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_sends_changes_and_removals_only() {
    let server = server("delta").await;
    let (send, mut responses) = delta_stream(&server.address).await;
    send.send(delta_request(CLUSTER, &[], &[], ""))
        .await
        .unwrap();
    let first = next(&mut responses, SOON).await.expect("the clusters");
    assert_eq!(first.resources.len(), 1);
    let version = first.resources[0].version.clone();
    send.send(delta_request(CLUSTER, &[], &[], &first.nonce))
        .await
        .unwrap();
    assert!(
        next(&mut responses, QUIET).await.is_none(),
        "an ACK gets no answer"
    );

    // A second cluster: only it is sent.
    write(
        &server.dir,
        "clusters.yaml",
        &[cluster("a", "1s"), cluster("b", "2s")],
    );
    let added = next(&mut responses, SOON).await.expect("the new cluster");
    let sent: Vec<&str> = added.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(sent, ["b"]);
    // The file removed: both go.
    std::fs::remove_file(server.dir.join("clusters.yaml")).unwrap();
    let removed = next(&mut responses, SOON).await.expect("the removal");
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, ["a", "b"]);

    // A reconnecting client that holds `a` in its current version is not sent it again.
    write(&server.dir, "clusters.yaml", &[cluster("a", "1s")]);
    tokio::time::sleep(QUIET).await;
    let (send, mut responses) = delta_stream(&server.address).await;
    send.send(delta_request(CLUSTER, &[], &[("a", &version)], ""))
        .await
        .unwrap();
    let resumed = next(&mut responses, SOON).await.expect("the first answer");
    assert!(resumed.resources.is_empty() && resumed.removed_resources.is_empty());
}
