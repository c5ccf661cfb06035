//! Pooled HTTP clients for one cluster: HTTP/1.1 and h2, with the cluster's connect timeout and idle timeout.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use outrigger_config::model::Cluster;
use outrigger_config::model::cluster::UpstreamProtocol;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

pub struct UpstreamClient {
    protocol: UpstreamProtocol,
    http1: Client<HttpConnector, UpstreamBody>,
    http2: Client<HttpConnector, UpstreamBody>,
}

impl UpstreamClient {
    pub fn new(cluster: &Cluster) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cluster.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cluster.idle_timeout);
        let http1 = builder.build(connector.clone());
        builder
            .http2_only(true)
            .http2_initial_stream_window_size(cluster.http2.initial_stream_window_size)
            .http2_initial_connection_window_size(cluster.http2.initial_connection_window_size);
        let http2 = builder.build(connector);
        Self {
            protocol: cluster.protocol,
            http1,
            http2,
        }
    }

    /// The client for a request that arrived over `downstream`.
    pub fn for_request(&self, downstream: http::Version) -> &Client<HttpConnector, UpstreamBody> {
        let h2 = match self.protocol {
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::UseDownstream => downstream == http::Version::HTTP_2,
            // Without TLS there is no ALPN to negotiate h2, so AUTO speaks HTTP/1.1 in plaintext.
            UpstreamProtocol::Http1 | UpstreamProtocol::Auto => false,
        };
        if h2 { &self.http2 } else { &self.http1 }
    }
}
