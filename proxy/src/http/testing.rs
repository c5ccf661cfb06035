//! Fixtures shared by the unit tests of the route stack (retry, hedge): a cluster that is never dialled, a
//! request aimed at it, an upstream response, and a retry policy with Envoy's defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::attempt::{Target, UpstreamHost};
use super::local_reply::{self, ResponseBody};
use super::replay_body::RequestBody;
use crate::upstream::ClusterState;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use outrigger_config::model::route::{RetryOn, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

/// A STATIC cluster of two hosts on 198.18.0.1 and .2 (never connected to), with `max_retries`.
pub fn cluster(max_retries: u32) -> Arc<ClusterState> {
    let yaml = format!(
        r#"
static_resources:
  clusters:
  - name: backend
    connect_timeout: 1s
    circuit_breakers: {{thresholds: [{{max_retries: {max_retries}}}]}}
    load_assignment:
      cluster_name: backend
      endpoints: [{{lb_endpoints: [
        {{endpoint: {{address: {{socket_address: {{address: 198.18.0.1, port_value: 80}}}}}}}},
        {{endpoint: {{address: {{socket_address: {{address: 198.18.0.2, port_value: 80}}}}}}}}]}}]
"#
    );
    let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
        .expect("the test cluster loads");
    ClusterState::new(
        loaded.snapshot.clusters[0].clone(),
        &crate::tls::Contexts::default(),
        &crate::metrics::Metrics::new(),
    )
}

/// A request to `cluster` whose body retries can replay.
pub fn request(cluster: &Arc<ClusterState>, body: &'static str) -> Request<RequestBody> {
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut request = Request::new(RequestBody::replayable(body, 1024));
    request.extensions_mut().insert(Target {
        cluster: cluster.clone(),
        destination: "198.18.0.9:80".parse().unwrap(),
        own_addresses: Arc::from(Vec::new()),
        downstream_version: http::Version::HTTP_11,
        auto_host: false,
        attempt_count_header: false,
        notes: None,
        hash: None,
    });
    request
}

/// An upstream response from `host`.
pub fn response(status: u16, host: &str) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::empty());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .extensions_mut()
        .insert(UpstreamHost(host.parse().unwrap()));
    response
}

/// A retry policy on `retry_on` with Envoy's defaults otherwise.
pub fn policy(retry_on: &[RetryOn], num_retries: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on: retry_on.to_vec(),
        num_retries,
        per_try_timeout: None,
        per_try_idle_timeout: None,
        back_off_base: Duration::from_millis(25),
        back_off_max: Duration::from_millis(250),
        retriable_status_codes: vec![],
        avoid_previous_hosts: false,
        host_selection_retry_max_attempts: 1,
        retriable_headers: vec![],
        retriable_request_headers: vec![],
        rate_limited_back_off: None,
    }
}
