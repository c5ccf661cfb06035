//! The retry policy under tower's `Retry`, with a mock upstream and paused time.

use super::*;
use crate::http::local_reply::ResponseBody;
use crate::http::testing::{cluster, policy, request, response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tower::ServiceExt;
use tower_test::mock;

type Mock = mock::Mock<Request<RequestBody>, Response<ResponseBody>>;
type Handle = mock::Handle<Request<RequestBody>, Response<ResponseBody>>;

/// tower's `Retry` over a mock upstream whose errors are `Failure`s.
fn retrying(
    config: RetryPolicy,
) -> (
    impl tower_service::Service<
        Request<RequestBody>,
        Response = Response<ResponseBody>,
        Error = Failure,
        Future: Send,
    > + Clone,
    Handle,
) {
    let (service, handle): (Mock, Handle) = mock::pair();
    let service = service.map_err(|e| match e.downcast::<Failure>() {
        Ok(failure) => *failure,
        Err(other) => Failure::NoHealthyUpstream(other.to_string()),
    });
    (
        tower::retry::Retry::new(Policy::new(Arc::new(config)), service),
        handle,
    )
}

async fn body_of(request: Request<RequestBody>) -> String {
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_503_is_retried_with_the_same_body_and_counted() {
    let cluster = cluster(3);
    let (service, mut handle) = retrying(policy(&[RetryOn::FiveXx], 2));
    let call = tokio::spawn(service.oneshot(request(&cluster, "payload")));
    let (first, respond) = handle.next_request().await.unwrap();
    assert_eq!(body_of(first).await, "payload");
    respond.send_response(response(503, "198.18.0.1:80"));
    let (second, respond) = handle.next_request().await.unwrap();
    assert_eq!(body_of(second).await, "payload");
    respond.send_response(response(200, "198.18.0.2:80"));
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let s = &cluster.stats;
    assert_eq!(s.retry.get(), 1);
    assert_eq!(s.retry_success.get(), 1);
    assert_eq!(s.retry_backoff_exponential.get(), 1);
    assert_eq!(s.retry_limit_exceeded.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn after_num_retries_the_last_response_goes_out_flagged_urx() {
    let cluster = cluster(3);
    let (service, mut handle) = retrying(policy(&[RetryOn::FiveXx], 2));
    let call = tokio::spawn(service.oneshot(request(&cluster, "")));
    for _ in 0..3 {
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(response(503, "198.18.0.1:80"));
    }
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["x-outrigger-response-flags"], "URX");
    assert_eq!(cluster.stats.retry.get(), 2);
    assert_eq!(cluster.stats.retry_limit_exceeded.get(), 1);
    assert_eq!(cluster.stats.retry_success.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_retry_breaker_stops_the_retry_without_x_envoy_overloaded() {
    let cluster = cluster(0);
    let (service, mut handle) = retrying(policy(&[RetryOn::FiveXx], 2));
    let call = tokio::spawn(service.oneshot(request(&cluster, "")));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(response(503, "198.18.0.1:80"));
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.headers()["x-outrigger-response-flags"], "UO");
    assert!(!answer.headers().contains_key("x-envoy-overloaded"));
    assert_eq!(cluster.stats.retry_overflow.get(), 1);
    assert_eq!(cluster.stats.retry.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn back_off_waits_below_the_doubling_ceiling() {
    let cluster = cluster(3);
    let mut config = policy(&[RetryOn::FiveXx], 3);
    config.back_off_base = Duration::from_millis(100);
    config.back_off_max = Duration::from_millis(1000);
    let (service, mut handle) = retrying(config);
    let call = tokio::spawn(service.oneshot(request(&cluster, "")));
    let mut last = tokio::time::Instant::now();
    for retry in 0..4u32 {
        let (_, respond) = handle.next_request().await.unwrap();
        let waited = last.elapsed();
        if retry > 0 {
            // Retry n draws from [0, 100 ms * 2^(n-1)).
            assert!(
                waited < Duration::from_millis(100 << (retry - 1)),
                "retry {retry} waited {waited:?}"
            );
        }
        last = tokio::time::Instant::now();
        respond.send_response(response(503, "198.18.0.1:80"));
    }
    assert_eq!(call.await.unwrap().unwrap().status(), 503);
}

#[tokio::test(start_paused = true)]
async fn a_retry_avoids_the_previous_host_when_asked() {
    let cluster = cluster(3);
    let mut config = policy(&[RetryOn::ConnectFailure], 1);
    config.avoid_previous_hosts = true;
    config.host_selection_retry_max_attempts = 5;
    let (service, mut handle) = retrying(config);
    let call = tokio::spawn(service.oneshot(request(&cluster, "")));
    let (first, respond) = handle.next_request().await.unwrap();
    assert!(first.extensions().get::<PreviousHosts>().is_none());
    respond.send_error(Failure::Connect {
        host: "198.18.0.1:80".parse().unwrap(),
        detail: "refused".into(),
        timed_out: false,
    });
    let (second, respond) = handle.next_request().await.unwrap();
    let previous = second.extensions().get::<PreviousHosts>().unwrap();
    assert_eq!(previous.hosts, vec!["198.18.0.1:80".parse().unwrap()]);
    assert_eq!(previous.max_redraws, 5);
    respond.send_response(response(200, "198.18.0.2:80"));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_body_past_the_buffer_limit_is_not_retried() {
    let cluster = cluster(3);
    let (service, mut handle) = retrying(policy(&[RetryOn::FiveXx], 2));
    let big = Full::new(Bytes::from(vec![b'x'; 2048]))
        .map_err(|never| match never {})
        .boxed();
    let mut request = request(&cluster, "");
    *request.body_mut() = RequestBody::replayable(big, 1024);
    let call = tokio::spawn(service.oneshot(request));
    let (first, respond) = handle.next_request().await.unwrap();
    assert_eq!(body_of(first).await.len(), 2048);
    respond.send_response(response(503, "198.18.0.1:80"));
    assert_eq!(call.await.unwrap().unwrap().status(), 503);
    assert_eq!(cluster.stats.retry_or_shadow_abandoned.get(), 1);
    assert_eq!(cluster.stats.retry.get(), 0);
}

#[test]
fn retry_on_conditions_follow_envoy() {
    let host: std::net::SocketAddr = "198.18.0.1:80".parse().unwrap();
    let connect = || {
        Err(Failure::Connect {
            host,
            detail: String::new(),
            timed_out: false,
        })
    };
    let reset = |refused_stream| {
        Err(Failure::Reset {
            host,
            detail: String::new(),
            refused_stream,
        })
    };
    let status = |code| Ok(response(code, "198.18.0.1:80"));
    let on = |conditions: &[RetryOn], outcome: &Outcome| retriable(&policy(conditions, 1), outcome);
    // 5xx: any 5xx, any reset or connect failure, a per-try timeout.
    assert!(on(&[RetryOn::FiveXx], &status(500)));
    assert!(on(&[RetryOn::FiveXx], &connect()));
    assert!(on(&[RetryOn::FiveXx], &reset(false)));
    assert!(on(
        &[RetryOn::FiveXx],
        &Err(Failure::PerTryTimeout { host })
    ));
    assert!(!on(&[RetryOn::FiveXx], &status(404)));
    // gateway-error: 502, 503, 504 only.
    assert!(on(&[RetryOn::GatewayError], &status(502)));
    assert!(!on(&[RetryOn::GatewayError], &status(500)));
    // connect-failure: only that.
    assert!(on(&[RetryOn::ConnectFailure], &connect()));
    assert!(!on(&[RetryOn::ConnectFailure], &reset(false)));
    assert!(!on(&[RetryOn::ConnectFailure], &status(503)));
    // refused-stream, retriable-4xx.
    assert!(on(&[RetryOn::RefusedStream], &reset(true)));
    assert!(!on(&[RetryOn::RefusedStream], &reset(false)));
    assert!(on(&[RetryOn::Retriable4xx], &status(409)));
    assert!(!on(&[RetryOn::Retriable4xx], &status(429)));
    // Never: a full circuit breaker, the route's deadline, no healthy host.
    for never in [
        Failure::Overflow,
        Failure::RouteTimeout,
        Failure::NoHealthyUpstream(String::new()),
    ] {
        assert!(!on(
            &[RetryOn::FiveXx, RetryOn::Reset, RetryOn::ConnectFailure],
            &Err(never)
        ));
    }
    // retriable-status-codes.
    let mut codes = policy(&[RetryOn::RetriableStatusCodes], 1);
    codes.retriable_status_codes = vec![418];
    assert!(retriable(&codes, &status(418)));
    assert!(!retriable(&codes, &status(503)));
    // gRPC: grpc-status in a trailers-only response.
    let mut unavailable = response(200, "198.18.0.1:80");
    unavailable
        .headers_mut()
        .insert("grpc-status", http::HeaderValue::from_static("14"));
    let unavailable: Outcome = Ok(unavailable);
    assert!(on(&[RetryOn::Unavailable], &unavailable));
    assert!(!on(&[RetryOn::Internal], &unavailable));
}

/// The retry policy that the loader builds from a route's `retry_policy: POLICY` (YAML flow style).
fn configured(policy: &str) -> RetryPolicy {
    use outrigger_config::model::http::RouteSource;
    use outrigger_config::model::listener::NetworkFilter;
    use outrigger_config::model::route::RouteAction;
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend, retry_policy: {policy}}}}}]}}]}}
  clusters:
  - name: backend
"#
    );
    let loaded = outrigger_config::load_bytes(yaml.as_bytes(), outrigger_config::Format::Yaml)
        .expect("the policy loads");
    let NetworkFilter::HttpConnectionManager(hcm) =
        &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("not a connection manager");
    };
    let RouteSource::Static(routes) = &hcm.routes else {
        panic!("not an inline route table");
    };
    let RouteAction::Route(forward) = &routes.virtual_hosts[0].routes[0].action else {
        panic!("not a forwarding route");
    };
    forward.retry_policy.clone().expect("a retry policy")
}

/// Answers each attempt with the next of `answers` and returns the waits between them (paused time: exactly the
/// back-offs).
async fn waits_between(
    config: RetryPolicy,
    cluster: &Arc<crate::upstream::ClusterState>,
    answers: Vec<Response<ResponseBody>>,
) -> Vec<Duration> {
    let (service, mut handle) = retrying(config);
    let call = tokio::spawn(service.oneshot(request(cluster, "")));
    let mut waits = Vec::new();
    let mut answered = None;
    for answer in answers {
        let (_, respond) = handle.next_request().await.unwrap();
        if let Some(at) = answered {
            waits.push(tokio::time::Instant::now() - at);
        }
        answered = Some(tokio::time::Instant::now());
        respond.send_response(answer);
    }
    call.await.unwrap().unwrap();
    waits
}

#[tokio::test(start_paused = true)]
async fn configured_back_off_scales_from_base_interval_up_to_max_interval() {
    fastrand::seed(11);
    let config = configured(
        "{retry_on: 5xx, num_retries: 24, retry_back_off: {base_interval: 1s, max_interval: 3s}}",
    );
    assert_eq!(
        (config.back_off_base, config.back_off_max),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
    let cluster = cluster(3);
    let answers = (0..25).map(|_| response(503, "198.18.0.1:80")).collect();
    let waits = waits_between(config, &cluster, answers).await;
    assert_eq!(waits.len(), 24);
    for (i, wait) in waits.iter().enumerate() {
        // Retry n draws from [0, min(1 s * 2^(n-1), 3 s)).
        let ceiling = Duration::from_secs([1, 2, 3][i.min(2)]);
        assert!(*wait < ceiling, "retry {}: {wait:?}", i + 1);
    }
    // The first retries already use the base: from a 25 ms base they could not reach 250 ms before retry 5.
    assert!(
        waits[..4].iter().any(|w| *w >= Duration::from_millis(250)),
        "{waits:?}"
    );
    // Later ones reach the maximum, which a max of 10 x base would let them pass.
    let long = waits
        .iter()
        .filter(|w| **w >= Duration::from_secs(1))
        .count();
    assert!(long >= 8, "{waits:?}");
    assert_eq!(cluster.stats.retry_backoff_exponential.get(), 24);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_back_off_waits_as_the_reset_headers_say() {
    fastrand::seed(5);
    let config = configured(
        "{retry_on: 5xx, num_retries: 4, rate_limited_retry_back_off: {max_interval: 100s, reset_headers: \
         [{name: X-Reset-At, format: UNIX_TIMESTAMP}, {name: x-reset}]}}",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let limited = |headers: &[(&'static str, String)]| {
        let mut answer = response(503, "198.18.0.1:80");
        for (name, value) in headers {
            answer
                .headers_mut()
                .insert(*name, http::HeaderValue::from_str(value).unwrap());
        }
        answer
    };
    let answers = vec![
        // Seconds (the default format): [20 s, 30 s).
        limited(&[("x-reset", "20".into())]),
        // Over max_interval: the exponential back-off of retry 2, [0, 50 ms).
        limited(&[("x-reset", "200".into())]),
        // The first header that parses wins: a Unix time 40 s ahead.
        limited(&[
            ("x-reset-at", (now + 40).to_string()),
            ("x-reset", "5".into()),
        ]),
        // A time in the past does not parse; the next header does.
        limited(&[
            ("x-reset-at", (now - 10).to_string()),
            ("x-reset", "2".into()),
        ]),
        response(200, "198.18.0.1:80"),
    ];
    let cluster = cluster(3);
    let waits = waits_between(config, &cluster, answers).await;
    let s = Duration::from_secs;
    let within = |wait: Duration, from: Duration, to: Duration| from <= wait && wait < to;
    assert!(within(waits[0], s(20), s(30)), "{waits:?}");
    assert!(waits[1] < Duration::from_millis(50), "{waits:?}");
    // 39 s when the clock's second turns between the header and the retry.
    assert!(within(waits[2], s(39), s(60)), "{waits:?}");
    assert!(within(waits[3], s(2), s(3)), "{waits:?}");
    assert_eq!(cluster.stats.retry_backoff_ratelimited.get(), 3);
    assert_eq!(cluster.stats.retry_backoff_exponential.get(), 1);
}
