//! Lines leave the request path here: each file (or stream) has one writer thread fed by a bounded queue.
//! A worker only formats its line and offers it; when the queue is full the line is dropped and counted
//! (`access_log_file.write_dropped`; Envoy has no such statistic, since its buffer grows instead). The thread
//! writes through a buffer flushed at least every second, when asked (`flush_all`, at shutdown) and reopens
//! its file on `POST /reopen_logs` (log rotation).

use outrigger_config::model::access_log::Sink;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Lines waiting for one writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
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
            "Lines dropped because the writer's queue was full (Outrigger only)",
            &s.write_dropped,
        ),
    ];
    for (name, help, counter) in entries {
        registry.register(name, help, counter.clone());
    }
}

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
    Reopen,
}

/// One file's (or stream's) queue.
#[derive(Clone)]
pub struct Writer {
    queue: SyncSender<Message>,
}

impl Writer {
    /// Offers a line; never blocks.
    pub fn write(&self, line: Vec<u8>) {
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) => {
                stats().write_buffered.inc();
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                stats().write_dropped.inc();
            }
        };
    }

    fn control(&self, message: Message) -> bool {
        self.queue.send(message).is_ok()
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
    let (queue, lines) = sync_channel(QUEUE);
    let name = match sink {
        Sink::File(path) => format!("access log {path}"),
        Sink::Stdout => "access log stdout".into(),
        Sink::Stderr => "access log stderr".into(),
    };
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(output, lines, &name))?;
    let writer = Writer { queue };
    writers.insert(sink.clone(), writer.clone());
    Ok(writer)
}

/// A writer with a queue of `capacity` lines that nothing drains (for the test of dropped lines).
#[cfg(test)]
fn stalled(capacity: usize) -> (Writer, Receiver<Message>) {
    let (queue, lines) = sync_channel(capacity);
    (Writer { queue }, lines)
}

/// Reopens every file (`POST /reopen_logs`); returns once each writer has done so.
pub fn reopen_all() {
    let writers: Vec<Writer> = lock().values().cloned().collect();
    for writer in &writers {
        writer.control(Message::Reopen);
    }
    flush(&writers);
}

/// Writes out everything queued so far (shutdown, drain).
pub fn flush_all() {
    let writers: Vec<Writer> = lock().values().cloned().collect();
    flush(&writers);
}

fn flush(writers: &[Writer]) {
    for writer in writers {
        let (done, wait) = sync_channel(1);
        if writer.control(Message::Flush(done)) {
            let _ = wait.recv_timeout(Duration::from_secs(5));
        }
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

fn run(mut output: Output, lines: Receiver<Message>, name: &str) {
    let mut dirty = false;
    loop {
        match lines.recv_timeout(FLUSH_EVERY) {
            Ok(Message::Line(line)) => {
                if output.out().write_all(&line).is_err() {
                    stats().write_failed.inc();
                }
                dirty = true;
            }
            Ok(Message::Flush(done)) => {
                finish(&mut output, &mut dirty, name);
                let _ = done.send(());
            }
            Ok(Message::Reopen) => {
                finish(&mut output, &mut dirty, name);
                output.reopen();
            }
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    stats().flushed_by_timer.inc();
                    finish(&mut output, &mut dirty, name);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                finish(&mut output, &mut dirty, name);
                return;
            }
        }
    }
}

fn finish(output: &mut Output, dirty: &mut bool, name: &str) {
    if !*dirty {
        return;
    }
    *dirty = false;
    match output.out().flush() {
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
    fn a_full_queue_drops_the_line_and_counts_it() {
        let (writer, lines) = stalled(2);
        let before = stats().write_dropped.get();
        for i in 0..5 {
            writer.write(format!("line {i}\n").into_bytes());
        }
        assert_eq!(stats().write_dropped.get() - before, 3);
        let kept: Vec<Vec<u8>> = lines
            .try_iter()
            .filter_map(|m| match m {
                Message::Line(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(kept, [b"line 0\n".to_vec(), b"line 1\n".to_vec()]);
    }
}
