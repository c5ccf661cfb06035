//! TLS on both sides of the proxy (rustls): contexts from the configuration, kept current as their files
//! rotate; handshakes; peer identities; and why a handshake failed.

pub mod connection_error;
mod context;
pub mod identity;
mod key_pair;
mod secrets;
mod source;
pub mod verify;

pub use context::{Alpn, ClientTls, ServerState, ServerTls, Watched};
pub use identity::Identity;
pub use secrets::Secrets;

use outrigger_config::Snapshot;
use outrigger_config::model::tls::{DownstreamTls, UpstreamTls};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// How often certificate files are reread.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Every TLS context of a snapshot, each built once however many chains or clusters share it. A configuration
/// update keeps the contexts whose configuration did not change (and so their current certificates); those
/// whose secrets changed get them at `Pending::commit`.
#[derive(Default)]
pub struct Contexts {
    servers: Vec<Arc<ServerTls>>,
    clients: Vec<Arc<ClientTls>>,
    /// The contexts this snapshot added (not kept from the previous one): the ones `watch` must start rereading.
    added: Vec<Arc<dyn Watched>>,
}

/// Secrets to swap into kept contexts once the whole update is known to apply.
#[derive(Default)]
#[must_use = "commit the secrets once the update applies"]
pub struct Pending(Vec<Box<dyn FnOnce() + Send>>);

impl Pending {
    pub fn commit(self) {
        for swap in self.0 {
            swap();
        }
    }
}

impl Contexts {
    /// Reads every certificate, key and trust bundle now, so a wrong path fails at startup, naming its place.
    /// Contexts naming an SDS secret wait for it (`update`).
    pub fn new(snapshot: &Snapshot) -> Result<Self, String> {
        let secrets = Secrets::new(snapshot, Default::default());
        let (contexts, pending) = Self::update(snapshot, secrets, &Contexts::default())?;
        pending.commit();
        Ok(contexts)
    }

    /// The contexts of `snapshot`, keeping those of `previous` whose configuration is the same; a kept
    /// context whose secrets changed is rebuilt now (an unusable secret fails the update) and swapped in by
    /// the `Pending` returned.
    pub fn update(
        snapshot: &Snapshot,
        secrets: Secrets,
        previous: &Contexts,
    ) -> Result<(Self, Pending), String> {
        let mut contexts = Contexts::default();
        let mut pending = Pending::default();
        for listener in &snapshot.listeners {
            let chains = listener
                .filter_chains
                .iter()
                .chain(listener.default_filter_chain.iter());
            for chain in chains {
                let Some(tls) = &chain.tls else { continue };
                if contexts.server(tls).is_some() {
                    continue;
                }
                let place = || {
                    format!(
                        "listener {:?}, filter chain {:?}, transport_socket",
                        listener.name, chain.name
                    )
                };
                if let Some(kept) = previous.server(tls) {
                    if let Some(prepared) = kept
                        .prepare(&secrets)
                        .map_err(|e| format!("{}: {e}", place()))?
                    {
                        let context = kept.clone();
                        pending.0.push(Box::new(move || context.commit(prepared)));
                    }
                    contexts.servers.push(kept);
                    continue;
                }
                let context =
                    ServerTls::new(tls, &secrets).map_err(|e| format!("{}: {e}", place()))?;
                let context = Arc::new(context);
                contexts.added.push(context.clone());
                contexts.servers.push(context);
            }
        }
        for cluster in &snapshot.clusters {
            let configs = cluster
                .tls
                .iter()
                .map(|t| (t, "transport_socket".to_string()));
            let matches = cluster.transport_socket_matches.iter().filter_map(|m| {
                m.tls
                    .as_ref()
                    .map(|t| (t, format!("transport_socket_matches {:?}", m.name)))
            });
            for (tls, place) in configs.chain(matches) {
                if contexts.client(tls).is_some() {
                    continue;
                }
                let place = |e: String| format!("cluster {:?}, {place}: {e}", cluster.name);
                if let Some(kept) = previous.client(tls) {
                    if let Some(prepared) = kept.prepare(&secrets).map_err(place)? {
                        let context = kept.clone();
                        pending.0.push(Box::new(move || context.commit(prepared)));
                    }
                    contexts.clients.push(kept);
                    continue;
                }
                let context = ClientTls::new(tls, &secrets).map_err(place)?;
                let context = Arc::new(context);
                contexts.added.push(context.clone());
                contexts.clients.push(context);
            }
        }
        Ok((contexts, pending))
    }

    pub fn server(&self, config: &DownstreamTls) -> Option<Arc<ServerTls>> {
        self.servers.iter().find(|s| s.config == *config).cloned()
    }

    pub fn client(&self, config: &UpstreamTls) -> Option<Arc<ClientTls>> {
        self.clients.iter().find(|c| c.config == *config).cloned()
    }

    /// Rereads the certificate files of the contexts this snapshot added every `interval`, for as long as a
    /// snapshot still uses them (kept contexts are already watched).
    pub fn watch(&self, interval: Duration) {
        let watched: Vec<std::sync::Weak<dyn Watched>> = self
            .added
            .iter()
            .filter(|w| w.watches_files())
            .map(Arc::downgrade)
            .collect();
        if watched.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let live: Vec<_> = watched
                    .iter()
                    .filter_map(std::sync::Weak::upgrade)
                    .collect();
                if live.is_empty() {
                    return;
                }
                // Reading the files and rebuilding a rustls config blocks: on the blocking pool, never on a
                // worker that serves connections.
                let _ = tokio::task::spawn_blocking(move || {
                    for context in live {
                        context.reload();
                    }
                })
                .await;
            }
        });
    }
}

/// What a terminated TLS connection tells about its two ends.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// The client's certificate, when it presented one.
    pub peer: Option<Arc<Identity>>,
    /// This side's SPIFFE ID (URI SAN), when its certificate has one.
    pub local_uri: Option<String>,
}

/// Terminates TLS on an accepted connection.
pub async fn accept(
    context: &ServerTls,
    stream: TcpStream,
    timeout: Duration,
) -> std::io::Result<(tokio_rustls::server::TlsStream<TcpStream>, Session)> {
    let Some(state) = context.current() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no certificate yet: the secret this TLS context names has not arrived from the control plane",
        ));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(state.config.clone());
    let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(Identity::from_chain)
        .map(Arc::new);
    Ok((
        stream,
        Session {
            peer,
            local_uri: state.local_uri.clone(),
        },
    ))
}

/// Starts TLS on a connection to an upstream.
pub async fn connect(
    context: &ClientTls,
    alpn: Alpn,
    stream: TcpStream,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let Ok(address) = stream.peer_addr() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the upstream connection closed before the TLS handshake",
        ));
    };
    let Some(config) = context.current(alpn) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the secret this cluster's TLS context names has not arrived from the control plane",
        ));
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(
        timeout,
        connector.connect(context.server_name(address), stream),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}
