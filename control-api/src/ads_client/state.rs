//! The client's state, which outlives streams: the accepted resources, the version of each type's last
//! accepted response, the initial fetch, and when resources sent with a TTL expire. A response becomes an
//! [`Update`]; [`State::apply`] converts what it carries, builds the state it leads to, asks the sink, and
//! commits or keeps the previous state. [`State::expire`] removes what outlived its TTL the same way.

use super::{Event, Kind, Options, Resources, Sink, Versioned, node, subscriptions};
use envoy_types::pb::envoy::config::core::v3 as core_pb;
use envoy_types::pb::google::protobuf::Any;
use outrigger_config::model::cluster::ClusterEndpoints;
use outrigger_config::model::tls::Secret;
use outrigger_config::model::{Cluster, Listener, RouteConfig};
use outrigger_config::resource::{Decoder, Resource};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// One resource of a response.
pub struct Incoming {
    /// The name a delta response gives it (`Resource.name`); the resource's own name must match it.
    pub name: Option<String>,
    /// The response's version (state of the world) or the resource's (delta).
    pub version: String,
    /// `None`: a resource sent without its body (a TTL heartbeat: a refresh of what the client holds).
    pub any: Option<Any>,
    /// `Resource.ttl`: the resource is removed when no response refreshes it within this time.
    pub ttl: Option<Duration>,
    /// Found wrong while unwrapping it (the response is refused with this).
    pub problem: Option<String>,
}

/// `Resource.ttl` as a duration (a negative one: expired at once).
pub fn ttl(ttl: Option<envoy_types::pb::google::protobuf::Duration>) -> Option<Duration> {
    ttl.map(|d| {
        Duration::new(
            u64::try_from(d.seconds).unwrap_or(0),
            u32::try_from(d.nanos).unwrap_or(0),
        )
    })
}

impl Incoming {
    /// A resource as it came, without TTL.
    pub fn plain(name: Option<String>, version: String, any: Option<Any>) -> Self {
        Self {
            name,
            version,
            any,
            ttl: None,
            problem: None,
        }
    }
}

/// A response of one type, whichever the protocol.
pub struct Update {
    pub kind: Kind,
    /// For the `UpdateSuccess` event.
    pub version: String,
    pub resources: Vec<Incoming>,
    /// Delta: the names the server removed (or says do not exist).
    pub removed: Vec<String>,
    /// State of the world, listeners and clusters: the response is the whole set, anything absent is removed.
    pub full_set: bool,
    /// Delta: each resource carries its own version (a held resource sent again takes the new one).
    pub per_resource_versions: bool,
}

/// `InitialFetchDone`, once per client: from the state when everything arrived, or from the timer.
#[derive(Clone)]
pub struct InitialFetch {
    done: Arc<AtomicBool>,
    sink: Arc<dyn Sink>,
}

impl InitialFetch {
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            done: Arc::new(AtomicBool::new(false)),
            sink,
        }
    }

    /// Emits the event unless it was already; says whether this call did.
    pub fn finish(&self) -> bool {
        let first = !self.done.swap(true, Ordering::SeqCst);
        if first {
            self.sink.event(Event::InitialFetchDone);
        }
        first
    }

    /// The same when `initial_fetch_timeout` ran out first: `InitialFetchTimedOut`, then `InitialFetchDone`.
    pub fn time_out(&self) -> bool {
        let first = !self.done.swap(true, Ordering::SeqCst);
        if first {
            self.sink.event(Event::InitialFetchTimedOut);
            self.sink.event(Event::InitialFetchDone);
        }
        first
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

pub struct State {
    options: Options,
    node: core_pb::Node,
    sink: Arc<dyn Sink>,
    resources: Resources,
    /// The version of the last accepted response of each type: sent back in state-of-the-world requests.
    accepted: HashMap<Kind, String>,
    initial: InitialFetch,
    /// Wildcard types subscribed that have not answered yet.
    waiting: BTreeSet<Kind>,
    /// Routes and endpoints that answered (accepted, refused, or said absent), for the initial fetch.
    arrived: HashMap<Kind, BTreeSet<String>>,
    /// When each resource sent with a TTL goes, unless a response refreshes it first.
    expiries: BTreeMap<(Kind, String), Instant>,
    /// The routes, endpoints and secrets subscribed to so far (`Event::Subscribed` once per name).
    started: HashMap<Kind, BTreeSet<String>>,
}

impl State {
    /// What a new stream asks for, in Envoy's order (clusters, endpoints, listeners, routes, secrets): each
    /// subscribed wildcard type with no names, each by-name type that has names to follow.
    pub fn initial_subscriptions(&self) -> Vec<(Kind, BTreeSet<String>)> {
        Kind::ALL
            .into_iter()
            .filter_map(|kind| {
                if kind.is_wildcard() {
                    self.subscribed(kind).then(BTreeSet::new)
                } else {
                    Some(self.wanted(kind)).filter(|names| !names.is_empty())
                }
                .map(|names| (kind, names))
            })
            .collect()
    }

    /// Whether CDS is paused, as the sink says (see `pause.rs`).
    pub fn cds_pause(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.sink.cds_pause()
    }

    pub fn new(options: Options, sink: Arc<dyn Sink>, initial: InitialFetch) -> Self {
        let waiting = [
            (Kind::Listener, options.listeners),
            (Kind::Cluster, options.clusters),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
        .collect();
        let mut state = Self {
            node: node::proto(&options.node),
            options,
            sink,
            resources: Resources::default(),
            accepted: HashMap::new(),
            initial,
            waiting,
            arrived: HashMap::new(),
            expiries: BTreeMap::new(),
            started: HashMap::new(),
        };
        for kind in [Kind::Cluster, Kind::Listener] {
            if state.subscribed(kind) {
                state.event(Event::Subscribed(kind, Vec::new()));
            }
        }
        state.started_names();
        // Nothing to wait for (no wildcard type, no static names): done at once.
        state.progress();
        state
    }

    /// `Event::Subscribed` for the names of by-name types wanted for the first time.
    fn started_names(&mut self) {
        for kind in Kind::BY_NAME {
            let wanted = self.wanted(kind);
            let started = self.started.entry(kind).or_default();
            let new: Vec<String> = wanted.difference(started).cloned().collect();
            if new.is_empty() {
                continue;
            }
            started.extend(new.iter().cloned());
            self.sink.event(Event::Subscribed(kind, new));
        }
    }

    /// When the next resource sent with a TTL expires, if any does.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.values().min().copied()
    }

    /// Removes the resources whose TTL passed without a refresh, as if the server had removed them: per type,
    /// the state without them goes to the sink (counted as an update of version "", as Envoy counts it).
    pub fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<(Kind, String)> = self
            .expiries
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let mut by_kind: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
        for key in due {
            self.expiries.remove(&key);
            by_kind.entry(key.0).or_default().push(key.1);
        }
        for (kind, names) in by_kind {
            if kind == Kind::Route {
                // Envoy 1.40 ignores the removal of a route configuration (its RDS subscription keeps the last
                // one), an expiry included; it still counts the expiry as an update of version "". Checked
                // with Envoy: the route keeps serving, `rds.<name>.version` becomes the hash of "".
                tracing::info!(
                    node = self.options.node.id,
                    "RDS route configurations {names:?}: their TTL passed without a refresh; kept, as Envoy \
                     keeps a route configuration the server removes"
                );
                self.event(Event::UpdateAttempt(kind));
                self.event(Event::UpdateSuccess(kind, String::new()));
                self.event(Event::Delivered(kind, names, String::new()));
                continue;
            }
            tracing::info!(
                node = self.options.node.id,
                "{kind} resources {names:?}: their TTL passed without a refresh; removing them"
            );
            self.event(Event::UpdateAttempt(kind));
            let mut next = self.resources.clone();
            for name in &names {
                remove(&mut next, kind, name);
            }
            subscriptions::prune(&mut next, &self.options);
            let applied = if next.same(&self.resources) {
                Ok(())
            } else {
                self.sink.apply(kind, &next)
            };
            match applied {
                Ok(()) => {
                    self.resources = next;
                    self.forget_expiries();
                    self.event(Event::UpdateSuccess(kind, String::new()));
                    self.event(Event::Delivered(kind, names, String::new()));
                    self.started_names();
                }
                Err(message) => {
                    tracing::warn!(
                        node = self.options.node.id,
                        "{kind} resources {names:?} expired, but the state without them was refused: \
                         {message}; keeping them"
                    );
                    self.event(Event::UpdateRejected(kind));
                }
            }
        }
    }

    /// Drops the expiries of resources no longer held.
    fn forget_expiries(&mut self) {
        let held: HashMap<Kind, BTreeMap<String, String>> = Kind::ALL
            .into_iter()
            .map(|k| (k, self.resources.versions(k)))
            .collect();
        self.expiries
            .retain(|(kind, name), _| held.get(kind).is_some_and(|h| h.contains_key(name)));
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn node_id(&self) -> &str {
        &self.options.node.id
    }

    /// The node to put in a request: always, or only in a stream's first with `set_node_on_first_message_only`.
    pub fn node_for(&self, first: bool) -> Option<core_pb::Node> {
        (first || !self.options.set_node_on_first_message_only).then(|| self.node.clone())
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    pub fn accepted(&self, kind: Kind) -> String {
        self.accepted.get(&kind).cloned().unwrap_or_default()
    }

    pub fn wanted(&self, kind: Kind) -> BTreeSet<String> {
        subscriptions::wanted(kind, &self.resources, &self.options)
    }

    pub fn subscribed(&self, kind: Kind) -> bool {
        subscriptions::subscribed(kind, &self.resources, &self.options)
    }

    pub fn event(&self, event: Event) {
        self.sink.event(event);
    }

    /// Takes in a response: `Ok` to ACK it, `Err(message)` to NACK it. The state changes only on `Ok`.
    pub fn apply(&mut self, update: Update) -> Result<(), String> {
        let kind = update.kind;
        self.event(Event::UpdateAttempt(kind));
        let result = self.try_apply(&update);
        match result {
            Ok(sent) => {
                self.accepted.insert(kind, update.version.clone());
                let arrived = self.arrived.entry(kind).or_default();
                arrived.extend(self.resources.versions(kind).into_keys());
                arrived.extend(update.removed.iter().cloned());
                // Envoy's TTL rule: a resource sent with a TTL (or a heartbeat of it) expires that long from
                // now; one sent without a TTL no longer expires.
                let now = Instant::now();
                let mut delivered = Vec::new();
                for (name, ttl, heartbeat) in sent {
                    match ttl {
                        Some(ttl) => self.expiries.insert((kind, name.clone()), now + ttl),
                        None => self.expiries.remove(&(kind, name.clone())),
                    };
                    if !heartbeat {
                        delivered.push(name);
                    }
                }
                delivered.extend(update.removed.iter().cloned());
                self.forget_expiries();
                self.event(Event::UpdateSuccess(kind, update.version.clone()));
                self.event(Event::Delivered(kind, delivered, update.version.clone()));
                self.started_names();
                self.waiting.remove(&kind);
                self.progress();
                Ok(())
            }
            Err(message) => {
                tracing::warn!(
                    node = self.options.node.id,
                    "{kind} update rejected (NACK), keeping version {:?}: {message}",
                    self.accepted(kind)
                );
                // Envoy's initial fetch also ends on a rejected response.
                let wanted = self.wanted(kind);
                self.arrived
                    .entry(kind)
                    .or_default()
                    .extend(wanted.iter().cloned());
                self.event(Event::UpdateRejected(kind));
                self.event(Event::Refused(kind, wanted.into_iter().collect()));
                self.waiting.remove(&kind);
                self.progress();
                Err(message)
            }
        }
    }

    /// The names the response carried, with their TTL and whether each was a heartbeat (no body), or why it
    /// is refused.
    fn try_apply(
        &mut self,
        update: &Update,
    ) -> Result<Vec<(String, Option<Duration>, bool)>, String> {
        let mut convert = Converter {
            kind: update.kind,
            decoder: None,
            problems: Vec::new(),
            node: &self.options.node.id,
            sent: Vec::new(),
        };
        let held = &self.resources;
        let mut next = held.clone();
        match update.kind {
            Kind::Listener => {
                next.listeners = convert.merge(&held.listeners, update, |l: &Listener| &l.name)
            }
            Kind::Route => {
                next.routes = convert.merge(&held.routes, update, |r: &RouteConfig| &r.name)
            }
            Kind::Cluster => {
                next.clusters = convert.merge(&held.clusters, update, |c: &Cluster| &c.name)
            }
            Kind::Endpoints => {
                next.endpoints = convert.merge(&held.endpoints, update, |e: &ClusterEndpoints| {
                    &e.cluster_name
                })
            }
            Kind::Secret => {
                next.secrets = convert.merge(&held.secrets, update, |s: &Secret| &s.name)
            }
        }
        if !convert.problems.is_empty() {
            return Err(convert.problems.join("; "));
        }
        let sent = std::mem::take(&mut convert.sent);
        // The decoded descriptors (several MB) are not needed while the proxy applies the update.
        drop(convert);
        // Routes and endpoints nobody names: not asked for (ignored), or no longer named (dropped).
        subscriptions::prune(&mut next, &self.options);
        if next.same(&self.resources) {
            return Ok(sent);
        }
        self.sink.apply(update.kind, &next)?;
        self.resources = next;
        Ok(sent)
    }

    /// Emits `InitialFetchDone` once the wildcard types answered and every route, endpoint and secret they
    /// name did.
    fn progress(&mut self) {
        if self.initial.is_done() || !self.waiting.is_empty() {
            return;
        }
        for kind in Kind::BY_NAME {
            let held = self.resources.versions(kind);
            let arrived = self.arrived.get(&kind);
            let missing = self.wanted(kind).into_iter().any(|name| {
                !held.contains_key(&name) && !arrived.is_some_and(|a| a.contains(&name))
            });
            if missing {
                return;
            }
        }
        if self.initial.finish() {
            tracing::info!(node = self.options.node.id, "xDS initial fetch done");
        }
    }
}

/// Removes one resource from the state.
fn remove(resources: &mut Resources, kind: Kind, name: &str) {
    match kind {
        Kind::Listener => drop(resources.listeners.remove(name)),
        Kind::Route => drop(resources.routes.remove(name)),
        Kind::Cluster => drop(resources.clusters.remove(name)),
        Kind::Endpoints => drop(resources.endpoints.remove(name)),
        Kind::Secret => drop(resources.secrets.remove(name)),
    }
}

/// Converts the resources of one response, with one descriptor pool decoded on first need.
struct Converter<'a> {
    kind: Kind,
    decoder: Option<Decoder>,
    /// Each as `outrigger validate` prints it.
    problems: Vec<String>,
    node: &'a str,
    /// The names received, with their TTL and whether each came without a body (a heartbeat).
    sent: Vec<(String, Option<Duration>, bool)>,
}

impl Converter<'_> {
    /// The type's resources after the update: the received ones (converted, or taken over unchanged when
    /// their bytes are those held), merged with or replacing (a whole set) those held.
    fn merge<R: Resource>(
        &mut self,
        held: &BTreeMap<String, Versioned<R>>,
        update: &Update,
        name_of: impl Fn(&R) -> &String,
    ) -> BTreeMap<String, Versioned<R>> {
        let by_bytes: HashMap<&[u8], &Versioned<R>> = held
            .values()
            .filter(|v| !v.bytes.is_empty())
            .map(|v| (v.bytes.as_slice(), v))
            .collect();
        let mut received: BTreeMap<String, Versioned<R>> = BTreeMap::new();
        for (i, incoming) in update.resources.iter().enumerate() {
            if let Some(problem) = &incoming.problem {
                self.problems.push(problem.clone());
                continue;
            }
            let Some(entry) = self.entry(i, incoming, update, held, &by_bytes, &name_of) else {
                continue;
            };
            let name = name_of(&entry.value).clone();
            self.sent
                .push((name.clone(), incoming.ttl, incoming.any.is_none()));
            if let Some(given) = &incoming.name
                && *given != name
            {
                self.problems.push(format!(
                    "error: resources[{i}]: the resource is named {name:?} but sent as {given:?}"
                ));
                continue;
            }
            if received.insert(name.clone(), entry).is_some() {
                self.problems.push(format!(
                    "error: resources: two {} resources are named {name:?}; names must be unique in a response",
                    self.kind
                ));
            }
        }
        if update.full_set {
            return received;
        }
        let mut all = held.clone();
        if self.kind == Kind::Route {
            // Envoy's RDS subscription ignores a delta removal of a route configuration (it logs "attempting
            // to remove a resource ... Ignoring") and keeps serving the last one; the same here.
            for name in update.removed.iter().filter(|n| held.contains_key(*n)) {
                tracing::warn!(
                    node = self.node,
                    "the server removed the RDS route configuration {name:?}; ignored, as Envoy ignores it:                      the last one keeps serving"
                );
            }
        } else {
            for name in &update.removed {
                all.remove(name);
            }
        }
        all.extend(received);
        all
    }

    fn entry<R: Resource>(
        &mut self,
        i: usize,
        incoming: &Incoming,
        update: &Update,
        held: &BTreeMap<String, Versioned<R>>,
        by_bytes: &HashMap<&[u8], &Versioned<R>>,
        name_of: &impl Fn(&R) -> &String,
    ) -> Option<Versioned<R>> {
        let Some(any) = &incoming.any else {
            let found = incoming.name.as_ref().and_then(|n| held.get(n));
            if found.is_none() {
                self.problems.push(format!(
                    "error: resources[{i}] {:?}: sent without a body, but the client does not hold it",
                    incoming.name.as_deref().unwrap_or("")
                ));
            }
            return found.cloned();
        };
        if any.type_url != self.kind.type_url() {
            self.problems.push(format!(
                "error: resources[{i}]: a {} response holds a resource of type {:?}; expected {:?}",
                self.kind,
                any.type_url,
                self.kind.type_url()
            ));
            return None;
        }
        if self.kind == Kind::Listener && api_listener(&any.value) {
            // As Envoy 1.40: warned about, not added, and the rest of the response applies (ACKed).
            let name = incoming
                .name
                .clone()
                .unwrap_or_else(|| listener_name(&any.value));
            tracing::warn!(
                node = self.node,
                "LDS: listener {name:?} has an api_listener and is not added: as in Envoy, only the bootstrap \
                 may add an API listener (serve proxyless gRPC clients' listeners to their own node ids)"
            );
            return None;
        }
        if let Some(same) = by_bytes.get(any.value.as_slice()) {
            // Unchanged: not converted again. A delta version is the server's to set.
            let mut entry = (*same).clone();
            if update.per_resource_versions {
                entry.version.clone_from(&incoming.version);
            }
            return Some(entry);
        }
        if self.decoder.is_none() {
            match Decoder::new() {
                Ok(decoder) => self.decoder = Some(decoder),
                Err(e) => {
                    self.problems.push(format!("error: {e}"));
                    return None;
                }
            }
        }
        let decoder = self.decoder.as_ref()?;
        match decoder.convert::<R>(&any.value) {
            Ok(converted) => {
                if name_of(&converted.value).is_empty() {
                    self.problems.push(format!(
                        "error: resources[{i}]: the resource has no name; xDS finds resources by name"
                    ));
                    return None;
                }
                for warning in converted.warnings.warnings() {
                    tracing::warn!(node = self.node, "{} resource: {warning}", self.kind);
                }
                Some(Versioned {
                    value: Arc::new(converted.value),
                    version: incoming.version.clone(),
                    last_updated: SystemTime::now(),
                    bytes: Arc::new(any.value.clone()),
                })
            }
            Err(problems) => {
                self.problems
                    .extend(problems.errors().map(ToString::to_string));
                None
            }
        }
    }
}

/// Whether an encoded Listener is an API listener (`api_listener`, for proxyless gRPC clients).
fn api_listener(bytes: &[u8]) -> bool {
    use prost::Message;
    envoy_types::pb::envoy::config::listener::v3::Listener::decode(bytes)
        .is_ok_and(|l| l.api_listener.is_some())
}

fn listener_name(bytes: &[u8]) -> String {
    use prost::Message;
    envoy_types::pb::envoy::config::listener::v3::Listener::decode(bytes)
        .map(|l| l.name)
        .unwrap_or_default()
}
