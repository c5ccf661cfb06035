//! The h2 pool stays bounded: a connection leaves it when it ends or when its endpoint leaves the cluster,
//! concurrent first requests share one connect, and ORIGINAL_DST forgets idle destinations.

use super::*;
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// An h2 backend on 127.0.0.1 that counts the connections it accepts and can drop them all.
struct Backend {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Backend {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (count, held) = (accepted.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let serve = tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_request| async {
                        // A little latency, so concurrent first requests overlap the connect.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                });
                held.lock().unwrap().push(serve);
            }
        });
        Self {
            address,
            accepted,
            connections,
            accept,
        }
    }

    /// Closes every connection it holds (the TCP socket is dropped, as by a crash or an idle close).
    fn close_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
        self.close_connections();
    }
}

fn cluster(yaml_cluster: &str) -> (Arc<ClusterState>, Metrics) {
    let yaml = format!("static_resources:\n  clusters:\n{yaml_cluster}");
    let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
        .expect("loads");
    let config = loaded.snapshot.clusters[0].clone();
    let metrics = Metrics::new();
    let state = ClusterState::new(config, &crate::tls::Contexts::default(), &metrics);
    (state, metrics)
}

fn static_h2(name: &str, backends: &[&Backend]) -> String {
    let endpoints: Vec<String> = backends
        .iter()
        .map(|b| {
            format!(
                "{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}",
                b.address.port()
            )
        })
        .collect();
    format!(
        "  - name: {name}\n    connect_timeout: 2s\n    typed_extension_protocol_options: {{envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {{\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {{http2_protocol_options: {{}}}}}}}}\n    load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{}]}}]}}\n",
        endpoints.join(", ")
    )
}

/// One GET to `address` through the cluster's client; the response body is read to its end.
async fn get(cluster: &ClusterState, address: SocketAddr) -> Result<(), SendError> {
    let request = http::Request::builder()
        .uri("/")
        .header("host", "backend")
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let picked = Picked {
        address,
        transport: 0,
    };
    let (response, stream) = cluster
        .http
        .send(picked, request, http::Version::HTTP_2)
        .await?;
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;
    drop(stream);
    Ok(())
}

fn active(metrics: &Metrics, name: &str) -> i64 {
    metrics
        .cluster_cx_active
        .get_or_create(&crate::metrics::cluster(name))
        .get()
}

fn opened(metrics: &Metrics, name: &str) -> u64 {
    metrics
        .cluster_cx
        .get_or_create(&crate::metrics::cluster(name))
        .get()
}

/// Waits (at most 5 s) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dead_connections_and_removed_endpoints_leave_the_h2_pool() {
    let backends = [
        Backend::start().await,
        Backend::start().await,
        Backend::start().await,
    ];
    let (cluster, metrics) = cluster(&static_h2("c", &backends.iter().collect::<Vec<_>>()));
    for backend in &backends {
        get(&cluster, backend.address).await.unwrap();
    }
    assert_eq!(cluster.http.h2_pooled(), 3);
    assert_eq!(active(&metrics, "c"), 3);

    // The upstream closes its connection: the entry goes, and `upstream_cx_active` with it.
    backends[0].close_connections();
    eventually("the closed connection leaves the pool", || {
        cluster.http.h2_pooled() == 2
    })
    .await;
    eventually("upstream_cx_active 2", || active(&metrics, "c") == 2).await;

    // An endpoint update keeps only the second backend: the third's connection leaves and closes.
    let kept: Vec<Target> = cluster
        .targets()
        .iter()
        .filter(|t| t.address == backends[1].address)
        .cloned()
        .collect();
    cluster.set_targets(kept);
    assert_eq!(cluster.http.h2_pooled(), 1);
    eventually("upstream_cx_active 1", || active(&metrics, "c") == 1).await;

    // The kept connection still serves, without a new connect.
    get(&cluster, backends[1].address).await.unwrap();
    assert_eq!(backends[1].accepted.load(Ordering::SeqCst), 1);
    assert_eq!(opened(&metrics, "c"), 3);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_h2_connect() {
    let backend = Backend::start().await;
    let (cluster, metrics) = cluster(&static_h2("c", &[&backend]));
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let cluster = cluster.clone();
            let address = backend.address;
            tokio::spawn(async move { get(&cluster, address).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap().unwrap();
    }
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(opened(&metrics, "c"), 1, "upstream_cx_total");
    assert_eq!(active(&metrics, "c"), 1);
}

#[tokio::test]
async fn a_failed_connect_fails_every_waiter_and_is_not_pooled() {
    // A port nothing listens on (bound, then released).
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = free.local_addr().unwrap();
    drop(free);
    let yaml = format!(
        "  - name: c\n    connect_timeout: 2s\n    typed_extension_protocol_options: {{envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {{\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {{http2_protocol_options: {{}}}}}}}}\n    load_assignment: {{cluster_name: c, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]}}\n",
        address.port()
    );
    let (cluster, _metrics) = cluster(&yaml);
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let cluster = cluster.clone();
            tokio::spawn(async move { get(&cluster, address).await })
        })
        .collect();
    for request in requests {
        let error = request.await.unwrap().unwrap_err();
        assert!(matches!(error, SendError::Connect(_)), "{error}");
    }
    assert_eq!(
        cluster.http.h2_pooled(),
        0,
        "a failed connect is not pooled"
    );
}

/// Envoy 1.40 keeps an ORIGINAL_DST host while a connection to it is open (idle or not), and forgets it at
/// the `cleanup_interval` sweep after its last connection closed (checked on the real binary: a 1 s interval,
/// the host on `/clusters` with an idle connection for 5 s, gone a second after the connection's idle timeout).
#[tokio::test]
async fn original_dst_forgets_a_destination_idle_for_cleanup_interval() {
    let backends = [Backend::start().await, Backend::start().await];
    let (cluster, metrics) = cluster(
        "  - name: passthrough\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 0.2s\n    connect_timeout: 2s\n    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}\n",
    );
    assert_eq!(cluster.config.cleanup_interval, Duration::from_millis(200));
    for backend in &backends {
        let picked = cluster.pick(Some(backend.address), &[]).unwrap();
        get(&cluster, picked.address).await.unwrap();
    }
    let mut both = vec![backends[0].address, backends[1].address];
    both.sort();
    assert_eq!(cluster.original_destinations(), both);
    assert_eq!(active(&metrics, "passthrough"), 2);
    // Idle connections keep their hosts across several sweeps.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(cluster.original_destinations(), both);
    assert_eq!(cluster.http.h2_pooled(), 2);
    // The connections end: the pool entries go at once, the hosts within two intervals.
    backends[0].close_connections();
    backends[1].close_connections();
    eventually("the pool empties", || cluster.http.h2_pooled() == 0).await;
    eventually("upstream_cx_active 0", || {
        active(&metrics, "passthrough") == 0
    })
    .await;
    eventually("the hosts are forgotten", || {
        cluster.original_destinations().is_empty()
    })
    .await;
}

#[tokio::test]
async fn cleanup_interval_defaults_to_5s_and_refuses_zero() {
    let (cluster, _) =
        cluster("  - name: passthrough\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n");
    assert_eq!(cluster.config.cleanup_interval, Duration::from_secs(5));
    let yaml = "static_resources:\n  clusters:\n  - name: p\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 0s\n";
    let Err(error) = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
    else {
        panic!("cleanup_interval: 0s must be refused, as Envoy does");
    };
    let text = format!("{error:?}");
    assert!(text.contains("cleanup_interval"), "{text}");
}
