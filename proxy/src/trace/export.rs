//! Finished spans leave the data path here: a worker hands a span to a bounded queue (a short lock, never
//! waiting; a full queue drops the span and counts it) and one background thread, with a current-thread tokio
//! runtime of its own, batches and exports them. Every client (tonic's channel, hyper's) is built on that
//! thread, inside the runtime that polls it, and nothing ever calls `block_on` from within a runtime: the two
//! failures users report with the OpenTelemetry SDK's batch processor ("there is no reactor running" on its
//! export thread, and a deadlock of `force_flush`/`shutdown` on a current-thread runtime) cannot happen here.
//!
//! Shutdown: `flush(deadline)` asks the thread to export everything queued and waits for its answer, from the
//! caller's thread (the main thread after the drain), for at most `deadline`.

use super::skywalking::SegmentObject;
use super::span::FinishedSpan;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many spans may wait for export; past that they are dropped and counted.
const QUEUE: usize = 4096;
/// Export as soon as this many spans wait (Envoy's default `tracing.opentelemetry.min_flush_spans`), else
/// every `interval()`.
const BATCH: usize = 5;

/// Envoy's default `tracing.opentelemetry.flush_interval_ms`: 5 s. Envoy reads both from runtime layers, which
/// Outrigger does not have; `OUTRIGGER_TRACING_FLUSH_INTERVAL_MS` sets it instead (tests, demos).
fn interval() -> Duration {
    std::env::var("OUTRIGGER_TRACING_FLUSH_INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(5), Duration::from_millis)
}
/// At most this many spans in one export request.
const MAX_EXPORT: usize = 512;

/// Where a tracer's spans go; each tracer owns one (compared by address).
pub struct Destination {
    pub kind: DestinationKind,
}

impl Destination {
    fn stats(&self) -> &'static super::stats::ProviderStats {
        let all = super::stats::stats();
        match self.kind {
            DestinationKind::Zipkin { .. } => &all.zipkin,
            DestinationKind::Datadog { .. } => &all.datadog,
            DestinationKind::SkyWalking { .. } => &all.skywalking,
            _ => &all.opentelemetry,
        }
    }
}

pub enum DestinationKind {
    OtlpGrpc {
        /// `host:port`.
        address: String,
        timeout: Duration,
        resource: super::otlp::Resource,
    },
    OtlpHttp {
        address: String,
        authority: String,
        path: String,
        timeout: Duration,
        headers: Vec<(String, String)>,
        resource: super::otlp::Resource,
    },
    Zipkin {
        address: String,
        authority: String,
        path: String,
        service_name: String,
    },
    /// The Datadog agent's `/v0.4/traces`.
    Datadog {
        address: String,
        /// `collector_hostname` (default: the cluster's name), sent as `Host`.
        authority: String,
        service: String,
        /// The sampling rates the agent's answers set, read by the tracer's decisions.
        rates: Arc<super::datadog::Rates>,
    },
    /// SkyWalking's `TraceSegmentReportService/collect`: one client stream per batch of segments.
    SkyWalking {
        address: String,
        timeout: Duration,
        /// Sent as the stream's `authentication` metadata.
        token: Option<String>,
        /// How many segments wait for a collector that did not take them (Envoy's `max_cache_size`).
        max_cache_size: usize,
    },
}

/// What a tracer hands over: a span (OpenTelemetry, Zipkin) or a whole segment (SkyWalking).
#[derive(Debug)]
pub enum Item {
    Span(FinishedSpan),
    Segment(Box<SegmentObject>),
    /// A segment an earlier export failed to deliver, waiting in the cache.
    Cached(Box<SegmentObject>),
}

impl Item {
    pub fn into_span(self) -> Option<FinishedSpan> {
        match self {
            Item::Span(s) => Some(s),
            Item::Segment(_) | Item::Cached(_) => None,
        }
    }

    pub fn into_segment(self) -> Option<SegmentObject> {
        match self {
            Item::Segment(s) | Item::Cached(s) => Some(*s),
            Item::Span(_) => None,
        }
    }
}

impl DestinationKind {
    /// Envoy's Datadog tracer uploads every 2 s whatever the number of spans; the others flush early on
    /// `BATCH` spans and every `interval()`.
    fn is_datadog(&self) -> bool {
        matches!(self, DestinationKind::Datadog { .. })
    }
}

/// Envoy 1.40's Datadog tracer: `flush_interval_milliseconds: 2000` (its startup log).
const DATADOG_INTERVAL: Duration = Duration::from_secs(2);

/// Spans handed over and not yet taken by the export thread. The thread is woken when `BATCH` of them wait (the
/// Datadog tracer's, which go every 2 s whatever their number, do not count), not for every span: a wake-up is a
/// futex call and two context switches on the worker's CPU.
#[derive(Default)]
struct Handed {
    items: Vec<(Arc<Destination>, Item)>,
    /// Items handed since the thread last took them that count towards `BATCH`.
    batchable: usize,
}

struct Shared {
    handed: std::sync::Mutex<Handed>,
    wake: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Handed> {
        self.handed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Exporter {
    shared: Arc<Shared>,
    /// Flush requests, each answered once everything handed so far is exported.
    flushes: mpsc::UnboundedSender<std::sync::mpsc::SyncSender<()>>,
}

static EXPORTER: OnceLock<Option<Exporter>> = OnceLock::new();

fn exporter() -> Option<&'static Exporter> {
    EXPORTER
        .get_or_init(|| {
            let shared = Arc::new(Shared {
                handed: std::sync::Mutex::new(Handed::default()),
                wake: tokio::sync::Notify::new(),
            });
            let (flushes, flush_requests) = mpsc::unbounded_channel();
            let started = std::thread::Builder::new()
                .name("outrigger-trace".into())
                .spawn({
                    let shared = shared.clone();
                    move || {
                        match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(runtime) => runtime.block_on(run(&shared, flush_requests)),
                            Err(e) => tracing::error!(error = %e, "tracing: cannot start the export runtime; spans are dropped"),
                        }
                    }
                });
            match started {
                Ok(_) => Some(Exporter { shared, flushes }),
                Err(e) => {
                    tracing::error!(error = %e, "tracing: cannot start the export thread; spans are dropped");
                    None
                }
            }
        })
        .as_ref()
}

/// Hands a finished span over; never waits.
pub fn submit(destination: &Arc<Destination>, span: FinishedSpan) {
    submit_item(destination, Item::Span(span));
}

/// Hands a finished SkyWalking segment over; never waits.
pub fn submit_segment(destination: &Arc<Destination>, segment: SegmentObject) {
    submit_item(destination, Item::Segment(Box::new(segment)));
}

fn submit_item(destination: &Arc<Destination>, item: Item) {
    let Some(exporter) = exporter() else { return };
    let batchable = !destination.kind.is_datadog();
    let wake = {
        let mut handed = exporter.shared.lock();
        if handed.items.len() >= QUEUE {
            drop(handed);
            destination.stats().spans_dropped.inc();
            return;
        }
        handed.items.push((destination.clone(), item));
        if batchable {
            handed.batchable += 1;
        }
        batchable && handed.batchable == BATCH
    };
    if wake {
        exporter.shared.wake.notify_one();
    }
}

/// Exports every span queued so far; returns false when `deadline` passed first (or nothing runs the export).
pub fn flush(deadline: Duration) -> bool {
    let Some(exporter) = EXPORTER.get().and_then(Option::as_ref) else {
        return true;
    };
    let (done, wait) = std::sync::mpsc::sync_channel(1);
    if exporter.flushes.send(done).is_err() {
        return false;
    }
    wait.recv_timeout(deadline).is_ok()
}

type Pending = HashMap<usize, (Arc<Destination>, Vec<Item>)>;

/// Moves what the workers handed over into `pending`. `for_batch`: the spans that count towards `BATCH` are about
/// to be exported, so the count starts again (under the same lock as the move, so no span is counted twice or
/// lost); the Datadog tick moves spans without exporting the others, which stay counted.
fn take(shared: &Shared, pending: &mut Pending, for_batch: bool) {
    let items = {
        let mut handed = shared.lock();
        if for_batch {
            handed.batchable = 0;
        }
        std::mem::take(&mut handed.items)
    };
    for (destination, item) in items {
        let key = Arc::as_ptr(&destination) as usize;
        pending
            .entry(key)
            .or_insert_with(|| (destination, Vec::new()))
            .1
            .push(item);
    }
}

async fn run(
    shared: &Shared,
    mut flushes: mpsc::UnboundedReceiver<std::sync::mpsc::SyncSender<()>>,
) {
    let mut clients = super::send::Clients::default();
    let mut pending: Pending = HashMap::new();
    let period = interval();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut datadog_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + DATADOG_INTERVAL,
        DATADOG_INTERVAL,
    );
    datadog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // `BATCH` spans wait (or a stale wake-up after a tick took them: then this exports what came since).
            () = shared.wake.notified() => {
                take(shared, &mut pending, true);
                export_some(&mut clients, &mut pending, false).await;
            }
            Some(done) = flushes.recv() => {
                take(shared, &mut pending, true);
                export_all(&mut clients, &mut pending).await;
                let _ = done.send(());
            }
            _ = tick.tick() => {
                take(shared, &mut pending, true);
                export_some(&mut clients, &mut pending, false).await;
            }
            _ = datadog_tick.tick() => {
                take(shared, &mut pending, false);
                export_some(&mut clients, &mut pending, true).await;
            }
        }
    }
}

async fn export_all(clients: &mut super::send::Clients, pending: &mut Pending) {
    let all: Vec<usize> = pending.keys().copied().collect();
    export(clients, pending, all).await;
}

/// Exports the Datadog destinations' spans (`datadog`) or the others'.
async fn export_some(clients: &mut super::send::Clients, pending: &mut Pending, datadog: bool) {
    let keys: Vec<usize> = pending
        .iter()
        .filter(|(_, (d, _))| d.kind.is_datadog() == datadog)
        .map(|(k, _)| *k)
        .collect();
    export(clients, pending, keys).await;
}

async fn export(clients: &mut super::send::Clients, pending: &mut Pending, keys: Vec<usize>) {
    // SkyWalking segments the collector did not take wait for the next export, as Envoy caches them.
    let mut kept: Vec<(usize, Arc<Destination>, Vec<Item>)> = Vec::new();
    for (key, (destination, mut spans)) in keys
        .into_iter()
        .filter_map(|k| pending.remove(&k).map(|entry| (k, entry)))
    {
        let mut failed = Vec::new();
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(MAX_EXPORT));
            let count = spans.len() as u64;
            let copy = match &destination.kind {
                DestinationKind::SkyWalking { .. } => Some(
                    spans
                        .iter()
                        .filter_map(|i| match i {
                            Item::Segment(s) | Item::Cached(s) => Some(Item::Cached(s.clone())),
                            Item::Span(_) => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            };
            let cached = spans
                .iter()
                .filter(|i| matches!(i, Item::Cached(_)))
                .count() as u64;
            match clients.send(&destination, spans).await {
                Ok(()) => {
                    destination.stats().spans_sent.inc_by(count);
                    // Envoy's `tracing.skywalking.cache_flushed` and `segments_flushed`.
                    if cached > 0 {
                        let sky = &super::stats::stats().skywalking_cache;
                        sky.cache_flushed.inc();
                        sky.segments_flushed.inc_by(cached);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, items = count, "tracing: export failed");
                    match copy {
                        Some(copy) => failed.extend(copy),
                        None => {
                            destination.stats().spans_failed.inc_by(count);
                        }
                    }
                }
            }
            spans = rest;
        }
        if let DestinationKind::SkyWalking { max_cache_size, .. } = destination.kind {
            // Envoy's cache keeps the segments it holds and drops the newer ones once full.
            if failed.len() > max_cache_size {
                let over = failed.len() - max_cache_size;
                failed.truncate(max_cache_size);
                destination.stats().spans_dropped.inc_by(over as u64);
            }
            if !failed.is_empty() {
                kept.push((key, destination, failed));
            }
        }
    }
    for (key, destination, items) in kept {
        pending.insert(key, (destination, items));
    }
}
