//! `outrigger control-plane`: a file-backed xDS server. It serves the Envoy resources of a folder (see
//! `folder.rs` for its layout and `outrigger_config::resource::documents` for a file's form) over ADS, both
//! state-of-the-world (`sotw.rs`) and incremental (`delta.rs`), to Envoy and to Outrigger alike. Every file is
//! checked with the proxy's own conversion before anything in it is sent; a file that fails is reported with
//! its path and not sent, so clients keep the last good version. A changed file reaches every subscribed client
//! within a second.

mod delta;
mod folder;
pub mod issuer;
mod sotw;
mod store;
mod workloads;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use workloads::Publisher;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the configuration folder {folder}: {source}")]
    Folder {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Ca(String),
    #[error("the xDS server on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        source: tonic::transport::Error,
    },
}

/// A control plane whose socket is bound; it serves once [`ControlPlane::serve`] runs.
pub struct ControlPlane {
    listener: tokio::net::TcpListener,
    store: watch::Receiver<Arc<store::Store>>,
    publisher: Arc<Publisher>,
    watcher: tokio::task::JoinHandle<()>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

/// The server side of TLS (`--tls-cert`, `--tls-key`, `--client-ca`), as PEM.
pub struct ServerTls {
    pub certificate_chain: Vec<u8>,
    pub private_key: Vec<u8>,
    /// Clients must present a certificate signed by one of these (mutual TLS).
    pub client_ca: Option<Vec<u8>>,
}

impl ControlPlane {
    /// Binds `listen` and reads the folder once (so a wrong path fails here).
    pub async fn bind(folder: PathBuf, listen: SocketAddr) -> Result<Self, Error> {
        Self::bind_with(folder, listen, None).await
    }

    /// As [`ControlPlane::bind`], also issuing workload certificates (`default`, `ROOTCA`) with the CA in
    /// `ca_dir` to nodes whose metadata gives a SPIFFE identity (see `issuer.rs`).
    pub async fn bind_issuing(
        folder: PathBuf,
        listen: SocketAddr,
        ca_dir: &std::path::Path,
        ttl: std::time::Duration,
    ) -> Result<Self, Error> {
        let issuer = issuer::Issuer::load(ca_dir, ttl).map_err(Error::Ca)?;
        Self::bind_with(folder, listen, Some(issuer)).await
    }

    async fn bind_with(
        folder: PathBuf,
        listen: SocketAddr,
        issuer: Option<issuer::Issuer>,
    ) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Listen {
                address: listen,
                source,
            })?;
        let mut files = folder::Folder::new(&folder);
        files.scan(false).map_err(|source| Error::Folder {
            folder: folder.clone(),
            source,
        })?;
        let renews = issuer.is_some();
        let (publisher, store) = Publisher::new(files.store(), issuer);
        let publish = publisher.clone();
        let renewer = renews.then(|| tokio::spawn(publisher.clone().renew()));
        let watcher = tokio::spawn(async move {
            let mut files = files;
            loop {
                tokio::time::sleep(folder::POLL_INTERVAL).await;
                // File reads are blocking: off the runtime's workers.
                let scanned = tokio::task::spawn_blocking(move || {
                    let changed = files.scan(true);
                    (files, changed)
                })
                .await;
                let Ok((scanned, changed)) = scanned else {
                    tracing::error!("the folder watcher failed; serving what the folder held");
                    return;
                };
                files = scanned;
                match changed {
                    Ok(true) => publish.folder_changed(files.store()),
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        "cannot read the configuration folder {}: {e}; serving what it held",
                        folder.display()
                    ),
                }
            }
        });
        Ok(Self {
            listener,
            store,
            publisher,
            watcher,
            renewer,
            tls: None,
        })
    }

    /// Serves over TLS (ALPN h2), requiring a client certificate that `client_ca` signed when it is given.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(tls.certificate_chain, tls.private_key));
        if let Some(ca) = tls.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false);
        }
        self.tls = Some(config);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then every ADS stream ends (clients reconnect elsewhere) and the
    /// server stops once their connections are closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let address = self.local_addr().map_err(|source| Error::Listen {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let service = Ads {
            store: self.store,
            publisher: self.publisher,
            stop: stopped,
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.tls {
            // A bad certificate or key is found here, before anything is served.
            builder = builder
                .tls_config(tls)
                .map_err(|source| Error::Serve { address, source })?;
        }
        let served = builder
            .add_service(AggregatedDiscoveryServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // ADS streams never end by themselves: without this, a connected client keeps the server up.
                let _ = stop.send(true);
            })
            .await;
        self.watcher.abort();
        if let Some(renewer) = self.renewer {
            renewer.abort();
        }
        served.map_err(|source| Error::Serve { address, source })
    }
}

struct Ads {
    store: watch::Receiver<Arc<store::Store>>,
    publisher: Arc<Publisher>,
    /// Becomes true when the server stops.
    stop: watch::Receiver<bool>,
}

/// Responses queued per stream before the stream handler waits for the client to read.
const QUEUE: usize = 16;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = peer(&request);
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(sotw::serve(
            request.into_inner(),
            self.store.clone(),
            self.publisher.clone(),
            sender,
            peer,
            self.stop.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let peer = peer(&request);
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(delta::serve(
            request.into_inner(),
            self.store.clone(),
            self.publisher.clone(),
            sender,
            peer,
            self.stop.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Logs a client's answer to a response of `type_url`: an ACK (info) or a NACK with its message (a warning);
/// `which` says which response it answered ("version 3", "(nonce 7)").
fn log_answer(node: &str, peer: &str, type_url: &str, which: &str, error: Option<&RpcStatus>) {
    let kind = folder::short_type(type_url);
    match error {
        None => tracing::info!(node, "ACK of {kind} {which}"),
        Some(error) => tracing::warn!(node, peer, "NACK of {kind} {which}: {}", error.message),
    }
}

fn peer<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown peer".to_string())
}
