//! The client's state, which outlives streams: the accepted resources, the version of each type's last
//! accepted response, and the initial fetch. A response becomes an [`Update`]; [`State::apply`] converts what
//! it carries, builds the state it leads to, asks the sink, and commits or keeps the previous state.

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
use std::time::SystemTime;

/// One resource of a response.
pub struct Incoming {
    /// The name a delta response gives it (`Resource.name`); the resource's own name must match it.
    pub name: Option<String>,
    /// The response's version (state of the world) or the resource's (delta).
    pub version: String,
    /// `None`: a delta resource sent without its body (a TTL refresh of what the client holds).
    pub any: Option<Any>,
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
        };
        // Nothing to wait for (no wildcard type, no static names): done at once.
        state.progress();
        state
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
        match &result {
            Ok(()) => {
                self.accepted.insert(kind, update.version.clone());
                let arrived = self.arrived.entry(kind).or_default();
                arrived.extend(self.resources.versions(kind).into_keys());
                arrived.extend(update.removed.iter().cloned());
                self.event(Event::UpdateSuccess(kind, update.version.clone()));
            }
            Err(message) => {
                tracing::warn!(
                    node = self.options.node.id,
                    "{kind} update rejected (NACK), keeping version {:?}: {message}",
                    self.accepted(kind)
                );
                // Envoy's initial fetch also ends on a rejected response.
                let wanted = self.wanted(kind);
                self.arrived.entry(kind).or_default().extend(wanted);
                self.event(Event::UpdateRejected(kind));
            }
        }
        self.waiting.remove(&kind);
        self.progress();
        result
    }

    fn try_apply(&mut self, update: &Update) -> Result<(), String> {
        let mut convert = Converter {
            kind: update.kind,
            decoder: None,
            problems: Vec::new(),
            node: &self.options.node.id,
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
        // The decoded descriptors (about 16 MB) are not needed while the proxy applies the update.
        drop(convert);
        // Routes and endpoints nobody names: not asked for (ignored), or no longer named (dropped).
        subscriptions::prune(&mut next, &self.options);
        if next.same(&self.resources) {
            return Ok(());
        }
        self.sink.apply(update.kind, &next)?;
        self.resources = next;
        Ok(())
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

/// Converts the resources of one response, with one descriptor pool decoded on first need.
struct Converter<'a> {
    kind: Kind,
    decoder: Option<Decoder>,
    /// Each as `outrigger validate` prints it.
    problems: Vec<String>,
    node: &'a str,
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
            let Some(entry) = self.entry(i, incoming, held, &by_bytes, &name_of) else {
                continue;
            };
            let name = name_of(&entry.value).clone();
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
        for name in &update.removed {
            all.remove(name);
        }
        all.extend(received);
        all
    }

    fn entry<R: Resource>(
        &mut self,
        i: usize,
        incoming: &Incoming,
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
        if let Some(same) = by_bytes.get(any.value.as_slice()) {
            // Unchanged: not converted again. A delta version is the server's to set.
            let mut entry = (*same).clone();
            if incoming.name.is_some() {
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
