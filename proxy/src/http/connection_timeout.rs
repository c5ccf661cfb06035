//! The connection manager's own reasons to end a connection, as in Envoy:
//! - `common_http_protocol_options.idle_timeout` (Envoy's default 1 h): no stream open for that long;
//! - `common_http_protocol_options.max_connection_duration` (default none): the connection is that old.
//!
//! Either is counted (`downstream_cx_idle_timeout`, `downstream_cx_max_duration_reached`). A connection that
//! never sent a byte is closed at once; any other is drained: h2 gets GOAWAY, an HTTP/1 response carries
//! `Connection: close`, and after `drain_timeout` the connection is closed as soon as no stream is open.

use super::connection_state::ConnectionState;
use crate::metrics::{HttpTimeouts, Labels};
use outrigger_config::model::http::HttpConnectionManager;
use std::time::Duration;
use tokio::time::{Instant, sleep, sleep_until};

/// What to do with the connection once a timer fired.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Nothing was ever read: close now.
    Close,
    /// Drain, then close.
    Drain,
}

/// Waits for the first of the two timers; counts it and says how to end the connection.
pub async fn ending(
    hcm: &HttpConnectionManager,
    state: &ConnectionState,
    counters: &HttpTimeouts,
    labels: &Labels,
) -> Ending {
    let started = Instant::now();
    let max_duration = async {
        match hcm.max_connection_duration {
            Some(limit) => sleep_until(started + limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = idle(hcm.idle_timeout, state) => {
            counters.cx_idle_timeout.get_or_create(labels).inc();
        }
        () = max_duration => {
            counters.cx_max_duration_reached.get_or_create(labels).inc();
        }
        // `max_requests_per_connection` (counted where the request starts, `downstream_stats`).
        () = drained(state) => {}
    }
    if state.has_read() {
        Ending::Drain
    } else {
        Ending::Close
    }
}

/// Returns once the connection's own state says it drains.
async fn drained(state: &ConnectionState) {
    loop {
        let changed = state.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if state.is_draining() {
            return;
        }
        changed.await;
    }
}

/// Returns once no stream has been open for `timeout`; never without one.
async fn idle(timeout: Option<Duration>, state: &ConnectionState) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let changed = state.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if state.open_streams() > 0 {
            changed.await;
            continue;
        }
        tokio::select! {
            () = sleep(timeout) => return,
            () = changed => {}
        }
    }
}

#[cfg(test)]
mod tests;
