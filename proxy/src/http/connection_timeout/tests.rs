use super::*;
use crate::http::hcm_fixture::hcm;
use crate::metrics::{Metrics, connection_manager};
use std::sync::Arc;

async fn run(fields: &str, state: Arc<ConnectionState>) -> (Ending, Duration, Metrics) {
    let metrics = Metrics::new();
    let config = hcm(fields);
    let started = Instant::now();
    let ending = ending(
        &config,
        &state,
        &metrics.http_timeouts,
        &connection_manager("t"),
    )
    .await;
    (ending, started.elapsed(), metrics)
}

fn count(metrics: &Metrics, idle: bool) -> u64 {
    let t = &metrics.http_timeouts;
    let family = if idle {
        &t.cx_idle_timeout
    } else {
        &t.cx_max_duration_reached
    };
    family.get_or_create(&connection_manager("t")).get()
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_idle_timeout() {
    let state = Arc::new(ConnectionState::new(false));
    let (ending, after, metrics) =
        run("common_http_protocol_options: {idle_timeout: 2s}", state).await;
    assert_eq!((ending, after), (Ending::Close, Duration::from_secs(2)));
    assert_eq!(count(&metrics, true), 1);
}

#[tokio::test(start_paused = true)]
async fn the_idle_timer_waits_for_open_streams_and_restarts_after_them() {
    let state = Arc::new(ConnectionState::new(false));
    state.on_read(b"GET / HTTP/1.1\r\n\r\n");
    state.stream_started(http::Version::HTTP_11);
    let ends = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        ends.stream_ended();
    });
    let (ending, after, _) = run("common_http_protocol_options: {idle_timeout: 2s}", state).await;
    assert_eq!((ending, after), (Ending::Drain, Duration::from_secs(7)));
}

#[tokio::test(start_paused = true)]
async fn max_connection_duration_drains_even_a_busy_connection() {
    let state = Arc::new(ConnectionState::new(false));
    state.on_read(b"GET / HTTP/1.1\r\n\r\n");
    state.stream_started(http::Version::HTTP_11);
    let (ending, after, metrics) = run(
        "common_http_protocol_options: {max_connection_duration: 3s}",
        state,
    )
    .await;
    assert_eq!((ending, after), (Ending::Drain, Duration::from_secs(3)));
    assert_eq!((count(&metrics, false), count(&metrics, true)), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_default_idle_timeout_is_an_hour() {
    let state = Arc::new(ConnectionState::new(false));
    let (_, after, _) = run("", state).await;
    assert_eq!(after, Duration::from_secs(3600));
}
