//! The stream timers with a mock inner service, request bodies fed piece by piece, and paused time.

use super::*;
use crate::http::hcm_fixture::{hcm, hcm_routing};
use crate::metrics::{Metrics, connection_manager};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_test::mock;

type Mock = mock::Mock<Request<UpstreamBody>, Response<ResponseBody>>;
type Handle = mock::Handle<Request<UpstreamBody>, Response<ResponseBody>>;
type Inner = tower::util::MapErr<Mock, fn(tower::BoxError) -> Infallible>;
type Counters = fn(&HttpTimeouts) -> &prometheus_client::metrics::family::Family<Labels, Counter>;

struct Setup {
    service: StreamTimeout<Inner>,
    handle: Handle,
    metrics: Metrics,
    manager: Arc<ConnectionManager>,
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
    let state = Arc::new(ConnectionState::new(false));
    let (mock, handle) = mock::pair();
    let service = StreamTimeout::new(
        mock.map_err(never as fn(tower::BoxError) -> Infallible),
        manager.clone(),
        state.clone(),
        metrics.http_timeouts.clone(),
        connection_manager("t"),
    );
    Setup {
        service,
        handle,
        metrics,
        manager,
    }
}

fn counted(setup: &Setup, family: Counters) -> u64 {
    family(&setup.metrics.http_timeouts)
        .get_or_create(&connection_manager("t"))
        .get()
}

/// A request body as a `Content-Length` body arrives: `length` bytes in all, in the pieces the test sends;
/// complete once they are all there.
struct Fed {
    pieces: mpsc::UnboundedReceiver<&'static [u8]>,
    left: usize,
}

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.pieces.poll_recv(cx) {
            Poll::Ready(Some(piece)) => {
                self.left -= piece.len();
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(piece)))))
            }
            Poll::Ready(None) => Poll::Ready(Some(Err("the client went away".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// A POST of `length` bytes whose first piece has arrived with the head; the sender brings the rest.
fn post(length: usize, first: &'static [u8]) -> (Request<UpstreamBody>, Pieces) {
    let (pieces, receiver) = mpsc::unbounded_channel();
    let body = Fed {
        pieces: receiver,
        left: length,
    };
    pieces.send(first).unwrap();
    let request = Request::post("/").body(body.boxed()).unwrap();
    (request, pieces)
}

type Pieces = mpsc::UnboundedSender<&'static [u8]>;

/// A GET, whose body is over with its head.
fn get() -> Request<UpstreamBody> {
    Request::get("/")
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .unwrap()
}

/// The upstream side reads the request body as it arrives, as the router does while it forwards it.
fn forward(request: Request<UpstreamBody>) {
    tokio::spawn(async move {
        let _ = request.into_body().collect().await;
    });
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
    let request = get();
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
    let (request, pieces) = post(10, b"abc");
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (forwarded, _respond) = s.handle.next_request().await.unwrap();
    forward(forwarded);
    for piece in [&b"de"[..], b"fg"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        pieces.send(piece).unwrap();
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
    let (request, pieces) = post(3, b"ab");
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (forwarded, _respond) = s.handle.next_request().await.unwrap();
    forward(forwarded);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pieces.send(b"c").unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_response_that_stalls_is_reset() {
    let mut s = setup("stream_idle_timeout: 1s");
    let request = get();
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
        let request = get();
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
    let (request, pieces) = post(10, b"abc");
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (forwarded, _respond) = s.handle.next_request().await.unwrap();
    forward(forwarded);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pieces.send(b"de").unwrap();
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
    let request = get();
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
    let mut request = get();
    request
        .extensions_mut()
        .insert(s.manager.matched(0, 0).unwrap());
    let started = Instant::now();
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let _pending = s.handle.next_request().await.unwrap();
    let response = call.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn an_h2_upload_that_stalls_gets_408_and_the_connection_stays() {
    for fields in ["request_timeout: 1s", "stream_idle_timeout: 1s"] {
        let mut s = setup(fields);
        let (mut request, pieces) = post(10, b"abc");
        *request.version_mut() = http::Version::HTTP_2;
        let started = Instant::now();
        let call = tokio::spawn(s.service.clone().oneshot(request));
        let (forwarded, _respond) = s.handle.next_request().await.unwrap();
        forward(forwarded);
        tokio::time::sleep(Duration::from_millis(500)).await;
        pieces.send(b"de").unwrap();
        let response = call.await.unwrap().unwrap();
        let after = if fields.starts_with("request") {
            1000
        } else {
            1500
        };
        assert_eq!(started.elapsed(), Duration::from_millis(after), "{fields}");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT, "{fields}");
        assert!(response.headers().get("connection").is_none(), "{fields}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_h2_body_received_in_full_disarms_request_timeout() {
    let mut s = setup("request_timeout: 1s");
    let (mut request, pieces) = post(5, b"abc");
    *request.version_mut() = http::Version::HTTP_2;
    let call = tokio::spawn(s.service.clone().oneshot(request));
    let (forwarded, respond) = s.handle.next_request().await.unwrap();
    forward(forwarded);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pieces.send(b"de").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    respond.send_response(ok("late but fine"));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(counted(&s, |t| &t.rq_timeout), 0);
}
