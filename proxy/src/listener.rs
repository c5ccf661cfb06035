//! Listeners: bind, accept, recover the original destination, detect the protocol, choose the filter chain and
//! hand the connection to its network filter.

mod original_dst;

use crate::chain::{self, ConnectionFacts};
use crate::detect;
use crate::{Inputs, http, metrics, tcp};
use outrigger_config::model::Listener as ListenerConfig;
use outrigger_config::model::listener::{ListenerFilter, NetworkFilter};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A listener whose socket is bound (so a taken port fails at startup, not later).
pub struct Listener {
    config: Arc<ListenerConfig>,
    socket: TcpListener,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address} for listener {name:?}: {source}; is another process (or another sidecar) using that port?"
)]
pub struct BindError {
    pub name: String,
    pub address: SocketAddr,
    pub source: std::io::Error,
}

impl Listener {
    pub async fn bind(config: &ListenerConfig) -> Result<Self, BindError> {
        let socket = TcpListener::bind(config.address)
            .await
            .map_err(|source| BindError {
                name: config.name.clone(),
                address: config.address,
                source,
            })?;
        Ok(Self {
            config: Arc::new(config.clone()),
            socket,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Accepts until the drain starts.
    pub async fn run(self, inputs: Arc<Inputs>) {
        let labels = metrics::listener(self.local_addr().unwrap_or(self.config.address));
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                () = inputs.drain.started() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(listener = %self.config.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            inputs.metrics.listener_cx.get_or_create(&labels).inc();
            let config = self.config.clone();
            let inputs = inputs.clone();
            let labels = labels.clone();
            tokio::spawn(async move {
                let active = inputs
                    .metrics
                    .listener_cx_active
                    .get_or_create(&labels)
                    .clone();
                active.inc();
                serve_connection(stream, peer, config, &inputs).await;
                active.dec();
            });
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    accepting: Arc<ListenerConfig>,
    inputs: &Arc<Inputs>,
) {
    let guard = inputs.drain.connection();
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let wants_original = accepting.use_original_dst
        || accepting
            .listener_filters
            .contains(&ListenerFilter::OriginalDst);
    let destination = if wants_original {
        original_dst::get(&stream).unwrap_or(local)
    } else {
        local
    };
    // `use_original_dst`: a listener bound (bind_to_port: false) to the original destination takes over.
    let listener = if accepting.use_original_dst {
        inputs
            .handoff_listener(destination)
            .unwrap_or_else(|| accepting.clone())
    } else {
        accepting.clone()
    };
    let filters =
        |f| listener.listener_filters.contains(&f) || accepting.listener_filters.contains(&f);
    let (tls, http_inspect) = (
        filters(ListenerFilter::TlsInspector),
        filters(ListenerFilter::HttpInspector),
    );
    let mut facts = ConnectionFacts {
        source: Some(peer),
        destination: Some(destination),
        transport_protocol: "raw_buffer".to_string(),
        ..ConnectionFacts::default()
    };
    if (tls || http_inspect) && chain::needs_detection(&listener, Some(destination)) {
        match detect::detect(
            &stream,
            tls,
            http_inspect,
            listener.listener_filters_timeout,
        )
        .await
        {
            Some(detected) => {
                if detected.tls {
                    facts.transport_protocol = "tls".to_string();
                }
                facts.server_name = detected.server_name;
                facts.application_protocols = detected.application_protocols;
            }
            None if listener.continue_on_listener_filters_timeout => {}
            None => {
                tracing::debug!(listener = %listener.name, %peer, "protocol detection timed out; closing");
                return;
            }
        }
    }
    let Some(chain) = chain::select(&listener, &facts) else {
        tracing::debug!(listener = %listener.name, %peer, %destination, "no filter chain matches; closing");
        return;
    };
    let own_addresses = inputs.own_addresses(local);
    match chain.filters.first() {
        Some(NetworkFilter::TcpProxy(config)) => {
            tcp::proxy(stream, config, destination, inputs).await
        }
        Some(NetworkFilter::HttpConnectionManager(hcm)) => {
            let connection = http::Connection {
                hcm: hcm.clone(),
                inputs: inputs.clone(),
                peer,
                destination,
                own_addresses,
                labels: metrics::connection_manager(&hcm.stat_prefix),
            };
            http::serve(stream, connection, guard).await;
        }
        None => {}
    }
}
