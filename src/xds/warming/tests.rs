#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use outrigger_config::model::RouteConfig;
use outrigger_config::model::cluster::ClusterEndpoints;

/// Static resources to borrow as dynamic ones: listener `l` (RDS `r`, 2 s), listener `tls` (SDS secret
/// `cert`, 1 s), cluster `c` (EDS service `c`, 2 s), cluster `forever` (EDS, `0s`).
const BOOTSTRAP: &str = r#"
node: {id: n, cluster: c}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3}
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10001}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          rds: {route_config_name: r, config_source: {ads: {}, initial_fetch_timeout: 2s}}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  - name: tls
    address: {socket_address: {address: 127.0.0.1, port_value: 10002}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}, initial_fetch_timeout: 1s}}]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
  clusters:
  - name: xds
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]}
  - name: c
    type: EDS
    eds_cluster_config: {eds_config: {ads: {}, initial_fetch_timeout: 2s}}
  - name: forever
    type: EDS
    eds_cluster_config: {eds_config: {ads: {}, initial_fetch_timeout: 0s}}
  - name: mtls
    type: EDS
    eds_cluster_config: {eds_config: {ads: {}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [{name: client, sds_config: {ads: {}, initial_fetch_timeout: 3s}}]
"#;

fn bootstrap() -> Snapshot {
    outrigger_config::load_bytes(BOOTSTRAP.as_bytes(), outrigger_config::Format::Yaml)
        .map_err(|d| {
            format!(
                "{:?}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        })
        .unwrap()
        .snapshot
}

fn listener(snapshot: &Snapshot, name: &str) -> Versioned<Listener> {
    Versioned::new(snapshot.listener(name).unwrap().clone(), "1")
}

fn cluster(snapshot: &Snapshot, name: &str) -> Versioned<Cluster> {
    Versioned::new(snapshot.cluster(name).unwrap().clone(), "1")
}

fn endpoints(name: &str) -> Versioned<ClusterEndpoints> {
    Versioned::new(
        ClusterEndpoints {
            cluster_name: name.into(),
            localities: Vec::new(),
            overprovisioning_factor: 140,
        },
        "1",
    )
}

fn routes(name: &str) -> Versioned<RouteConfig> {
    Versioned::new(
        RouteConfig {
            name: name.into(),
            validate_clusters: false,
            virtual_hosts: Vec::new(),
            headers: Default::default(),
        },
        "1",
    )
}

/// A bootstrap with no static listeners or clusters but the control plane's.
fn empty(snapshot: &Snapshot) -> Snapshot {
    let mut empty = snapshot.clone();
    empty.listeners.clear();
    empty.clusters.retain(|c| c.name == "xds");
    empty
}

#[test]
fn dependencies_carry_their_config_sources_timeouts() {
    let snapshot = bootstrap();
    let secs = |s| Some(Duration::from_secs(s));
    assert_eq!(
        listener_dependencies(snapshot.listener("l").unwrap()),
        [Dependency {
            kind: Kind::Route,
            name: "r".into(),
            timeout: secs(2)
        }]
    );
    assert_eq!(
        listener_dependencies(snapshot.listener("tls").unwrap()),
        [Dependency {
            kind: Kind::Secret,
            name: "cert".into(),
            timeout: secs(1)
        }]
    );
    assert_eq!(
        cluster_dependencies(snapshot.cluster("forever").unwrap()),
        [Dependency {
            kind: Kind::Endpoints,
            name: "forever".into(),
            timeout: None
        }]
    );
    assert_eq!(
        cluster_dependencies(snapshot.cluster("mtls").unwrap()),
        [
            Dependency {
                kind: Kind::Endpoints,
                name: "mtls".into(),
                timeout: secs(15)
            },
            Dependency {
                kind: Kind::Secret,
                name: "client".into(),
                timeout: secs(3)
            },
        ]
    );
    assert!(cluster_dependencies(snapshot.cluster("xds").unwrap()).is_empty());
}

#[test]
fn a_new_cluster_is_not_in_force_until_its_endpoints_or_its_timeout() {
    let snapshot = bootstrap();
    let statics = empty(&snapshot);
    let start = Instant::now();
    let mut warming = Warming::new(start);
    let mut next = Resources::default();
    next.clusters.insert("c".into(), cluster(&snapshot, "c"));
    let (selected, _) = warming.select(&statics, &next, start);
    assert!(selected.clusters.is_empty());
    assert_eq!(warming.deadline, Some(start + Duration::from_secs(2)));
    assert_eq!(warming.cluster_counts(), (1, 0));
    assert!(!warming.settled());
    // Still warming a second later (the warming started with the first state that had it).
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(1));
    assert!(selected.clusters.is_empty());
    // The endpoints arrive: in force.
    let mut with_endpoints = next.clone();
    with_endpoints.endpoints.insert("c".into(), endpoints("c"));
    let (selected, _) =
        warming
            .clone()
            .select(&statics, &with_endpoints, start + Duration::from_secs(1));
    assert!(selected.clusters.contains_key("c"));
    // Or the timeout passes: in force without them.
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(2));
    assert!(selected.clusters.contains_key("c"));
    assert_eq!(warming.deadline, None);
    assert!(warming.settled());
}

#[test]
fn a_changed_cluster_keeps_its_version_before_while_the_new_one_warms() {
    let snapshot = bootstrap();
    let statics = empty(&snapshot);
    let start = Instant::now();
    let mut warming = Warming::new(start);
    let old = cluster(&snapshot, "c");
    let mut next = Resources::default();
    next.clusters.insert("c".into(), old.clone());
    next.endpoints.insert("c".into(), endpoints("c"));
    warming.select(&statics, &next, start);
    // The new version follows another EDS service, which has not arrived; the client no longer holds "c".
    let mut changed = (*old.value).clone();
    changed.discovery = Discovery::Eds {
        service_name: "c-next".into(),
        config_source: ConfigSource::Ads {
            initial_fetch_timeout: Some(Duration::from_secs(2)),
        },
    };
    let mut next = Resources::default();
    next.clusters
        .insert("c".into(), Versioned::new(changed, "2"));
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(1));
    assert!(Arc::ptr_eq(&selected.clusters["c"].value, &old.value));
    assert!(
        selected.endpoints.contains_key("c"),
        "the old version keeps its endpoints"
    );
    assert_eq!(warming.cluster_counts(), (1, 1));
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(3));
    assert!(!Arc::ptr_eq(&selected.clusters["c"].value, &old.value));
    assert!(!selected.endpoints.contains_key("c"));
    // Removed: gone, warming or not.
    let (selected, _) = warming.select(
        &statics,
        &Resources::default(),
        start + Duration::from_secs(4),
    );
    assert!(selected.clusters.is_empty() && warming.settled());
}

#[test]
fn a_changed_listener_keeps_its_version_before_until_its_routes_arrive() {
    let snapshot = bootstrap();
    let statics = empty(&snapshot);
    let start = Instant::now();
    let mut warming = Warming::new(start);
    let old = listener(&snapshot, "l");
    let mut next = Resources::default();
    next.listeners.insert("l".into(), old.clone());
    next.routes.insert("r".into(), routes("r"));
    let (selected, _) = warming.select(&statics, &next, start);
    assert!(selected.listeners.contains_key("l"));
    // A new version (another Arc) naming the same routes, which the client dropped meanwhile... is warm
    // only when they are held; with them it goes at once.
    let renewed = Versioned::new((*old.value).clone(), "2");
    let mut next2 = next.clone();
    next2.listeners.insert("l".into(), renewed.clone());
    let (selected, _) = warming.clone().select(&statics, &next2, start);
    assert!(Arc::ptr_eq(&selected.listeners["l"].value, &renewed.value));
    next2.routes.clear();
    let (selected, _) = warming.select(&statics, &next2, start + Duration::from_millis(500));
    assert!(Arc::ptr_eq(&selected.listeners["l"].value, &old.value));
    assert!(
        selected.routes.contains_key("r"),
        "the old version keeps its routes"
    );
    assert_eq!(warming.listener_counts(), (1, 1, 0));
    assert_eq!(warming.deadline, Some(start + Duration::from_millis(2500)));
}

#[test]
fn static_listeners_warm_from_the_start_and_zero_waits_for_ever() {
    let snapshot = bootstrap();
    let start = Instant::now();
    let mut warming = Warming::new(start);
    let left_out = warming.initial(&snapshot);
    assert_eq!(
        left_out,
        BTreeSet::from(["l".to_string(), "tls".to_string()])
    );
    // `forever` (0s) never times out: no deadline from it; the earliest is the secret's second.
    assert_eq!(warming.deadline, Some(start + Duration::from_secs(1)));
    let (_, left_out) = warming.select(
        &snapshot,
        &Resources::default(),
        start + Duration::from_secs(1),
    );
    assert_eq!(left_out, BTreeSet::from(["l".to_string()]));
    let (_, left_out) = warming.select(
        &snapshot,
        &Resources::default(),
        start + Duration::from_secs(60),
    );
    assert!(left_out.is_empty());
    assert!(
        !warming.settled(),
        "the static EDS cluster with 0s still holds readiness"
    );
    let mut next = Resources::default();
    next.endpoints
        .insert("forever".into(), endpoints("forever"));
    next.endpoints.insert("c".into(), endpoints("c"));
    warming.select(&snapshot, &next, start + Duration::from_secs(61));
    assert!(warming.settled());
}

#[test]
fn a_secret_whose_wait_timed_out_is_not_waited_for_again_while_something_names_it() {
    let snapshot = bootstrap();
    let statics = empty(&snapshot);
    let start = Instant::now();
    let mut warming = Warming::new(start);
    let mut next = Resources::default();
    next.listeners
        .insert("tls".into(), listener(&snapshot, "tls"));
    warming.select(&statics, &next, start);
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(1));
    assert!(
        selected.listeners.contains_key("tls"),
        "timed out: in force"
    );
    // Another listener naming the same secret, later: its subscription already timed out, no wait.
    let mut other = (*snapshot.listener("tls").unwrap()).clone();
    other.name = "tls2".into();
    next.listeners
        .insert("tls2".into(), Versioned::new(other.clone(), "1"));
    let (selected, _) = warming.select(&statics, &next, start + Duration::from_secs(5));
    assert!(selected.listeners.contains_key("tls2"));
    // Once nothing names it, the subscription ends: a later one waits its own second.
    warming.select(
        &statics,
        &Resources::default(),
        start + Duration::from_secs(6),
    );
    let mut again = Resources::default();
    again
        .listeners
        .insert("tls2".into(), Versioned::new(other, "2"));
    let (selected, _) = warming.select(&statics, &again, start + Duration::from_secs(7));
    assert!(selected.listeners.is_empty());
    assert_eq!(warming.deadline, Some(start + Duration::from_secs(8)));
}
