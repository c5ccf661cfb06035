//! The HTTP connection manager: hyper serves HTTP/1.1 and h2 on the connection, and every request goes through
//! a tower stack: `downstream_stats` -> `connection_manager` (headers, route lookup) -> `local_rate_limit` ->
//! `stream_timeout` -> `router` -> the matched route's upstream stack (`route_stack`: `route_timeout` -> `retry`
//! -> `attempt`). `stream_timeout` follows each request by its body and each response by its body;
//! `connection_state` counts open streams for the connection's own timers (`connection_timeout`), and the
//! connection's bytes pass through `connection_io` only for what they alone tell (the first byte, a tunnel),
//! and `codec_guard` holds them to the `codec_type`.

mod attempt;
mod authorization;
mod buffer;
mod cache;
mod compressor;
mod cors;
mod csrf;
mod decompressor;
mod filter_chain;
mod filter_service;
mod grpc_http1_bridge;
mod health_check;
pub use attempt::PreviousHosts;
pub(crate) mod client_cert;
mod codec_guard;
mod codec_reply;
mod connection_error;
mod connection_io;
pub mod connection_manager;
mod connection_state;
mod connection_timeout;
mod downstream_stats;
mod envoy_headers;
pub(crate) mod ext_authz;
mod failure;
pub(crate) mod fault;
pub(crate) mod forwarded;
mod h2_control_flood;
mod h2_frames;
mod hash_policy;
#[cfg(test)]
mod hcm_fixture;
mod header_limits;
pub(crate) mod headers;
mod hedge;
mod local_rate_limit;
pub mod local_reply;
mod mirror;
pub(crate) mod path_normalization;
mod rbac;
mod rbac_matcher;
mod replay_body;
mod request_shape;
mod retry;
pub mod route;
pub mod route_index;
mod route_stack;
mod route_timeout;
mod router;
mod stream_guard;
mod stream_reset;
mod stream_timeout;
#[cfg(test)]
mod testing;

use crate::metrics::Labels;
use crate::{Inputs, drain::ConnectionGuard};
use connection_io::ConnectionIo;
use connection_manager::{ConnectionManager, Decode};
use connection_state::ConnectionState;
use connection_timeout::Ending;
use downstream_stats::DownstreamStats;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use outrigger_config::model::http::{CodecType, HttpConnectionManager};
use router::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use stream_timeout::StreamTimeout;
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
    /// The listener's drain: the proxy's, or the listener's own when an update removes or replaces it.
    pub drain: crate::drain::Drain,
    /// Istio's metrics for this connection's requests, when they are on.
    pub istio: Option<Arc<crate::metrics::istio::ConnectionLabels>>,
}

/// Every HCM config of a snapshot at run time, keyed by the config's address (each is one `Arc` in the
/// snapshot, which outlives this map).
#[derive(Default)]
pub struct Managers {
    by_config: std::collections::HashMap<usize, Arc<ConnectionManager>>,
}

impl Managers {
    pub fn new(
        snapshot: &outrigger_config::Snapshot,
        metrics: &crate::metrics::Metrics,
        clusters: &crate::upstream::Clusters,
    ) -> Self {
        Self::update(snapshot, metrics, clusters, &Self::default())
    }

    /// The managers of `snapshot`; a connection manager config kept from `previous` (the same `Arc`, as an
    /// unchanged listener keeps it) keeps its manager: its route stacks, buckets and counters.
    pub fn update(
        snapshot: &outrigger_config::Snapshot,
        metrics: &crate::metrics::Metrics,
        clusters: &crate::upstream::Clusters,
        previous: &Self,
    ) -> Self {
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
                    let key = Arc::as_ptr(hcm) as usize;
                    let manager = previous.by_config.get(&key).cloned().unwrap_or_else(|| {
                        let mut manager = ConnectionManager::new(hcm.clone(), metrics);
                        manager.tracer = tracer(hcm, listener, snapshot, clusters);
                        Arc::new(manager)
                    });
                    by_config.entry(key).or_insert(manager);
                }
            }
        }
        Self { by_config }
    }

    /// Every connection manager's tracer (for `/stats`).
    pub fn tracers(&self) -> impl Iterator<Item = &Arc<crate::trace::Tracer>> {
        self.by_config.values().filter_map(|m| m.tracer.as_ref())
    }

    pub fn get(&self, hcm: &Arc<HttpConnectionManager>) -> Option<Arc<ConnectionManager>> {
        self.by_config.get(&(Arc::as_ptr(hcm) as usize)).cloned()
    }

    /// Gives every RDS connection manager the route configuration of its name (or none yet).
    pub fn set_route_configs(
        &self,
        routes: &std::collections::HashMap<String, Arc<outrigger_config::model::RouteConfig>>,
        metrics: &crate::metrics::Metrics,
    ) {
        for manager in self.by_config.values() {
            if let Some(name) = manager.rds_name() {
                manager.set_route_config(routes.get(name), metrics);
            }
        }
    }
}

/// The tracer of a connection manager with a `tracing` block.
fn tracer(
    hcm: &HttpConnectionManager,
    listener: &outrigger_config::model::Listener,
    snapshot: &outrigger_config::Snapshot,
    clusters: &crate::upstream::Clusters,
) -> Option<Arc<crate::trace::Tracer>> {
    let config = hcm.tracing.as_ref()?;
    Some(Arc::new(crate::trace::Tracer::new(
        config,
        &hcm.stat_prefix,
        listener.traffic_direction,
        snapshot,
        clusters,
    )))
}

pub async fn serve(
    stream: crate::io::Stream,
    connection: Connection,
    manager: Option<Arc<ConnectionManager>>,
    _guard: ConnectionGuard,
) {
    let connection = Arc::new(connection);
    let hcm = connection.hcm.clone();
    let drain = connection.drain.clone();
    let state = Arc::new(ConnectionState::new(hcm.codec_type == CodecType::Http2));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size((hcm.max_request_headers_kb as usize * 1024).max(8192));
    // hyper's header read timeout runs from the moment it waits for a head, so it also closes an idle
    // keep-alive connection (after 30 s by default), which Envoy keeps until `idle_timeout`. It is off:
    // `codec_reply` times each head from its first byte, as Envoy's `request_headers_timeout` does, and without
    // one configured still cuts a trickled head at 30 s (Envoy has no limit then; a slowloris would be held for
    // ever).
    builder.http1().header_read_timeout(None);
    // hyper refuses more than 100 headers by itself, with a bare 431; room for one more lets the connection
    // manager answer a request over `max_headers_count` with Envoy's own reply.
    if hcm.max_headers_count >= 100 {
        builder
            .http1()
            .max_headers(hcm.max_headers_count as usize + 1);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(hcm.http2.max_concurrent_streams)
        .initial_stream_window_size(hcm.http2.initial_stream_window_size)
        .initial_connection_window_size(hcm.http2.initial_connection_window_size)
        // hyper's own limit (16 KiB) would refuse with a 431 what Envoy lets through or resets: twice
        // `max_request_headers_kb` (h2 counts 32 bytes more per header) lets `header_limits` decide.
        .max_header_list_size(hcm.max_request_headers_kb.saturating_mul(2048));
    let builder = match hcm.codec_type {
        CodecType::Auto => builder,
        CodecType::Http1 => builder.http1_only(),
        CodecType::Http2 => builder.http2_only(),
    };
    let manager = manager.unwrap_or_else(|| {
        Arc::new(ConnectionManager::new(
            hcm.clone(),
            &connection.inputs.metrics,
        ))
    });
    // The HTTP stack, outer to inner: statistics, the connection manager's own work (headers, route lookup),
    // the stream timers, the HTTP filters in their configured order (`filter_chain.rs`), the router (which calls
    // the matched route's upstream stack).
    let router = Router {
        connection: connection.clone(),
    };
    let filters = filter_chain::build(router, &manager, &connection);
    let counters = manager.counters.clone();
    let counters_for_replies = counters.clone();
    let protocol_error = counters.cx_protocol_error.clone();
    let access_logs = manager.access_logs.clone();
    let tracer = manager.tracer.clone();
    let timed = StreamTimeout::new(
        filters,
        manager.clone(),
        state.clone(),
        connection.inputs.metrics.http_timeouts.clone(),
        connection.labels.clone(),
    );
    let decode = Decode {
        connection: connection.clone(),
        manager,
        filters: timed,
    };
    let stack = DownstreamStats::new(
        decode,
        connection.clone(),
        counters,
        state.clone(),
        access_logs,
        tracer,
    );
    let service = hyper::service::service_fn(move |request| {
        let call = stack.clone().oneshot(request);
        async move {
            let Ok(response) = call.await;
            stream_reset::reset_or_respond(response)
        }
    });
    let guarded = codec_guard::CodecGuard::new(stream, hcm.codec_type, &hcm.server_name);
    let reply_counters = counters_for_replies;
    let guarded = codec_reply::CodecReply::new(
        guarded,
        state.clone(),
        &hcm.server_name,
        Some(
            hcm.request_headers_timeout
                .unwrap_or(codec_reply::DEFAULT_HEAD_TIMEOUT),
        ),
        std::sync::Arc::new(move |status| reply_counters.codec_reply(status)),
    );
    let io = TokioIo::new(
        ConnectionIo::new(guarded, state.clone()).with_flood_report(h2_control_flood::Report {
            counter: connection
                .inputs
                .metrics
                .protocol
                .http2_outbound_control_flood
                .clone(),
            stat_prefix: hcm.stat_prefix.as_str().into(),
        }),
    );
    let served = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(served);
    let counters = &connection.inputs.metrics.http_timeouts;
    let ending = connection_timeout::ending(&hcm, &state, counters, &connection.labels);
    tokio::pin!(ending);
    let proxy_drain = connection.inputs.drain.clone();
    let gentle = tokio::select! {
        result = served.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
                connection_error::record(
                    &*e,
                    state.go_away(),
                    &protocol_error,
                    &connection.inputs.metrics.protocol,
                    &hcm.stat_prefix,
                );
            }
            return;
        }
        // The listener alone drains when an update removes or replaces it: its connections wind down as
        // gently as after `max_connection_duration`, so a keep-alive client never races a close.
        () = drain.started() => !proxy_drain.is_draining(),
        ending = ending.as_mut() => match ending {
            Ending::Close => return,
            Ending::Drain => true,
        },
    };
    // Draining: HTTP/1 answers with `Connection: close`, h2 gets GOAWAY; requests in flight finish.
    state.start_drain();
    if gentle && !state.is_h2() {
        // Envoy's drain sequence: HTTP/1 keeps serving (each response closing the connection) for
        // `drain_timeout`, then the connection closes once no stream is open.
        tokio::select! {
            _ = served.as_mut() => return,
            () = tokio::time::sleep(hcm.drain_timeout) => {}
            () = proxy_drain.started() => {}
        }
    }
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(
        hcm.drain_timeout.max(std::time::Duration::from_secs(1)) * 12,
        served,
    )
    .await;
}
