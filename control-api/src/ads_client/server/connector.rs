//! The connection to a control plane over TLS: TCP, then a rustls handshake with the configuration the
//! caller builds for this attempt (the proxy builds it from the cluster's `UpstreamTlsContext`, reading its
//! files anew, so a rotated certificate is used at the next reconnect). A tower service, as tonic's
//! `connect_with_connector` wants.

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

/// Builds the client side of TLS for one connection attempt to `peer`: the rustls configuration (ALPN `h2`)
/// and the name for the ClientHello and verification.
pub trait TlsConnect: Send + Sync + 'static {
    fn client_config(
        &self,
        peer: SocketAddr,
    ) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), String>;
}

#[derive(Clone)]
pub struct Connector {
    tls: Arc<dyn TlsConnect>,
}

impl Connector {
    pub fn new(tls: Arc<dyn TlsConnect>) -> Self {
        Self { tls }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("TCP connection to {host}:{port} failed: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let peer = tcp.peer_addr()?;
            let (config, name) = tls
                .client_config(peer)
                .map_err(|e| format!("no TLS configuration for {peer}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    // A server that refuses the client's certificate often just closes the connection.
                    let hint = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        " (the server closed the connection: it may not accept this client certificate)"
                    } else {
                        ""
                    };
                    format!("TLS handshake with {peer} failed: {e}{hint}")
                })?;
            Ok(TokioIo::new(stream))
        })
    }
}
