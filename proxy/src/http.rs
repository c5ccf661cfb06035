//! The HTTP connection manager: hyper serves HTTP/1.1 and h2 on the connection, and every request goes through
//! a tower stack: `downstream_stats` -> `connection_manager` (headers, route lookup) -> `local_rate_limit` ->
//! `router` -> the matched route's upstream stack (`route_stack`: `route_timeout` -> `retry` -> `attempt`).

mod attempt;
pub use attempt::PreviousHosts;
mod client_cert;
pub mod connection_manager;
mod downstream_stats;
mod failure;
mod headers;
mod hedge;
mod local_rate_limit;
pub mod local_reply;
mod replay_body;
mod retry;
pub mod route;
mod route_stack;
mod route_timeout;
mod router;
#[cfg(test)]
mod testing;

use crate::metrics::Labels;
use crate::{Inputs, drain::ConnectionGuard};
use connection_manager::{ConnectionManager, Decode};
use downstream_stats::DownstreamStats;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use local_rate_limit::LocalRateLimitFilter;
use outrigger_config::model::http::{CodecType, HttpConnectionManager};
use router::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

/// What a request handler knows about its connection.
pub struct Connection {
    pub hcm: Arc<HttpConnectionManager>,
    pub inputs: Arc<Inputs>,
    pub peer: SocketAddr,
    /// The original destination (or the local address when there was no redirect).
    pub destination: SocketAddr,
    pub own_addresses: Arc<[SocketAddr]>,
    pub labels: Labels,
    /// Set when the connection arrived over TLS.
    pub tls: Option<crate::tls::Session>,
    /// The listener's `per_connection_buffer_limit_bytes`: how much of a request body is kept for retries,
    /// unless the route says otherwise.
    pub buffer_limit: u32,
}

/// Every HCM config of a snapshot at run time, keyed by the config's address (each is one `Arc` in the
/// snapshot, which outlives this map).
#[derive(Default)]
pub struct Managers {
    by_config: std::collections::HashMap<usize, Arc<ConnectionManager>>,
}

impl Managers {
    pub fn new(snapshot: &outrigger_config::Snapshot, metrics: &crate::metrics::Metrics) -> Self {
        let mut by_config = std::collections::HashMap::new();
        for listener in &snapshot.listeners {
            let chains = listener
                .filter_chains
                .iter()
                .chain(listener.default_filter_chain.iter());
            for filter in chains.flat_map(|c| c.filters.iter()) {
                if let outrigger_config::model::listener::NetworkFilter::HttpConnectionManager(
                    hcm,
                ) = filter
                {
                    by_config
                        .entry(Arc::as_ptr(hcm) as usize)
                        .or_insert_with(|| Arc::new(ConnectionManager::new(hcm.clone(), metrics)));
                }
            }
        }
        Self { by_config }
    }

    pub fn get(&self, hcm: &Arc<HttpConnectionManager>) -> Option<Arc<ConnectionManager>> {
        self.by_config.get(&(Arc::as_ptr(hcm) as usize)).cloned()
    }
}

pub async fn serve(stream: crate::io::Stream, connection: Connection, _guard: ConnectionGuard) {
    let connection = Arc::new(connection);
    let hcm = connection.hcm.clone();
    let drain = connection.inputs.drain.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size((hcm.max_request_headers_kb as usize * 1024).max(8192));
    // Without `request_headers_timeout`, hyper's own 30 s limit on reading the headers stays on: passing `None`
    // would switch it off and let a client trickle headers for ever.
    if let Some(timeout) = hcm.request_headers_timeout {
        builder.http1().header_read_timeout(timeout);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(hcm.http2.max_concurrent_streams)
        .initial_stream_window_size(hcm.http2.initial_stream_window_size)
        .initial_connection_window_size(hcm.http2.initial_connection_window_size);
    let builder = match hcm.codec_type {
        CodecType::Auto => builder,
        CodecType::Http1 => builder.http1_only(),
        CodecType::Http2 => builder.http2_only(),
    };
    let manager = match connection.inputs.http.get(&hcm) {
        Some(manager) => manager,
        None => Arc::new(ConnectionManager::new(
            hcm.clone(),
            &connection.inputs.metrics,
        )),
    };
    // The HTTP stack, outer to inner: statistics, the connection manager's own work (headers, route lookup),
    // the local rate limit filter, the router (which calls the matched route's upstream stack).
    let router = Router {
        connection: connection.clone(),
        manager: manager.clone(),
    };
    let filters = LocalRateLimitFilter::new(router, manager.clone(), connection.inputs.clone());
    let counters = manager.counters.clone();
    let decode = Decode {
        connection: connection.clone(),
        manager,
        filters,
    };
    let stack = DownstreamStats::new(decode, connection.clone(), counters);
    let service = hyper::service::service_fn(move |request| stack.clone().oneshot(request));
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        () = drain.started() => {}
    }
    // Draining: HTTP/1 answers with `Connection: close`, h2 sends GOAWAY; requests in flight finish.
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(
        hcm.drain_timeout.max(std::time::Duration::from_secs(1)) * 12,
        served,
    )
    .await;
}
