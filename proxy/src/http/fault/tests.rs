//! The fault filter over an inner service that answers 200 at once, on paused time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::metrics::connection_manager;
use http_body_util::{BodyExt, Empty};
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::{Format, load_bytes};
use std::sync::atomic::AtomicUsize;
use tower_service::Service;

struct Setup {
    manager: Arc<ConnectionManager>,
    metrics: Metrics,
    /// Requests the inner service received.
    passed: Arc<AtomicUsize>,
}

/// A connection manager whose chain is the fault filter with `fault` (YAML flow-map entries), then the router.
fn setup(fault: &str) -> Setup {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager,
          stat_prefix: t,
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, direct_response: {{status: 200}}}}]}}]}},
          http_filters: [
            {{name: fault, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, {fault}}}}},
            {{name: router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]}}
"#
    );
    let loaded = load_bytes(yaml.as_bytes(), Format::Yaml).unwrap();
    let NetworkFilter::HttpConnectionManager(config) =
        &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("not a connection manager");
    };
    let metrics = Metrics::new();
    let manager = Arc::new(ConnectionManager::new(
        Arc::new((**config).clone()),
        &metrics,
    ));
    Setup {
        manager,
        metrics,
        passed: Arc::default(),
    }
}

/// The service behind the filter: answers `upstream` at once, counting requests.
#[derive(Clone)]
struct Upstream(Arc<AtomicUsize>);

impl tower_service::Service<Request<UpstreamBody>> for Upstream {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<UpstreamBody>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(text("upstream"))))
    }
}

impl Setup {
    /// Sends a request with `headers` and returns the task answering it.
    fn send(&self, headers: &[(&str, &str)]) -> tokio::task::JoinHandle<Response<ResponseBody>> {
        let mut request = Request::new(
            Empty::<bytes::Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut filter = FaultFilter::new(Upstream(self.passed.clone()), self.manager.clone());
        // `Upstream` is always ready, so the filter is too.
        let answer = filter.call(request);
        tokio::spawn(async move {
            let Ok(response) = answer.await;
            response
        })
    }

    fn counter(
        &self,
        family: fn(
            &crate::metrics::FaultFamilies,
        )
            -> &prometheus_client::metrics::family::Family<crate::metrics::Labels, Counter>,
    ) -> u64 {
        family(&self.metrics.fault)
            .get_or_create(&connection_manager("t"))
            .get()
    }

    fn active(&self) -> i64 {
        self.metrics
            .fault
            .active
            .get_or_create(&connection_manager("t"))
            .get()
    }
}

fn flags(response: &Response<ResponseBody>) -> Option<&str> {
    response
        .headers()
        .get("x-outrigger-response-flags")
        .and_then(|v| v.to_str().ok())
}

async fn body(response: Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Lets spawned tasks run without moving paused time.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_fixed_delay_holds_the_request_then_passes_it_on() {
    let setup = setup("delay: {fixed_delay: 1s, percentage: {numerator: 100}}");
    let task = setup.send(&[]);
    settle().await;
    tokio::time::advance(Duration::from_millis(999)).await;
    settle().await;
    assert!(!task.is_finished(), "answered before the delay was over");
    assert_eq!(setup.passed.load(Ordering::SeqCst), 0);
    assert_eq!(setup.active(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    let response = task.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(flags(&response), Some("DI"));
    assert_eq!(body(response).await, "upstream");
    assert_eq!(setup.passed.load(Ordering::SeqCst), 1);
    assert_eq!(setup.counter(|f| &f.delays), 1);
    assert_eq!(setup.active(), 0);

    // A delay, then an abort: the abort answers after the delay, never reaching the inner service.
    let setup = setup_both();
    let task = setup.send(&[]);
    settle().await;
    tokio::time::advance(Duration::from_millis(299)).await;
    settle().await;
    assert!(!task.is_finished());
    tokio::time::advance(Duration::from_millis(1)).await;
    let response = task.await.unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    // Envoy logs both flags for a delayed abort.
    let logged = response
        .extensions()
        .get::<crate::access_log::record::Flags>()
        .copied()
        .unwrap_or_default();
    assert_eq!(logged.short(), "DI,FI");
    assert_eq!(body(response).await, "fault filter abort");
    assert_eq!(setup.passed.load(Ordering::SeqCst), 0);
    assert_eq!(
        (setup.counter(|f| &f.delays), setup.counter(|f| &f.aborts)),
        (1, 1)
    );
}

fn setup_both() -> Setup {
    setup(
        "delay: {fixed_delay: 0.3s, percentage: {numerator: 100}}, \
         abort: {http_status: 418, percentage: {numerator: 100}}",
    )
}

#[tokio::test(start_paused = true)]
async fn past_max_active_faults_a_request_gets_none() {
    let setup =
        setup("delay: {fixed_delay: 1s, percentage: {numerator: 100}}, max_active_faults: 1");
    let first = setup.send(&[]);
    settle().await;
    let second = setup.send(&[]);
    settle().await;
    assert!(second.is_finished(), "the second request was delayed too");
    let response = second.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(flags(&response), None);
    assert_eq!(setup.counter(|f| &f.overflow), 1);
    assert!(!first.is_finished());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(flags(&first.await.unwrap()), Some("DI"));
    // The place is free again.
    let third = setup.send(&[]);
    settle().await;
    assert!(!third.is_finished());
    assert_eq!(setup.counter(|f| &f.delays), 2);
}

#[tokio::test(start_paused = true)]
async fn headers_choose_the_delay_and_status_within_the_percentage() {
    let setup = setup(
        "abort: {header_abort: {}, percentage: {numerator: 100}}, \
         delay: {header_delay: {}, percentage: {numerator: 100}}",
    );
    // No fault headers: nothing injected.
    let response = setup.send(&[]).await.unwrap();
    assert_eq!(
        (response.status(), flags(&response)),
        (StatusCode::OK, None)
    );
    // The status from the header.
    let response = setup
        .send(&[("x-envoy-fault-abort-request", "502")])
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(flags(&response), Some("FI"));
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/plain"
    );
    assert_eq!(body(response).await, "fault filter abort");
    // Outside [200, 600), or a percentage header of 0: no abort.
    for headers in [
        vec![("x-envoy-fault-abort-request", "700")],
        vec![
            ("x-envoy-fault-abort-request", "502"),
            ("x-envoy-fault-abort-request-percentage", "0"),
        ],
    ] {
        let response = setup.send(&headers).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
    }
    // The delay from the header, in milliseconds.
    let task = setup.send(&[("x-envoy-fault-delay-request", "200")]);
    settle().await;
    tokio::time::advance(Duration::from_millis(199)).await;
    settle().await;
    assert!(!task.is_finished());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(flags(&task.await.unwrap()), Some("DI"));
    assert_eq!(
        (setup.counter(|f| &f.aborts), setup.counter(|f| &f.delays)),
        (1, 1)
    );

    // Without a configured percentage (0 %), the headers inject nothing.
    let setup = setup_without_percentage();
    let response = setup
        .send(&[
            ("x-envoy-fault-abort-request", "502"),
            ("x-envoy-fault-delay-request", "200"),
        ])
        .await
        .unwrap();
    assert_eq!(
        (response.status(), flags(&response)),
        (StatusCode::OK, None)
    );
}

fn setup_without_percentage() -> Setup {
    setup("abort: {header_abort: {}}, delay: {header_delay: {}}")
}
