//! Hedging with a mock upstream and paused time.

use super::*;
use crate::http::attempt::{Target, UpstreamHost};
use crate::http::local_reply;
use crate::upstream::ClusterState;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use outrigger_config::model::route::RetryOn;
use tower::ServiceExt;
use tower_test::mock;

fn cluster() -> Arc<ClusterState> {
    let yaml = r#"
static_resources:
  clusters:
  - name: backend
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 198.18.0.1, port_value: 80}}}}]}]
"#;
    let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
        .expect("the test cluster loads");
    ClusterState::new(
        loaded.snapshot.clusters[0].clone(),
        &crate::tls::Contexts::default(),
        &crate::metrics::Metrics::new(),
    )
}

fn config() -> Arc<RetryPolicy> {
    Arc::new(RetryPolicy {
        retry_on: vec![RetryOn::FiveXx],
        num_retries: 2,
        per_try_timeout: Some(Duration::from_millis(100)),
        per_try_idle_timeout: None,
        back_off_base: Duration::from_millis(1),
        back_off_max: Duration::from_millis(1),
        retriable_status_codes: vec![],
        avoid_previous_hosts: false,
        host_selection_retry_max_attempts: 1,
        retriable_headers: vec![],
        retriable_request_headers: vec![],
        rate_limited_back_off: None,
    })
}

fn request(cluster: &Arc<ClusterState>) -> Request<RequestBody> {
    let body = Full::new(Bytes::from_static(b"q"))
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
    });
    request
}

fn response(status: u16) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text(status.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .extensions_mut()
        .insert(UpstreamHost("198.18.0.1:80".parse().unwrap()));
    response
}

type Handle = mock::Handle<Request<RequestBody>, Response<ResponseBody>>;

fn hedging() -> (
    Hedge<
        impl Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = Failure,
            Future: Send,
        > + Clone
        + Send
        + 'static,
    >,
    Handle,
) {
    let (service, handle) = mock::pair::<Request<RequestBody>, Response<ResponseBody>>();
    let service = service.map_err(|e| Failure::NoHealthyUpstream(e.to_string()));
    (
        Hedge::new(config(), Duration::from_millis(100), service),
        handle,
    )
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_hedged_and_the_first_good_answer_wins() {
    let cluster = cluster();
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster)));
    let (_first, slow) = handle.next_request().await.unwrap();
    // The per-try timeout passes: a second attempt starts while the first is still out.
    let (second, fast) = handle.next_request().await.unwrap();
    assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "q");
    fast.send_response(response(200));
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(cluster.stats.retry.get(), 1);
    assert_eq!(cluster.stats.retry_success.get(), 1);
    // The first attempt's answer is no longer wanted.
    drop(slow);
}

#[tokio::test(start_paused = true)]
async fn a_retriable_answer_waits_for_the_other_attempt() {
    let cluster = cluster();
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster)));
    let (_first, first) = handle.next_request().await.unwrap();
    let (_second, second) = handle.next_request().await.unwrap();
    // The hedged attempt fails with a 503 while the first is still out: dropped, not returned.
    second.send_response(response(503));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!call.is_finished());
    first.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn hedges_stop_at_num_retries() {
    let cluster = cluster();
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster)));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(handle.next_request().await.unwrap().1);
    }
    // num_retries is 2: no fourth attempt, however long the wait.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!call.is_finished());
    assert_eq!(cluster.stats.retry.get(), 2);
    answers.pop().unwrap().send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}
