//! The client's state without a network: what the initial fetch waits for, what a response removes, and the
//! initial fetch timeout on paused time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::state::{Incoming, InitialFetch, State, Update};
use super::*;
use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::core::v3 as core_pb;
use envoy_types::pb::google::protobuf::Any;
use outrigger_config::model::Node;
use prost::Message;
use std::sync::Mutex;

#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<(Kind, Resources)>>,
    events: Mutex<Vec<Event>>,
}

impl Sink for Recorder {
    fn apply(&self, kind: Kind, next: &Resources) -> Result<(), String> {
        self.applied.lock().unwrap().push((kind, next.clone()));
        Ok(())
    }
    fn event(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn done(&self) -> bool {
        self.events
            .lock()
            .unwrap()
            .contains(&Event::InitialFetchDone)
    }
}

fn options() -> Options {
    Options {
        node: Node {
            id: "n".into(),
            ..Default::default()
        },
        delta: false,
        set_node_on_first_message_only: false,
        listeners: false,
        clusters: true,
        static_route_names: Vec::new(),
        static_endpoint_names: Vec::new(),
        static_secret_names: Vec::new(),
        initial_fetch_timeout: DEFAULT_INITIAL_FETCH_TIMEOUT,
        api: Api::Aggregated,
        extra_secret_names: None,
    }
}

fn state(options: Options) -> (State, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let state = State::new(options, sink.clone(), InitialFetch::new(sink.clone()));
    (state, sink)
}

fn eds_cluster(name: &str, service: &str) -> Any {
    use cluster_pb::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
    let cluster = cluster_pb::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(core_pb::ConfigSource {
                config_source_specifier: Some(core_pb::config_source::ConfigSourceSpecifier::Ads(
                    core_pb::AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: service.into(),
        }),
        ..Default::default()
    };
    Any {
        type_url: Kind::Cluster.type_url().into(),
        value: cluster.encode_to_vec(),
    }
}

fn assignment(name: &str) -> Any {
    let assignment = envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
        cluster_name: name.into(),
        ..Default::default()
    };
    Any {
        type_url: Kind::Endpoints.type_url().into(),
        value: assignment.encode_to_vec(),
    }
}

fn update(kind: Kind, version: &str, resources: Vec<Any>, removed: &[&str]) -> Update {
    Update {
        kind,
        version: version.into(),
        resources: resources
            .into_iter()
            .map(|any| Incoming::plain(None, version.into(), Some(any)))
            .collect(),
        removed: removed.iter().map(|r| r.to_string()).collect(),
        full_set: kind.is_wildcard(),
        per_resource_versions: false,
    }
}

#[test]
fn the_initial_fetch_waits_for_the_endpoints_the_clusters_name() {
    let (mut state, sink) = state(options());
    assert!(!sink.done());
    state
        .apply(update(
            Kind::Cluster,
            "1",
            vec![eds_cluster("a", ""), eds_cluster("b", "b.svc")],
            &[],
        ))
        .unwrap();
    assert_eq!(
        state
            .wanted(Kind::Endpoints)
            .into_iter()
            .collect::<Vec<_>>(),
        ["a", "b.svc"]
    );
    assert!(!sink.done(), "endpoints still missing");
    state
        .apply(update(Kind::Endpoints, "e1", vec![assignment("a")], &[]))
        .unwrap();
    assert!(!sink.done(), "b.svc still missing");
    // A delta server saying b.svc does not exist ends the wait too.
    state
        .apply(update(Kind::Endpoints, "e2", Vec::new(), &["b.svc"]))
        .unwrap();
    assert!(sink.done());
}

#[test]
fn nothing_to_wait_for_is_done_at_once_and_a_refused_first_response_ends_the_wait() {
    let mut nothing = options();
    nothing.clusters = false;
    let (_, sink) = state(nothing);
    assert!(sink.done());

    let (mut state, sink) = state(options());
    let bad = eds_cluster("", "");
    let refused = state.apply(update(Kind::Cluster, "1", vec![bad], &[]));
    assert!(refused.is_err());
    assert!(
        sink.done(),
        "Envoy's initial fetch ends on a rejected response too"
    );
    assert!(sink.applied.lock().unwrap().is_empty());
}

#[test]
fn endpoints_nobody_names_are_dropped_and_unchanged_responses_are_not_applied_again() {
    let (mut state, sink) = state(options());
    state
        .apply(update(Kind::Cluster, "1", vec![eds_cluster("a", "")], &[]))
        .unwrap();
    state
        .apply(update(
            Kind::Endpoints,
            "e1",
            vec![assignment("a"), assignment("unasked")],
            &[],
        ))
        .unwrap();
    assert_eq!(
        state.resources().endpoints.keys().collect::<Vec<_>>(),
        ["a"],
        "what nobody asked for is not kept"
    );
    let applied = sink.applied.lock().unwrap().len();
    // The same clusters under a new version: ACKed, not applied again, the version that brought them kept.
    state
        .apply(update(Kind::Cluster, "2", vec![eds_cluster("a", "")], &[]))
        .unwrap();
    assert_eq!(sink.applied.lock().unwrap().len(), applied);
    assert_eq!(state.resources().clusters["a"].version, "1");
    assert_eq!(state.accepted(Kind::Cluster), "2");
    // The cluster goes (a whole set without it): its endpoints go with it.
    state
        .apply(update(Kind::Cluster, "3", Vec::new(), &[]))
        .unwrap();
    assert!(state.resources().clusters.is_empty());
    assert!(state.resources().endpoints.is_empty());
    let events = sink.events.lock().unwrap().clone();
    assert!(events.contains(&Event::UpdateSuccess(Kind::Cluster, "3".into())));
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == Event::UpdateAttempt(Kind::Cluster))
            .count(),
        3
    );
}

/// With no control plane at all, the initial fetch ends when its timeout passes (on paused time: exactly
/// then), the client keeps retrying, and never says it is connected.
#[tokio::test(start_paused = true)]
async fn the_initial_fetch_times_out_without_a_server() {
    let sink = Arc::new(Recorder::default());
    let mut options = options();
    options.initial_fetch_timeout = Duration::from_secs(3);
    let start = tokio::time::Instant::now();
    // Port 1 on loopback: refused at once.
    let server = Server::plaintext("xds", "127.0.0.1:1");
    let handle = spawn(server, options, sink.clone());
    while !sink.done() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3200),
        "{waited:?}"
    );
    let events = sink.events.lock().unwrap().clone();
    assert!(!events.contains(&Event::Connected));
    assert!(events.contains(&Event::InitialFetchTimedOut), "{events:?}");
    handle.shutdown().await;
}

/// A cluster in a SotW `Resource` wrapper with a TTL, as the stream unwraps it.
fn wrapped(any: Option<Any>, name: &str, version: &str, ttl_ms: i64) -> Any {
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    let wrapper = Resource {
        name: name.into(),
        version: version.into(),
        resource: any,
        ttl: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: ttl_ms / 1000,
            nanos: i32::try_from(ttl_ms % 1000 * 1_000_000).unwrap(),
        }),
        ..Default::default()
    };
    Any {
        type_url: "type.googleapis.com/envoy.service.discovery.v3.Resource".into(),
        value: wrapper.encode_to_vec(),
    }
}

fn sotw_update(kind: Kind, version: &str, accepted: &str, resources: Vec<Any>) -> Update {
    Update {
        kind,
        version: version.into(),
        resources: resources
            .into_iter()
            .map(|any| super::sotw::incoming(any, version, accepted))
            .collect(),
        removed: Vec::new(),
        full_set: kind.is_wildcard(),
        per_resource_versions: false,
    }
}

/// Envoy's TTL: a wrapped resource goes when its TTL passes; a heartbeat (the wrapper again without the
/// resource, same version) refreshes it; the expiry is a state offered to the sink, counted as an update of
/// version "". Unwrapped resources never expire.
#[tokio::test(start_paused = true)]
async fn a_resource_sent_with_a_ttl_expires_unless_a_heartbeat_refreshes_it() {
    let (mut state, sink) = state(options());
    state
        .apply(sotw_update(
            Kind::Cluster,
            "1",
            "",
            vec![
                wrapped(Some(eds_cluster("t", "")), "t", "1", 2000),
                eds_cluster("a", ""),
            ],
        ))
        .unwrap();
    assert_eq!(state.resources().clusters.len(), 2);
    let first = state.next_expiry().expect("t expires");
    assert_eq!(first - tokio::time::Instant::now(), Duration::from_secs(2));

    // A heartbeat 1.5 s later: same version, no body. Nothing is applied, the expiry moves.
    tokio::time::advance(Duration::from_millis(1500)).await;
    let applied = sink.applied.lock().unwrap().len();
    state
        .apply(sotw_update(
            Kind::Cluster,
            "1",
            "1",
            vec![wrapped(None, "t", "1", 2000), eds_cluster("a", "")],
        ))
        .unwrap();
    assert_eq!(
        sink.applied.lock().unwrap().len(),
        applied,
        "a heartbeat changes nothing"
    );
    assert_eq!(
        state.next_expiry(),
        Some(first + Duration::from_millis(1500))
    );
    tokio::time::advance(Duration::from_millis(1500)).await;
    state.expire();
    assert!(state.resources().clusters.contains_key("t"), "refreshed");

    // No more heartbeats: gone 2 s after the last one, as a state without it; "a" stays.
    tokio::time::advance(Duration::from_millis(500)).await;
    state.expire();
    assert_eq!(state.resources().clusters.keys().collect::<Vec<_>>(), ["a"]);
    let (kind, last) = sink.applied.lock().unwrap().last().cloned().unwrap();
    assert_eq!(kind, Kind::Cluster);
    assert!(!last.clusters.contains_key("t"));
    assert_eq!(state.next_expiry(), None);
    let events = sink.events.lock().unwrap().clone();
    assert!(events.contains(&Event::UpdateSuccess(Kind::Cluster, String::new())));
    assert!(events.contains(&Event::Delivered(
        Kind::Cluster,
        vec!["t".into()],
        String::new()
    )));
    // The version sent back in requests stays the last accepted response's.
    assert_eq!(state.accepted(Kind::Cluster), "1");

    // A body-less wrapper of another version is no heartbeat: refused.
    let refused = state.apply(sotw_update(
        Kind::Cluster,
        "2",
        "1",
        vec![wrapped(None, "a", "0", 1000)],
    ));
    assert!(refused.unwrap_err().contains("not a heartbeat"));
}

/// A resource sent again without a TTL no longer expires (Envoy clears its TTL).
#[tokio::test(start_paused = true)]
async fn a_resource_sent_again_without_a_ttl_no_longer_expires() {
    let (mut state, _sink) = state(options());
    state
        .apply(sotw_update(
            Kind::Cluster,
            "1",
            "",
            vec![wrapped(Some(eds_cluster("t", "")), "t", "1", 1000)],
        ))
        .unwrap();
    assert!(state.next_expiry().is_some());
    state
        .apply(sotw_update(
            Kind::Cluster,
            "2",
            "1",
            vec![eds_cluster("t", "")],
        ))
        .unwrap();
    assert_eq!(state.next_expiry(), None);
    tokio::time::advance(Duration::from_secs(5)).await;
    state.expire();
    assert!(state.resources().clusters.contains_key("t"));
}

/// An LDS response holding an API listener (for proxyless gRPC clients): as Envoy 1.40, that listener is left
/// out with a warning and the rest of the response is accepted (ACKed).
#[test]
fn an_api_listener_in_lds_is_skipped_and_the_response_accepted() {
    use envoy_types::pb::envoy::config::listener::v3 as listener_pb;
    let mut options = options();
    options.listeners = true;
    let (mut state, _sink) = state(options);
    let api = listener_pb::Listener {
        name: "grpc-target".into(),
        api_listener: Some(listener_pb::ApiListener {
            api_listener: Some(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".into(),
                value: Vec::new(),
            }),
        }),
        ..Default::default()
    };
    let any = Any {
        type_url: Kind::Listener.type_url().into(),
        value: api.encode_to_vec(),
    };
    state
        .apply(update(Kind::Listener, "1", vec![any], &[]))
        .expect("accepted");
    assert!(state.resources().listeners.is_empty());
    assert_eq!(state.accepted(Kind::Listener), "1");
}

/// Per-resource events, as Envoy's subscriptions count: a subscription's start once, the names an update
/// carried, and on a refusal every name subscribed to.
#[test]
fn subscriptions_deliveries_and_refusals_name_their_resources() {
    let mut options = options();
    options.clusters = false;
    options.static_secret_names = vec!["cert".into()];
    let (mut state, sink) = state(options);
    let secret = |name: &str| {
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
        let ca = core_pb::DataSource {
            specifier: Some(core_pb::data_source::Specifier::InlineString(
                include_str!("../../../tests/configs/certs/ca.pem").into(),
            )),
            ..Default::default()
        };
        let secret = tls_pb::Secret {
            name: name.into(),
            r#type: Some(tls_pb::secret::Type::ValidationContext(
                tls_pb::CertificateValidationContext {
                    trusted_ca: Some(ca),
                    ..Default::default()
                },
            )),
        };
        Any {
            type_url: Kind::Secret.type_url().into(),
            value: secret.encode_to_vec(),
        }
    };
    state
        .apply(update(Kind::Secret, "1", vec![secret("cert")], &[]))
        .unwrap();
    // A secret without a name: refused; every subscribed secret counts it.
    assert!(
        state
            .apply(update(Kind::Secret, "2", vec![secret("")], &[]))
            .is_err()
    );
    let events = sink.events.lock().unwrap().clone();
    let subscribed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Subscribed(..)))
        .collect();
    assert_eq!(
        subscribed,
        [&Event::Subscribed(Kind::Secret, vec!["cert".into()])]
    );
    assert!(events.contains(&Event::Delivered(
        Kind::Secret,
        vec!["cert".into()],
        "1".into()
    )));
    assert!(events.contains(&Event::Refused(Kind::Secret, vec!["cert".into()])));
}

/// Over delta, the server's removal of a route configuration is ignored and the last one kept (Envoy's RDS
/// subscription logs it and ignores it); a removal of endpoints is taken.
#[test]
fn a_delta_removal_of_a_route_configuration_is_ignored_as_envoy_does() {
    let (mut state, _sink) = state(Options {
        delta: true,
        static_route_names: vec!["r".into()],
        ..options()
    });
    let route = envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
        name: "r".into(),
        ..Default::default()
    };
    let route = Any {
        type_url: Kind::Route.type_url().into(),
        value: route.encode_to_vec(),
    };
    state
        .apply(update(Kind::Route, "1", vec![route], &[]))
        .unwrap();
    state
        .apply(update(Kind::Route, "2", Vec::new(), &["r"]))
        .unwrap();
    assert!(
        state.resources().routes.contains_key("r"),
        "the removed route configuration is kept"
    );
    assert_eq!(state.accepted(Kind::Route), "2");

    state
        .apply(update(Kind::Cluster, "1", vec![eds_cluster("a", "")], &[]))
        .unwrap();
    state
        .apply(update(Kind::Endpoints, "e1", vec![assignment("a")], &[]))
        .unwrap();
    state
        .apply(update(Kind::Endpoints, "e2", Vec::new(), &["a"]))
        .unwrap();
    assert!(state.resources().endpoints.is_empty(), "endpoints removed");
}
