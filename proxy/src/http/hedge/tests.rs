//! Hedging with a mock upstream and paused time.

use super::*;
use crate::http::testing::{cluster, policy, request, response};
use http_body_util::BodyExt;
use outrigger_config::model::route::RetryOn;
use tower::ServiceExt;
use tower_test::mock;

fn config() -> Arc<RetryPolicy> {
    let mut policy = policy(&[RetryOn::FiveXx], 2);
    policy.per_try_timeout = Some(Duration::from_millis(100));
    policy.back_off_base = Duration::from_millis(1);
    policy.back_off_max = Duration::from_millis(1);
    Arc::new(policy)
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
    let cluster = cluster(3);
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster, "q")));
    let (_first, slow) = handle.next_request().await.unwrap();
    // The per-try timeout passes: a second attempt starts while the first is still out.
    let (second, fast) = handle.next_request().await.unwrap();
    assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "q");
    fast.send_response(response(200, "198.18.0.1:80"));
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(cluster.stats.retry.get(), 1);
    assert_eq!(cluster.stats.retry_success.get(), 1);
    // The first attempt's answer is no longer wanted.
    drop(slow);
}

#[tokio::test(start_paused = true)]
async fn a_retriable_answer_waits_for_the_other_attempt() {
    let cluster = cluster(3);
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster, "q")));
    let (_first, first) = handle.next_request().await.unwrap();
    let (_second, second) = handle.next_request().await.unwrap();
    // The hedged attempt fails with a 503 while the first is still out: dropped, not returned.
    second.send_response(response(503, "198.18.0.1:80"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!call.is_finished());
    first.send_response(response(200, "198.18.0.1:80"));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn hedges_stop_at_num_retries() {
    let cluster = cluster(3);
    let (hedge, mut handle) = hedging();
    let call = tokio::spawn(hedge.oneshot(request(&cluster, "q")));
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(handle.next_request().await.unwrap().1);
    }
    // num_retries is 2: no fourth attempt, however long the wait.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!call.is_finished());
    assert_eq!(cluster.stats.retry.get(), 2);
    answers
        .pop()
        .unwrap()
        .send_response(response(200, "198.18.0.1:80"));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}
