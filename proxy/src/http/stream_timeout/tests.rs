//! The stream timers with a mock inner service, a fake connection and paused time.

use super::*;
use crate::http::connection_manager::Matched;
use crate::http::hcm_fixture::{hcm, hcm_routing};
use crate::metrics::{Metrics, connection_manager};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_test::mock;

type Mock = mock::Mock<Request<Full<Bytes>>, Response<ResponseBody>>;
type Handle = mock::Handle<Request<Full<Bytes>>, Response<ResponseBody>>;
type Inner = tower::util::MapErr<Mock, fn(tower::BoxError) -> Infallible>;
type Counters = fn(&HttpTimeouts) -> &prometheus_client::metrics::family::Family<Labels, Counter>;

struct Setup {
    service: StreamTimeout<Inner>,
    handle: Handle,
    state: Arc<ConnectionState>,
    metrics: Metrics,
}

fn never(e: tower::BoxError) -> Infallible {
    panic!("the mock failed: {e}")
}

fn setup(fields: &str) -> Setup {
    setup_with(hcm(fields))
}

fn setup_with(config: Arc<outrigger_config::model::http::HttpConnectionManager>) -> Setup {
    let metrics = Metrics::new();
    let manager = Arc::new(ConnectionManager::new(config, &metrics));
    let state = Arc::new(ConnectionState::new(true));
    let (mock, handle) = mock::pair();
    let service = StreamTimeout::new(
        mock.map_err(never as fn(tower::BoxError) -> Infallible),
        manager,
        state.clone(),
        metrics.http_timeouts.clone(),
        connection_manager("t"),
    );
    Setup {
        service,
        handle,
        state,
        metrics,
    }
}

fn counted(setup: &Setup, family: Counters) -> u64 {
    family(&setup.metrics.http_timeouts)
        .get_or_create(&connection_manager("t"))
        .get()
}

/// A POST whose head has arrived on the wire (the body will follow, or not), counted by the connection.
fn post(setup: &Setup, head_and_some_body: &[u8]) -> Request<Full<Bytes>> {
    setup.state.on_read(head_and_some_body);
    let mut request = Request::post("/")
        .body(Full::new(Bytes::from_static(b"body")))
        .unwrap();
    request
        .extensions_mut()
        .insert(setup.state.stream_started(false));
    request
}

/// A GET that has arrived whole, counted by the connection.
fn get(setup: &Setup) -> Request<Full<Bytes>> {
    setup.state.on_read(b"GET / HTTP/1.1\r\n\r\n");
    let mut request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    request
        .extensions_mut()
        .insert(setup.state.stream_started(true));
    request
}

async fn body_text(response: Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn ok(body: &'static str) -> Response<ResponseBody> {
    Response::new(local_reply::text(body))
}

#[tokio::test(start_paused = true)]
async fn a_received_request_whose_upstream_is_silent_gets_504_stream_timeout() {
    let mut s = setup("stream_idle_timeout: 1s");
    let request = get(&s);
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.headers()["x-outrigger-response-flags"], "SI");
    assert!(response.headers().get("connection").is_none());
    assert_eq!(body_text(response).await, "stream timeout");
    assert_eq!(counted(&s, |t| &t.rq_idle_timeout), 1);
}

#[tokio::test(start_paused = true)]
async fn body_data_restarts_the_timer_and_a_stalled_body_gets_408() {
    let mut s = setup("stream_idle_timeout: 1s");
    let request = post(&s, b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc");
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    for piece in [&b"de"[..], b"fg"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.state.on_read(piece);
    }
    let response = call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(2200));
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(body_text(response).await, "stream timeout");
}

#[tokio::test(start_paused = true)]
async fn a_body_received_in_full_makes_it_504() {
    let mut s = setup("stream_idle_timeout: 1s");
    let request = post(&s, b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nab");
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.state.on_read(b"c");
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_response_that_stalls_is_reset() {
    let mut s = setup("stream_idle_timeout: 1s");
    let request = get(&s);
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (_, respond) = s.handle.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Headers now; the body never comes.
    let body = Stalled.boxed();
    respond.send_response(Response::new(body));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let result = response.into_body().collect().await;
    assert!(result.is_err(), "the body must fail");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(counted(&s, |t| &t.rq_idle_timeout), 1);
}

/// A response body whose data never comes.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_timely_answer_passes_and_zero_disables_the_timer() {
    for fields in ["stream_idle_timeout: 1s", "stream_idle_timeout: 0s"] {
        let mut s = setup(fields);
        let request = get(&s);
        let call = tokio::spawn(s.service.clone().oneshot(request));
        let (_, respond) = s.handle.next_request().await.unwrap();
        let wait = if fields.ends_with("0s") { 3600 } else { 0 };
        tokio::time::sleep(Duration::from_millis(900) + Duration::from_secs(wait)).await;
        respond.send_response(ok("fine"));
        let response = call.await.unwrap().unwrap();
        assert_eq!(body_text(response).await, "fine", "{fields}");
    }
}

#[tokio::test(start_paused = true)]
async fn request_timeout_ends_an_unfinished_request_despite_activity() {
    let mut s = setup("codec_type: HTTP1, request_timeout: 1s");
    let request = post(&s, b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc");
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.state.on_read(b"de");
    let response = call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(response.headers()["connection"], "close");
    assert!(
        response
            .headers()
            .get("x-outrigger-response-flags")
            .is_none()
    );
    assert_eq!(body_text(response).await, "request timeout");
    assert_eq!(counted(&s, |t| &t.rq_timeout), 1);
}

#[tokio::test(start_paused = true)]
async fn request_timeout_is_disarmed_once_the_request_is_complete() {
    let mut s = setup("codec_type: HTTP1, request_timeout: 1s");
    let request = get(&s);
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (_, respond) = s.handle.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    respond.send_response(ok("slow but fine"));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(counted(&s, |t| &t.rq_timeout), 0);
}

#[tokio::test(start_paused = true)]
async fn a_routes_idle_timeout_replaces_the_connection_managers() {
    let mut s = setup_with(hcm_routing(
        "stream_idle_timeout: 1s",
        "route: {cluster: backend, idle_timeout: 3s}",
    ));
    let mut request = get(&s);
    request
        .extensions_mut()
        .insert(Matched { vhost: 0, route: 0 });
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}
