//! The sink's side of warming: each combined state (ADS and the SDS streams) goes through `Warming::select`
//! before it is applied; a timer applies the last one again when a warming deadline passes; readiness waits
//! for LDS and CDS to answer and for nothing to warm (Envoy's init manager).

use super::Warming;
use crate::xds::{ProxySink, assemble, versions};
use outrigger_config::Snapshot;
use outrigger_control_api::ads_client::{Kind, Resources};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// What the sink keeps for warming. Taken after `parts` (never the other way round).
pub struct State {
    warming: Warming,
    /// The last combined state applied, for the applies a deadline triggers.
    /// Shared with the `/config_dump` writer of the generation it led to (a mesh's maps are not copied twice).
    last: Option<(Kind, Arc<Resources>)>,
    timer: Option<tokio::task::JoinHandle<()>>,
}

/// Readiness beyond the SDS streams' initial fetches: separate small locks, never held while taking another
/// (a client's events may come while `parts` or `State` is held).
pub struct Readiness {
    /// The wildcard types (LDS, CDS) whose first response has not come (nor their initial fetch timed out).
    unanswered: Mutex<BTreeSet<Kind>>,
    /// Nothing warms: set after each apply.
    settled: std::sync::atomic::AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// The static listeners the first configuration leaves out warm from now.
    pub fn new(bootstrap: &Snapshot) -> Self {
        let mut warming = Warming::new(Instant::now());
        warming.initial(bootstrap);
        Self {
            warming,
            last: None,
            timer: None,
        }
    }
}

impl Readiness {
    pub fn new(bootstrap: &Snapshot, state: &State) -> Self {
        let dynamic = bootstrap.dynamic_resources.as_ref();
        Self {
            unanswered: Mutex::new(
                [
                    (Kind::Listener, dynamic.is_some_and(|d| d.lds.is_some())),
                    (Kind::Cluster, dynamic.is_some_and(|d| d.cds.is_some())),
                ]
                .into_iter()
                .filter_map(|(kind, on)| on.then_some(kind))
                .collect(),
            ),
            settled: state.warming.settled().into(),
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

/// The first configuration's snapshot: the bootstrap without the static listeners that wait for routes or
/// secrets from a control plane (they go into force once those arrive, or their initial_fetch_timeout passes).
pub fn initial(bootstrap: &Snapshot) -> Snapshot {
    let mut snapshot = bootstrap.clone();
    let left_out = Warming::new(Instant::now()).initial(bootstrap);
    snapshot.listeners.retain(|l| !left_out.contains(&l.name));
    snapshot
}

impl ProxySink {
    /// Chooses what of `combined` goes into force now and applies it; the warming state changes only when it
    /// applied.
    pub(in crate::xds) fn apply_warm(
        self: &Arc<Self>,
        kind: Kind,
        combined: Arc<Resources>,
    ) -> Result<(), String> {
        let mut state = lock(&self.warm);
        let mut warming = state.warming.clone();
        let (selected, left_out) = warming.select(&self.bootstrap, &combined, Instant::now());
        let mut update = assemble(&self.bootstrap, &selected)?;
        update
            .snapshot
            .listeners
            .retain(|l| !left_out.contains(&l.name));
        let (warming_listeners, warming_clusters) = warming.warming_versions();
        let dumped = combined.clone();
        update.dynamic = Some(Arc::new(move || {
            let mut dump = versions(&dumped);
            if let Some(object) = dump.as_object_mut() {
                object.insert(
                    "warming_listeners".into(),
                    serde_json::json!(warming_listeners),
                );
                object.insert(
                    "warming_clusters".into(),
                    serde_json::json!(warming_clusters),
                );
            }
            dump
        }));
        self.apply_update(kind, update)?;
        let managers = crate::xds::rds_managers(
            self.bootstrap
                .listeners
                .iter()
                .chain(combined.listeners.values().map(|l| l.value.as_ref())),
        );
        if let Ok(mut current) = self.rds_managers.lock() {
            *current = managers;
        }
        if let Ok(mut current) = self.warming_eds.lock() {
            *current = warming.new_eds_clusters();
        }
        state.warming = warming;
        state.last = Some((kind, combined));
        let managers = &self.proxy.inputs.metrics.managers;
        let (listeners, _, _) = state.warming.listener_counts();
        let (clusters, _) = state.warming.cluster_counts();
        managers.total_listeners_warming.set(gauge(listeners));
        managers.warming_clusters.set(gauge(clusters));
        // Envoy pauses CDS while a cluster warms, once its initial clusters are in place (not during the
        // initial fetch), and resumes it when none warms.
        let pause = self.proxy.inputs.is_initialized() && clusters > 0;
        self.cds_paused.send_if_modified(|paused| {
            let changed = *paused != pause;
            *paused = pause;
            changed
        });
        self.readiness
            .settled
            .store(state.warming.settled(), Ordering::SeqCst);
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        if let Some(deadline) = state.warming.deadline {
            let sink = self.clone();
            state.timer = Some(self.runtime.spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                let _ = tokio::task::spawn_blocking(move || sink.on_deadline()).await;
            }));
        }
        drop(state);
        self.check_ready();
        Ok(())
    }

    /// A warming deadline passed: what warmed by timeout goes into force.
    fn on_deadline(self: &Arc<Self>) {
        // `parts` first, as a client's apply takes them: the two never interleave.
        let _parts = lock(&self.parts);
        let last = {
            let state = lock(&self.warm);
            if state.warming.deadline.is_none_or(|d| d > Instant::now()) {
                return;
            }
            state.last.clone()
        };
        let Some((kind, combined)) = last else {
            return;
        };
        if let Err(e) = self.apply_warm(kind, combined) {
            tracing::warn!(
                "resources whose initial_fetch_timeout passed not put in force: {e}; the configuration in force stays"
            );
        }
    }

    /// LDS or CDS answered (or their initial fetch timed out).
    pub(in crate::xds) fn answered(&self, kinds: &[Kind]) {
        {
            let mut unanswered = lock(&self.readiness.unanswered);
            for kind in kinds {
                unanswered.remove(kind);
            }
        }
        self.check_ready();
    }

    /// `/ready` (and the 15021 probe) turn ready once the SDS streams' initial fetches are done, LDS and CDS
    /// answered and nothing they brought, nor any static resource, still warms.
    pub(in crate::xds) fn check_ready(&self) {
        let streams_done = lock(&self.initial_fetches).is_empty();
        let answered = lock(&self.readiness.unanswered).is_empty();
        let settled = self.readiness.settled.load(Ordering::SeqCst);
        if streams_done && answered && settled && self.proxy.inputs.finish_initializing() {
            tracing::info!("initial configuration from the control plane in place; ready");
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
