//! Sending requests to a cluster's endpoints. HTTP/1.1 goes through hyper's pooled client (the request's
//! `Host` header carries the authority); h2 keeps one multiplexed connection per endpoint, so the `:authority`
//! the upstream sees is the request's, not the endpoint address. Each transport (plaintext, or one TLS context
//! with the peer identity it verifies) has its own pools: a connection verified for one identity never serves
//! a request meant for another.
//!
//! The h2 pool holds, per endpoint, either its connection or the connect under way: requests that find a
//! connect under way wait for it (Envoy opens one connection and queues the others on it), and a connection
//! leaves the pool when it ends or when its endpoint leaves the cluster, so the pool does not grow with churn.

use super::breaker::{Breaker, Permit};
use super::destinations::{DestinationConnection, Destinations};
use super::h2_idle::{self, Activity, OpenStream};
use super::{Picked, UpstreamConnection, UpstreamTls};
use crate::io::Stream;
use crate::tls::Alpn;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connection;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::UpstreamProtocol;
use outrigger_config::model::http::Http2Options;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// Why a request got no response.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SendError {
    #[error("connection failure: {0}")]
    Connect(String),
    /// No connection within the cluster's `connect_timeout`.
    #[error("connection timeout: {0}")]
    ConnectTimeout(String),
    /// The circuit breaker refused to queue the request for a connection (`max_pending_requests`).
    #[error("too many requests waiting for a connection")]
    Overflow,
    #[error("{0}")]
    Reset(String),
}

pub struct UpstreamClient {
    protocol: UpstreamProtocol,
    /// By transport index (see `ClusterState::transport`).
    transports: Vec<Transport>,
}

/// The pools of one transport.
struct Transport {
    /// Built on the first HTTP/1.1 request: in a large mesh most clusters a sidecar knows it never calls.
    http1: std::sync::OnceLock<Client<Connector, UpstreamBody>>,
    connector: Connector,
    idle_timeout: Option<std::time::Duration>,
    http2: H2Pool,
    h2_connector: H2Connector,
}

/// Per endpoint, its h2 connection or the connect every request for it waits on.
type H2Pool = Arc<Mutex<HashMap<SocketAddr, H2Slot>>>;

#[derive(Clone)]
enum H2Slot {
    Ready(H2Connection),
    /// `None` until the connect ends; then its result, the same for every waiter.
    Connecting(watch::Receiver<Option<Result<H2Connection, SendError>>>),
}

/// What opening an h2 connection needs, owned: the connect runs in its own task, so a request that gives up
/// does not abandon the connect others wait on.
#[derive(Clone)]
struct H2Connector {
    tls: Option<UpstreamTls>,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    http2_options: Http2Options,
    connections: Counter,
    active: Gauge,
    destinations: Option<Arc<Destinations>>,
    breaker: Arc<Breaker>,
    pool: H2Pool,
}

/// Counts one open upstream connection in `upstream_cx_active` (and, in an ORIGINAL_DST cluster, on its
/// destination's host) until dropped, however the connection ends.
struct ActiveConnection {
    gauge: Gauge,
    _host: Option<DestinationConnection>,
}

impl ActiveConnection {
    fn new(gauge: &Gauge, host: Option<DestinationConnection>) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
            _host: host,
        }
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Transport {
    fn http1(&self) -> &Client<Connector, UpstreamBody> {
        self.http1.get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(self.idle_timeout)
                .build(self.connector.clone())
        })
    }
}

/// A pooled h2 connection and the count of its open streams (for its idle timeout).
#[derive(Clone)]
struct H2Connection {
    sender: SendRequest<UpstreamBody>,
    activity: Arc<Activity>,
    info: UpstreamConnection,
}

impl UpstreamClient {
    /// `connections` counts the connections opened (`upstream_cx_total`), `active` those open
    /// (`upstream_cx_active`); `destinations` (ORIGINAL_DST clusters) tracks them per destination.
    pub fn new(
        cluster: &Cluster,
        transports: &[Option<UpstreamTls>],
        connections: Counter,
        active: Gauge,
        destinations: Option<Arc<Destinations>>,
        breaker: Arc<Breaker>,
    ) -> Self {
        let transports = transports
            .iter()
            .map(|tls| {
                let mut tcp = HttpConnector::new();
                tcp.set_connect_timeout(Some(cluster.connect_timeout));
                tcp.set_nodelay(true);
                let connector = Connector {
                    tcp,
                    tls: tls.clone(),
                    timeout: cluster.connect_timeout,
                    connections: connections.clone(),
                    active: active.clone(),
                    destinations: destinations.clone(),
                    breaker: breaker.clone(),
                };
                let pool = H2Pool::default();
                Transport {
                    http1: std::sync::OnceLock::new(),
                    connector,
                    idle_timeout: cluster.idle_timeout,
                    http2: pool.clone(),
                    h2_connector: H2Connector {
                        tls: tls.clone(),
                        connect_timeout: cluster.connect_timeout,
                        idle_timeout: cluster.idle_timeout,
                        http2_options: cluster.http2,
                        connections: connections.clone(),
                        active: active.clone(),
                        destinations: destinations.clone(),
                        breaker: breaker.clone(),
                        pool,
                    },
                }
            })
            .collect();
        Self {
            protocol: cluster.protocol,
            transports,
        }
    }

    /// Drops the pooled h2 connections (and connects under way) to endpoints not in `keep`: the endpoint left
    /// the cluster. A connection in use finishes its streams and then closes, its senders gone.
    pub fn retain_endpoints(&self, keep: &std::collections::HashSet<SocketAddr>) {
        for transport in &self.transports {
            if let Ok(mut pool) = transport.http2.lock() {
                pool.retain(|endpoint, _| keep.contains(endpoint));
            }
        }
    }

    /// Endpoints with an entry in the h2 pools (a connection or a connect under way).
    pub fn h2_pooled(&self) -> usize {
        self.transports
            .iter()
            .map(|t| t.http2.lock().map(|p| p.len()).unwrap_or(0))
            .sum()
    }

    /// Sends `request` (whose URI holds only the path) to `endpoint`, in the protocol the cluster speaks to a
    /// request that arrived over `downstream`. Over h2 the stream counts as open (for the connection's idle
    /// timeout) until the returned guard is dropped, which the caller does when the response has ended.
    pub async fn send(
        &self,
        picked: Picked,
        mut request: Request<UpstreamBody>,
        downstream: http::Version,
    ) -> Result<(Response<Incoming>, Option<OpenStream>), SendError> {
        let endpoint = picked.address;
        let Some(transport) = self.transports.get(picked.transport) else {
            return Err(SendError::Connect(format!(
                "no transport {} for {endpoint}",
                picked.transport
            )));
        };
        // The path travels as it is (no copy, no second parse); only the authority is new.
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let h2 = match self.protocol {
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::UseDownstream => downstream == http::Version::HTTP_2,
            // AUTO speaks HTTP/1.1: in plaintext there is no ALPN to negotiate h2, and over TLS it offers
            // `http/1.1` (documented difference: Envoy would offer both and follow the server's choice).
            UpstreamProtocol::Http1 | UpstreamProtocol::Auto => false,
        };
        if h2 {
            let authority = request
                .headers_mut()
                .remove(http::header::HOST)
                .and_then(|h| h.to_str().ok().map(str::to_string))
                .unwrap_or_else(|| endpoint.to_string());
            *request.uri_mut() = uri(&authority, path)?;
            *request.version_mut() = http::Version::HTTP_2;
            self.send_h2(transport, endpoint, request)
                .await
                .map(|(response, stream)| (response, Some(stream)))
        } else {
            *request.uri_mut() = uri(&endpoint.to_string(), path)?;
            *request.version_mut() = http::Version::HTTP_11;
            headers_only_length(&mut request);
            transport
                .http1()
                .request(request)
                .await
                .map(|response| (response, None))
                .map_err(|e| {
                    if is_overflow(&e) {
                        SendError::Overflow
                    } else if e.is_connect() && is_timeout(&e) {
                        SendError::ConnectTimeout(error_chain(&e))
                    } else if e.is_connect() {
                        SendError::Connect(error_chain(&e))
                    } else {
                        SendError::Reset(error_chain(&e))
                    }
                })
        }
    }

    async fn send_h2(
        &self,
        transport: &Transport,
        endpoint: SocketAddr,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, OpenStream), SendError> {
        let H2Connection {
            mut sender,
            activity,
            mut info,
        } = h2_connection(transport, endpoint, None).await?;
        let mut stream = activity.stream();
        let usable = match stream {
            Some(_) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            // Closing for idleness, or closed between the pick and now (the upstream's GOAWAY): the request was
            // not sent, so it takes a new connection, as Envoy's pool would.
            drop(stream);
            let connection = h2_connection(transport, endpoint, Some(&activity)).await?;
            sender = connection.sender;
            info = connection.info;
            stream = connection.activity.stream();
            sender
                .ready()
                .await
                .map_err(|e| SendError::Reset(error_chain(&e)))?;
        }
        let stream = stream.ok_or_else(|| {
            SendError::Reset(format!(
                "the new h2 connection to {endpoint} closed at once"
            ))
        })?;
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Reset(error_chain(&e)))?;
        response.extensions_mut().insert(info);
        Ok((response, stream))
    }
}

/// The pooled h2 connection to `endpoint` (other than `stale`, one found unusable), or the one a connect under
/// way opens; else starts that connect. One lock on the pool, as before, on the common path.
async fn h2_connection(
    transport: &Transport,
    endpoint: SocketAddr,
    stale: Option<&Arc<Activity>>,
) -> Result<H2Connection, SendError> {
    let mut waiting = {
        let mut pool = transport
            .http2
            .lock()
            .map_err(|_| SendError::Connect(format!("the h2 pool for {endpoint} is poisoned")))?;
        match pool.get(&endpoint) {
            Some(H2Slot::Ready(c))
                if !c.sender.is_closed() && !stale.is_some_and(|s| Arc::ptr_eq(s, &c.activity)) =>
            {
                return Ok(c.clone());
            }
            Some(H2Slot::Connecting(waiting)) => waiting.clone(),
            _ => {
                let (done, waiting) = watch::channel(None);
                pool.insert(endpoint, H2Slot::Connecting(waiting.clone()));
                let connector = transport.h2_connector.clone();
                let mine = waiting.clone();
                tokio::spawn(async move {
                    let result = connector.connect(endpoint).await;
                    if let Ok(mut pool) = connector.pool.lock() {
                        // Only if the slot is still this connect's: the endpoint may have left meanwhile.
                        if matches!(pool.get(&endpoint), Some(H2Slot::Connecting(w)) if w.same_channel(&mine))
                        {
                            match &result {
                                Ok(connection) => {
                                    pool.insert(endpoint, H2Slot::Ready(connection.clone()));
                                }
                                // The next request tries again.
                                Err(_) => {
                                    pool.remove(&endpoint);
                                }
                            }
                        }
                    }
                    let _ = done.send(Some(result));
                });
                waiting
            }
        }
    };
    let result = waiting
        .wait_for(Option::is_some)
        .await
        .map_err(|_| SendError::Connect(format!("the connect to {endpoint} was abandoned")))?
        .clone();
    result.unwrap_or_else(|| Err(SendError::Connect(format!("no connection to {endpoint}"))))
}

impl H2Connector {
    async fn connect(&self, endpoint: SocketAddr) -> Result<H2Connection, SendError> {
        let permit = self
            .breaker
            .new_connection()
            .await
            .map_err(|_| SendError::Overflow)?;
        // `connect_timeout` covers TCP and the TLS handshake together, as in Envoy.
        let started = tokio::time::Instant::now();
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(endpoint),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout(format!("connecting to {endpoint} timed out")))?
        .map_err(|e| SendError::Connect(format!("connecting to {endpoint}: {e}")))?;
        let _ = stream.set_nodelay(true);
        self.connections.inc();
        let active = ActiveConnection::new(
            &self.active,
            self.destinations.as_ref().map(|d| d.connected(endpoint)),
        );
        let (stream, info) = match &self.tls {
            None => {
                let info = UpstreamConnection::plain(&stream);
                (Stream::Plain(stream), info)
            }
            Some(tls) => {
                let left = self.connect_timeout.saturating_sub(started.elapsed());
                let stream = tls.connect(stream, Alpn::Http2, left).await.map_err(|e| {
                    if e.error.kind() == std::io::ErrorKind::TimedOut {
                        SendError::ConnectTimeout(format!("TLS with {endpoint}: {e}"))
                    } else {
                        SendError::Connect(e.to_string())
                    }
                })?;
                let info = UpstreamConnection::tls(&stream, &tls.context);
                (Stream::from(stream), info)
            }
        };
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Announced in SETTINGS as Envoy does. Envoy also opens no more streams than this per connection
            // (a second connection takes the rest); here only the upstream's own limit holds them back.
            .max_concurrent_streams(self.http2_options.max_concurrent_streams)
            .initial_stream_window_size(self.http2_options.initial_stream_window_size)
            .initial_connection_window_size(self.http2_options.initial_connection_window_size)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                SendError::Connect(format!("h2 handshake with {endpoint}: {}", error_chain(&e)))
            })?;
        let activity = Activity::new();
        let idle_timeout = self.idle_timeout;
        let watched = activity.clone();
        let pool = self.pool.clone();
        // Erased to a `Send` future here: proving `Send` through the generic watcher trips over hyper's body
        // error type (a higher-ranked `From` bound).
        let connection: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> =
            Box::pin(connection);
        tokio::spawn(async move {
            match h2_idle::until_idle(connection, watched.clone(), idle_timeout).await {
                Some(Err(e)) => {
                    tracing::debug!(%endpoint, error = %e, "upstream h2 connection ended")
                }
                Some(Ok(())) => {}
                None => tracing::debug!(%endpoint, "upstream h2 connection closed: idle timeout"),
            }
            // The connection leaves the pool with its end (GOAWAY, reset, idle close), unless a newer one
            // already took its place.
            if let Ok(mut pool) = pool.lock()
                && matches!(pool.get(&endpoint), Some(H2Slot::Ready(c)) if Arc::ptr_eq(&c.activity, &watched))
            {
                pool.remove(&endpoint);
            }
            drop(active);
            drop(permit);
        });
        Ok(H2Connection {
            sender,
            activity,
            info,
        })
    }
}

/// Opens HTTP/1.1 connections for hyper's pool: TCP, then TLS when the transport has it.
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    tls: Option<UpstreamTls>,
    timeout: Duration,
    connections: Counter,
    active: Gauge,
    destinations: Option<Arc<Destinations>>,
    breaker: Arc<Breaker>,
}

/// The connector's error when the circuit breaker refused to queue the request.
#[derive(Debug, thiserror::Error)]
#[error("too many requests waiting for a connection")]
struct PendingOverflow;

fn is_overflow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<PendingOverflow>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// True when the connector gave up at `connect_timeout` (hyper-util's `HttpConnector` reports it as an I/O
/// error of kind `TimedOut`).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = e.source();
    }
    false
}

impl tower_service::Service<Uri> for Connector {
    type Response = Connected;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The pool's URIs name the endpoint by its address (see `send`).
        let endpoint: Option<SocketAddr> = uri.authority().and_then(|a| a.as_str().parse().ok());
        let destinations = self.destinations.clone();
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        let timeout = self.timeout;
        let connections = self.connections.clone();
        let active = self.active.clone();
        let breaker = self.breaker.clone();
        Box::pin(async move {
            let permit = breaker
                .new_connection()
                .await
                .map_err(|_| Box::new(PendingOverflow) as BoxError)?;
            // `connect_timeout` covers TCP and the TLS handshake together, as in Envoy.
            let started = tokio::time::Instant::now();
            let tcp = connecting.await?.into_inner();
            connections.inc();
            let host = destinations.zip(endpoint).map(|(d, e)| d.connected(e));
            let active = ActiveConnection::new(&active, host);
            let (stream, info) = match tls {
                None => {
                    let info = UpstreamConnection::plain(&tcp);
                    (Stream::Plain(tcp), info)
                }
                Some(tls) => {
                    let left = timeout.saturating_sub(started.elapsed());
                    let stream = tls.connect(tcp, Alpn::Http1, left).await?;
                    let info = UpstreamConnection::tls(&stream, &tls.context);
                    (Stream::from(stream), info)
                }
            };
            Ok(Connected {
                info,
                io: TokioIo::new(stream),
                _permit: permit,
                _active: active,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A pooled HTTP/1.1 connection, plaintext or TLS.
    struct Connected {
        #[pin]
        io: TokioIo<Stream>,
        // Put in each response's extensions by hyper's pool.
        info: UpstreamConnection,
        // The connection's place under `max_connections`, given back when it closes.
        _permit: Permit,
        _active: ActiveConnection,
    }
}

impl Connection for Connected {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new().extra(self.info.clone())
    }
}

impl hyper::rt::Read for Connected {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Connected {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}

fn uri(authority: &str, path: http::uri::PathAndQuery) -> Result<Uri, SendError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(
        authority
            .parse()
            .map_err(|e| SendError::Reset(format!("bad upstream authority {authority:?}: {e}")))?,
    );
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).map_err(|e| SendError::Reset(format!("bad upstream URI: {e}")))
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Envoy's HTTP/1 codec writes `content-length: 0` on a request that ends with its headers, unless its method
/// has no body by definition (`GET`, `HEAD`, `DELETE`, `TRACE`, `CONNECT`); hyper would send none. Checked
/// against Envoy 1.40 (`tests/envoy_differential.rs`).
fn headers_only_length(request: &mut http::Request<UpstreamBody>) {
    use http::Method;
    use http_body::Body as _;
    let bodiless = [
        Method::GET,
        Method::HEAD,
        Method::DELETE,
        Method::TRACE,
        Method::CONNECT,
    ];
    if request.body().is_end_stream()
        && !bodiless.contains(request.method())
        && !request.headers().contains_key(http::header::CONTENT_LENGTH)
        && !request
            .headers()
            .contains_key(http::header::TRANSFER_ENCODING)
    {
        request.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("0"),
        );
    }
}
