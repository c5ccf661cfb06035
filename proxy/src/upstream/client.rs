//! Sending requests to a cluster's endpoints. HTTP/1.1 goes through hyper's pooled client (the request's
//! `Host` header carries the authority); h2 keeps one multiplexed connection per endpoint, so the `:authority`
//! the upstream sees is the request's, not the endpoint address.

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::UpstreamProtocol;
use outrigger_config::model::http::Http2Options;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connection failure: {0}")]
    Connect(String),
    #[error("{0}")]
    Reset(String),
}

pub struct UpstreamClient {
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    http2_options: Http2Options,
    http1: Client<HttpConnector, UpstreamBody>,
    http2: Mutex<HashMap<SocketAddr, SendRequest<UpstreamBody>>>,
}

impl UpstreamClient {
    pub fn new(cluster: &Cluster) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cluster.connect_timeout));
        connector.set_nodelay(true);
        let http1 = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cluster.idle_timeout)
            .build(connector);
        Self {
            protocol: cluster.protocol,
            connect_timeout: cluster.connect_timeout,
            http2_options: cluster.http2,
            http1,
            http2: Mutex::default(),
        }
    }

    /// Sends `request` (whose URI holds only the path) to `endpoint`, in the protocol the cluster speaks to a
    /// request that arrived over `downstream`.
    pub async fn send(
        &self,
        endpoint: SocketAddr,
        mut request: Request<UpstreamBody>,
        downstream: http::Version,
    ) -> Result<Response<Incoming>, SendError> {
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let h2 = match self.protocol {
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::UseDownstream => downstream == http::Version::HTTP_2,
            // Without TLS there is no ALPN to negotiate h2, so AUTO speaks HTTP/1.1 in plaintext.
            UpstreamProtocol::Http1 | UpstreamProtocol::Auto => false,
        };
        if h2 {
            let authority = request
                .headers_mut()
                .remove(http::header::HOST)
                .and_then(|h| h.to_str().ok().map(str::to_string))
                .unwrap_or_else(|| endpoint.to_string());
            *request.uri_mut() = uri(&authority, &path)?;
            *request.version_mut() = http::Version::HTTP_2;
            self.send_h2(endpoint, request).await
        } else {
            *request.uri_mut() = uri(&endpoint.to_string(), &path)?;
            *request.version_mut() = http::Version::HTTP_11;
            self.http1.request(request).await.map_err(|e| {
                if e.is_connect() {
                    SendError::Connect(error_chain(&e))
                } else {
                    SendError::Reset(error_chain(&e))
                }
            })
        }
    }

    async fn send_h2(
        &self,
        endpoint: SocketAddr,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = self
            .http2
            .lock()
            .ok()
            .and_then(|pool| pool.get(&endpoint).cloned());
        let mut sender = match pooled {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let sender = self.connect_h2(endpoint).await?;
                if let Ok(mut pool) = self.http2.lock() {
                    pool.insert(endpoint, sender.clone());
                }
                sender
            }
        };
        sender
            .ready()
            .await
            .map_err(|e| SendError::Reset(error_chain(&e)))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Reset(error_chain(&e)))
    }

    async fn connect_h2(
        &self,
        endpoint: SocketAddr,
    ) -> Result<SendRequest<UpstreamBody>, SendError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(endpoint),
        )
        .await
        .map_err(|_| SendError::Connect(format!("connecting to {endpoint} timed out")))?
        .map_err(|e| SendError::Connect(format!("connecting to {endpoint}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(self.http2_options.initial_stream_window_size)
            .initial_connection_window_size(self.http2_options.initial_connection_window_size)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                SendError::Connect(format!("h2 handshake with {endpoint}: {}", error_chain(&e)))
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%endpoint, error = %e, "upstream h2 connection ended");
            }
        });
        Ok(sender)
    }
}

fn uri(authority: &str, path: &str) -> Result<Uri, SendError> {
    format!("http://{authority}{path}")
        .parse()
        .map_err(|e| SendError::Reset(format!("bad upstream URI: {e}")))
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
