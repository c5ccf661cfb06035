//! Lines leave the request path here: each file (or stream) has one writer thread and a shared buffer.
//! A worker formats its line and appends it to the buffer under a short lock; it wakes the thread only when the
//! buffer reaches `FLUSH_SIZE` (as Envoy's file writer flushes at 64 KiB), otherwise the thread writes what has
//! gathered at least every second. Waking a thread per line cost a context switch per request (scenario (i)
//! of `benches/`). Past `MAX_PENDING` bytes a line is dropped and counted (`access_log_file.write_dropped`;
//! Envoy has no such statistic, since its buffer grows instead). The thread also flushes when asked
//! (`flush_all`, at shutdown) and reopens its file on `POST /reopen_logs` (log rotation).

use outrigger_config::model::access_log::Sink;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Buffered bytes that wake the writer thread.
const FLUSH_SIZE: usize = 64 * 1024;
/// Buffered bytes past which new lines are dropped (a file that cannot keep up must not take the memory).
const MAX_PENDING: usize = 4 * 1024 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Envoy's `access_log_file.*` statistics (all files together), plus ours for dropped lines.
#[derive(Default, Clone)]
pub struct Stats {
    pub write_buffered: Counter,
    pub write_completed: Counter,
    pub write_failed: Counter,
    pub flushed_by_timer: Counter,
    pub reopen_failed: Counter,
    pub write_dropped: Counter,
}

pub fn stats() -> &'static Stats {
    static STATS: OnceLock<Stats> = OnceLock::new();
    STATS.get_or_init(Stats::default)
}

/// Adds the statistics to the proxy's registry (`envoy_access_log_file_*`).
pub fn register(registry: &mut Registry) {
    let s = stats();
    let entries = [
        (
            "envoy_access_log_file_write_buffered",
            "Lines handed to a writer",
            &s.write_buffered,
        ),
        (
            "envoy_access_log_file_write_completed",
            "Buffers written out",
            &s.write_completed,
        ),
        (
            "envoy_access_log_file_write_failed",
            "Failed writes",
            &s.write_failed,
        ),
        (
            "envoy_access_log_file_flushed_by_timer",
            "Flushes by the 1 s timer",
            &s.flushed_by_timer,
        ),
        (
            "envoy_access_log_file_reopen_failed",
            "Files that could not be reopened",
            &s.reopen_failed,
        ),
        (
            "envoy_access_log_file_write_dropped",
            "Lines dropped because the writer's buffer was full (Outrigger only)",
            &s.write_dropped,
        ),
    ];
    for (name, help, counter) in entries {
        registry.register(name, help, counter.clone());
    }
}

/// What a control call asks of the writer thread besides writing.
enum Control {
    Flush(SyncSender<()>),
    Reopen(SyncSender<()>),
}

/// What the workers and the writer thread share.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    controls: Vec<Control>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    max_pending: usize,
}

impl Shared {
    fn new(max_pending: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            max_pending,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One file's (or stream's) buffer.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl Writer {
    /// Appends a line; never blocks on the file.
    pub fn write(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        let before = pending.lines.len();
        if before + line.len() > self.shared.max_pending {
            drop(pending);
            stats().write_dropped.inc();
            return;
        }
        pending.lines.extend_from_slice(line);
        let crossed = before < FLUSH_SIZE && pending.lines.len() >= FLUSH_SIZE;
        drop(pending);
        stats().write_buffered.inc();
        if crossed {
            self.shared.wake.notify_one();
        }
    }

    /// Asks the thread for `control` and waits (5 s at most) until it is done.
    fn control(&self, control: impl FnOnce(SyncSender<()>) -> Control) {
        let (done, wait) = sync_channel(1);
        self.shared.lock().controls.push(control(done));
        self.shared.wake.notify_one();
        let _ = wait.recv_timeout(Duration::from_secs(5));
    }
}

fn writers() -> &'static Mutex<HashMap<Sink, Writer>> {
    static WRITERS: OnceLock<Mutex<HashMap<Sink, Writer>>> = OnceLock::new();
    WRITERS.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Sink, Writer>> {
    writers()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer of `sink`, started on first use (one per path for the life of the process, shared by every
/// configuration naming it). A file that cannot be opened is an error naming it.
pub fn writer(sink: &Sink) -> std::io::Result<Writer> {
    let mut writers = lock();
    if let Some(writer) = writers.get(sink) {
        return Ok(writer.clone());
    }
    let output = Output::open(sink)?;
    let shared = Arc::new(Shared::new(MAX_PENDING));
    let name = match sink {
        Sink::File(path) => format!("access log {path}"),
        Sink::Stdout => "access log stdout".into(),
        Sink::Stderr => "access log stderr".into(),
    };
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn({
            let shared = shared.clone();
            move || run(output, &shared, &name)
        })?;
    let writer = Writer { shared };
    writers.insert(sink.clone(), writer.clone());
    Ok(writer)
}

/// Reopens every file (`POST /reopen_logs`); returns once each writer has done so.
pub fn reopen_all() {
    let writers: Vec<Writer> = lock().values().cloned().collect();
    for writer in &writers {
        writer.control(Control::Reopen);
    }
}

/// Writes out everything buffered so far (shutdown, drain).
pub fn flush_all() {
    let writers: Vec<Writer> = lock().values().cloned().collect();
    for writer in &writers {
        writer.control(Control::Flush);
    }
}

enum Output {
    File {
        path: String,
        file: std::io::BufWriter<std::fs::File>,
    },
    Stdout(std::io::BufWriter<std::io::Stdout>),
    Stderr(std::io::BufWriter<std::io::Stderr>),
}

impl Output {
    fn open(sink: &Sink) -> std::io::Result<Self> {
        Ok(match sink {
            Sink::File(path) => Output::File {
                path: path.clone(),
                file: std::io::BufWriter::with_capacity(64 * 1024, append(path)?),
            },
            Sink::Stdout => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
            Sink::Stderr => Output::Stderr(std::io::BufWriter::new(std::io::stderr())),
        })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Output::File { file, .. } => file,
            Output::Stdout(out) => out,
            Output::Stderr(out) => out,
        }
    }

    fn reopen(&mut self) {
        if let Output::File { path, file } = self {
            let _ = file.flush();
            match append(path) {
                Ok(new) => *file = std::io::BufWriter::with_capacity(64 * 1024, new),
                Err(e) => {
                    stats().reopen_failed.inc();
                    tracing::warn!(path = %path, error = %e, "access log: cannot reopen the file; still writing to the old one");
                }
            }
        }
    }
}

fn append(path: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("access log file {path}: {e}")))
}

/// The writer thread: waits for a full buffer, a control or the timer, then writes what has gathered with the
/// lock released.
fn run(mut output: Output, shared: &Shared, name: &str) {
    let mut batch = Vec::new();
    let mut last_flush = Instant::now();
    loop {
        let mut pending = shared.lock();
        while pending.lines.len() < FLUSH_SIZE && pending.controls.is_empty() {
            let left = FLUSH_EVERY.saturating_sub(last_flush.elapsed());
            if left.is_zero() {
                break;
            }
            pending = shared
                .wake
                .wait_timeout(pending, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let by_timer = pending.lines.len() < FLUSH_SIZE && pending.controls.is_empty();
        // The buffers swap, so both keep their capacity and a worker never waits on the file.
        std::mem::swap(&mut batch, &mut pending.lines);
        let controls = std::mem::take(&mut pending.controls);
        drop(pending);
        last_flush = Instant::now();
        if !batch.is_empty() {
            if by_timer {
                stats().flushed_by_timer.inc();
            }
            write_out(&mut output, &batch, name);
            batch.clear();
        }
        for control in controls {
            match control {
                Control::Flush(done) => {
                    let _ = done.send(());
                }
                Control::Reopen(done) => {
                    output.reopen();
                    let _ = done.send(());
                }
            }
        }
    }
}

fn write_out(output: &mut Output, batch: &[u8], name: &str) {
    let out = output.out();
    match out.write_all(batch).and_then(|()| out.flush()) {
        Ok(()) => {
            stats().write_completed.inc();
        }
        Err(e) => {
            stats().write_failed.inc();
            tracing::warn!(error = %e, "{name}: write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_the_line_and_counts_it() {
        // Nothing drains this writer: room for two 7-byte lines.
        let writer = Writer {
            shared: Arc::new(Shared::new(14)),
        };
        let before = stats().write_dropped.get();
        for i in 0..5 {
            writer.write(format!("line {i}\n").as_bytes());
        }
        assert_eq!(stats().write_dropped.get() - before, 3);
        assert_eq!(writer.shared.lock().lines, b"line 0\nline 1\n".to_vec());
    }

    #[test]
    fn a_flush_writes_what_is_buffered_and_a_reopen_starts_a_new_file() {
        let dir = std::env::temp_dir().join(format!("outrigger-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let rotated = dir.join("access.log.1");
        let sink = Sink::File(path.to_string_lossy().into_owned());
        let writer = writer(&sink).unwrap();
        writer.write(b"first\n");
        writer.control(Control::Flush);
        assert_eq!(std::fs::read(&path).unwrap(), b"first\n");
        std::fs::rename(&path, &rotated).unwrap();
        writer.write(b"second\n");
        writer.control(Control::Reopen);
        writer.write(b"third\n");
        writer.control(Control::Flush);
        assert_eq!(std::fs::read(&rotated).unwrap(), b"first\nsecond\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"third\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
