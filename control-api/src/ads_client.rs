//! The proxy's ADS client: one aggregated xDS stream to the control plane named in `dynamic_resources`, state
//! of the world (`StreamAggregatedResources`) or incremental (`DeltaAggregatedResources`).
//!
//! ```text
//! Server::from_cluster(&ads cluster)  Options { node, delta, listeners, clusters, static names, timeout }
//!                 \                    /
//!                  spawn(server, options, sink) -> Handle (stops the client when dropped or shut down)
//!                        |
//!    connect -> stream (sotw.rs | delta.rs) -> a response of one type -> state.rs: convert every resource
//!    (outrigger_config::resource, one descriptor pool per response), the state it leads to -> Sink::apply
//!    Ok: commit, ACK | Err or a bad resource: keep the previous state, NACK -> names to follow
//!    (subscriptions.rs) -> on a broken stream, keep the state, back off (backoff.rs) and reconnect
//! ```
//!
//! The public interface:
//! - [`Server::from_cluster`]: where the control plane is (the first endpoint of the static ADS cluster,
//!   plaintext HTTP/2).
//! - [`Options`] (or [`Options::from_snapshot`]): who we are and what to subscribe to.
//! - [`Sink`]: told each state the client would move to ([`Sink::apply`] may refuse it) and each [`Event`].
//! - [`Resources`]: the accepted dynamic state, each resource with its version and when it last changed.
//! - [`spawn`] -> [`Handle`].
//!
//! What Envoy's xDS protocol asks of a client, and where it is done: listeners and clusters are subscribed with
//! a wildcard, route configurations and endpoints by the names the current listeners and clusters use
//! (`subscriptions.rs`); every response is ACKed or NACKed, a NACK carries the previous good version and the
//! problems as `outrigger validate` prints them; the last good state survives a NACK, a disconnect and a dead
//! server; reconnects back off exponentially with jitter (500 ms to 30 s); nonces do not survive a reconnect,
//! delta streams resend their subscriptions with `initial_resource_versions`. Resources sent with a TTL
//! (`envoy.service.discovery.v3.Resource.ttl`, SotW in the wrapper, delta in the resource) are removed when no
//! response refreshes them in time (a heartbeat: the resource again without its body); `state.rs` keeps the
//! expiries, the stream (or the back-off between streams) wakes up for the next one.

mod backoff;
mod delta;
mod node;
mod options;
mod pause;
mod server;
mod sotw;
mod state;
mod subscriptions;
#[cfg(test)]
mod tests;

use backoff::Backoff;
/// The bootstrap's node as the proto requests carry it (also the load reports').
pub use node::proto as node_proto;
pub use options::{Api, Options, dynamic_secret_names, dynamic_secret_sources, secret_sources};
use outrigger_config::model::cluster::ClusterEndpoints;
use outrigger_config::model::tls::Secret;
use outrigger_config::model::{Cluster, Listener, RouteConfig};
pub use server::{ClientConfig, Server, ServerName, TlsConnect};
use state::{InitialFetch, State};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Envoy's `initial_fetch_timeout` default.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The five resource types, in the order Envoy subscribes to them (make before break: clusters, their
/// endpoints, listeners, their routes), then the secrets listeners and clusters name (SDS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Cluster,
    Endpoints,
    Listener,
    Route,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Cluster,
        Kind::Endpoints,
        Kind::Listener,
        Kind::Route,
        Kind::Secret,
    ];

    /// The types asked for by name: what the listeners and clusters held name.
    pub const BY_NAME: [Kind; 3] = [Kind::Endpoints, Kind::Route, Kind::Secret];

    pub fn type_url(self) -> &'static str {
        use outrigger_config::resource::documents::{
            CLUSTER, CLUSTER_LOAD_ASSIGNMENT, LISTENER, ROUTE_CONFIGURATION, SECRET,
        };
        match self {
            Kind::Cluster => CLUSTER,
            Kind::Endpoints => CLUSTER_LOAD_ASSIGNMENT,
            Kind::Listener => LISTENER,
            Kind::Route => ROUTE_CONFIGURATION,
            Kind::Secret => SECRET,
        }
    }

    pub fn from_type_url(type_url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_url() == type_url)
    }

    /// Listeners and clusters are subscribed as a whole (wildcard), the others by name.
    pub fn is_wildcard(self) -> bool {
        matches!(self, Kind::Cluster | Kind::Listener)
    }

    /// Envoy's short name: `CDS`, `EDS`, `LDS`, `RDS`, `SDS`.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Cluster => "CDS",
            Kind::Endpoints => "EDS",
            Kind::Listener => "LDS",
            Kind::Route => "RDS",
            Kind::Secret => "SDS",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short())
    }
}

/// What the client tells the sink besides new states: for statistics (`control_plane.connected_state`,
/// `<type>.update_attempt/_success/_rejected`) and readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A stream to the control plane is open.
    Connected,
    /// The open stream broke (it is retried after a back-off); the state stays as it was.
    Disconnected,
    /// A response of this type arrived.
    UpdateAttempt(Kind),
    /// It was accepted (and ACKed); with its version (`system_version_info` on delta streams).
    UpdateSuccess(Kind, String),
    /// It was refused (and NACKed).
    UpdateRejected(Kind),
    /// The first listeners and clusters, and the routes and endpoints they name, have arrived, or the initial
    /// fetch timeout passed. Once per client.
    InitialFetchDone,
    /// `initial_fetch_timeout` passed before all of it arrived (just before `InitialFetchDone`).
    InitialFetchTimedOut,
    /// A subscription started: a wildcard type (no names) or these names of a by-name type, each once per
    /// client (Envoy counts an `update_attempt` when a subscription starts).
    Subscribed(Kind, Vec<String>),
    /// After `UpdateSuccess`: the resources the update carried (not heartbeats) and those it removed or
    /// that expired, with its version ("" for an expiry). Envoy counts per resource for SDS (`sds.<name>.*`).
    Delivered(Kind, Vec<String>, String),
    /// After `UpdateRejected`: the names of the type subscribed to (each such subscription counts it).
    Refused(Kind, Vec<String>),
}

/// One resource of the dynamic state.
#[derive(Debug)]
pub struct Versioned<T> {
    pub value: Arc<T>,
    /// The version of the response that last changed it (state of the world), or the resource's own version
    /// (delta).
    pub version: String,
    pub last_updated: SystemTime,
    /// The encoded resource: an identical one in a later response is not converted again.
    bytes: Arc<Vec<u8>>,
}

// Not derived: a clone shares the value, whatever `T` is.
impl<T> Clone for Versioned<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            version: self.version.clone(),
            last_updated: self.last_updated,
            bytes: self.bytes.clone(),
        }
    }
}

impl<T> Versioned<T> {
    /// A resource made by hand (tests, a sink's own bookkeeping): never taken for one a response carries.
    pub fn new(value: T, version: impl Into<String>) -> Self {
        Self {
            value: Arc::new(value),
            version: version.into(),
            last_updated: SystemTime::now(),
            bytes: Arc::new(Vec::new()),
        }
    }

    fn same(&self, other: &Self) -> bool {
        self.version == other.version
            && (Arc::ptr_eq(&self.value, &other.value)
                || (!self.bytes.is_empty() && self.bytes == other.bytes))
    }
}

/// The whole accepted dynamic state, by resource name (endpoints by EDS service name, secrets by name).
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub listeners: BTreeMap<String, Versioned<Listener>>,
    pub routes: BTreeMap<String, Versioned<RouteConfig>>,
    pub clusters: BTreeMap<String, Versioned<Cluster>>,
    pub endpoints: BTreeMap<String, Versioned<ClusterEndpoints>>,
    pub secrets: BTreeMap<String, Versioned<Secret>>,
}

impl Resources {
    /// The names held of one type, with their versions.
    pub fn versions(&self, kind: Kind) -> BTreeMap<String, String> {
        fn of<T>(map: &BTreeMap<String, Versioned<T>>) -> BTreeMap<String, String> {
            map.iter()
                .map(|(k, v)| (k.clone(), v.version.clone()))
                .collect()
        }
        match kind {
            Kind::Cluster => of(&self.clusters),
            Kind::Endpoints => of(&self.endpoints),
            Kind::Listener => of(&self.listeners),
            Kind::Route => of(&self.routes),
            Kind::Secret => of(&self.secrets),
        }
    }

    fn same(&self, other: &Self) -> bool {
        fn same<T>(a: &BTreeMap<String, Versioned<T>>, b: &BTreeMap<String, Versioned<T>>) -> bool {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
        }
        same(&self.listeners, &other.listeners)
            && same(&self.routes, &other.routes)
            && same(&self.clusters, &other.clusters)
            && same(&self.endpoints, &other.endpoints)
            && same(&self.secrets, &other.secrets)
    }
}

/// Where accepted states go, and what happens to the client.
pub trait Sink: Send + Sync + 'static {
    /// Called after a response of one type was decoded and converted without error and changes the state,
    /// with the state it would lead to. `Ok`: the client commits it and ACKs; `Err(message)`: the client NACKs
    /// with that message and keeps the previous state. A valid response that changes nothing is ACKed
    /// without a call.
    fn apply(&self, kind: Kind, next: &Resources) -> Result<(), String>;
    /// Statistics and readiness.
    fn event(&self, event: Event);
    /// `true` while CDS is paused (Envoy: a cluster warms after the initial ones are in place): a stream then
    /// holds its CDS requests, ACKs included, until it is `false` again. `None`: never paused.
    fn cds_pause(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
}

/// The running client. Dropping it (or [`Handle::shutdown`]) stops the client and closes its stream.
pub struct Handle {
    client: tokio::task::JoinHandle<()>,
    timer: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops the client and waits until it has.
    pub async fn shutdown(mut self) {
        self.client.abort();
        self.timer.abort();
        let _ = (&mut self.client).await;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.client.abort();
        self.timer.abort();
    }
}

/// Starts the client on the current tokio runtime.
pub fn spawn(server: Server, options: Options, sink: Arc<dyn Sink>) -> Handle {
    let initial = InitialFetch::new(sink.clone());
    let timeout = options.initial_fetch_timeout;
    let on_timeout = initial.clone();
    let timer = tokio::spawn(async move {
        if timeout.is_zero() {
            return;
        }
        tokio::time::sleep(timeout).await;
        if on_timeout.time_out() {
            tracing::info!("xDS initial fetch timed out after {timeout:?}; going on without it");
        }
    });
    let client = tokio::spawn(run(server, State::new(options, sink, initial)));
    Handle { client, timer }
}

/// How a stream ended.
struct Ended {
    /// The stream was open (the server answered the call).
    connected: bool,
    /// A response arrived on it: the back-off starts again from its base.
    received: bool,
    reason: String,
}

/// What an open stream does with what arrives on it (`sotw::Stream`, `delta::Stream`).
trait Responses<R> {
    fn state(&mut self) -> &mut State;
    fn respond(&mut self, response: R);
    /// Asks for the names now wanted, if they changed (after an expiry, or when the ADS stream's resources
    /// name other secrets of an SDS source).
    fn follow_names(&mut self);
    /// Sends what CDS's pause held, if it has ended.
    fn resume(&mut self);
}

/// Waits until the next TTL expiry, or for ever when nothing expires.
async fn next_expiry(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits until a watched value changes (`true`) or its sender is gone (`false`); for ever without one.
async fn changed<T>(watched: &mut Option<tokio::sync::watch::Receiver<T>>) -> bool {
    match watched {
        Some(watched) => watched.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Follows a stream the server opened (or says it refused it) until it ends: each response goes to `handler`.
async fn follow<R, H: Responses<R>>(
    opened: Result<tonic::Response<tonic::Streaming<R>>, tonic::Status>,
    handler: &mut H,
    server: &Server,
    protocol: &str,
) -> Ended {
    let mut responses = match opened {
        Ok(responses) => responses.into_inner(),
        Err(status) => {
            return Ended {
                connected: false,
                received: false,
                reason: format!("the server refused the stream: {status}"),
            };
        }
    };
    tracing::info!(
        node = handler.state().node_id(),
        "xDS stream open to {} ({protocol})",
        server.uri
    );
    handler.state().event(Event::Connected);
    // An SDS stream also follows the secret names the ADS stream's resources bring and take away.
    let mut extra = handler.state().options().extra_secret_names.clone();
    let mut pause = handler.state().cds_pause();
    let mut received = false;
    let reason = loop {
        let expiry = handler.state().next_expiry();
        // `next` on the stream is cancel-safe: a response half read stays in the stream.
        let message = tokio::select! {
            message = tokio_stream::StreamExt::next(&mut responses) => message,
            () = next_expiry(expiry) => {
                handler.state().expire();
                handler.follow_names();
                continue;
            }
            changed = changed(&mut extra) => {
                if !changed {
                    // The sender is gone (shutting down): no more changes to follow.
                    extra = None;
                }
                handler.follow_names();
                continue;
            }
            changed = changed(&mut pause) => {
                if !changed {
                    pause = None;
                }
                handler.resume();
                continue;
            }
        };
        match message {
            Some(Ok(response)) => {
                received = true;
                handler.respond(response);
            }
            None => break "the server closed the stream".to_string(),
            Some(Err(status)) => break format!("the stream failed: {status}"),
        }
    };
    Ended {
        connected: true,
        received,
        reason,
    }
}

async fn run(server: Server, mut state: State) {
    let mut backoff = Backoff::new();
    let node = state.node_id().to_string();
    loop {
        let ended = match server.channel().await {
            Ok(channel) => {
                if state.options().delta {
                    delta::run(channel, &server, &mut state).await
                } else {
                    sotw::run(channel, &server, &mut state).await
                }
            }
            Err(reason) => Ended {
                connected: false,
                received: false,
                reason,
            },
        };
        if ended.connected {
            state.event(Event::Disconnected);
        }
        if ended.received {
            backoff.reset();
        }
        let wait = backoff.next();
        tracing::warn!(
            node,
            cluster = server.cluster,
            "xDS stream to {}: {}; keeping the last good configuration, retrying in {wait:?}",
            server.uri,
            ended.reason
        );
        // Resources keep expiring while there is no stream, as in Envoy.
        let retry = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(retry) => break,
                () = next_expiry(state.next_expiry()) => state.expire(),
            }
        }
    }
}
