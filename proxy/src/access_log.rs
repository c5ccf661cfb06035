//! Envoy's access logs: a `Record` per request (or TCP connection) filled along the way, formatted on the worker
//! when the stream ends, and handed to a writer thread (`writer.rs`) so no worker ever waits on a file.
//!
//! Nothing is allocated for a request when its connection manager has no access log: the outermost HTTP layer
//! creates the shared `Notes` only when `Loggers` is not empty, and the layers inside fill them only if present.

mod body;
pub mod captured;
pub mod compiled;
mod filter;
pub(crate) mod format;
pub mod record;
mod time;
pub mod writer;

pub use body::{count_request, finish_response};
use outrigger_config::model::access_log::{AccessLog, Filter};
use record::Record;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

thread_local! {
    /// The line being formatted: one buffer per worker thread, reused for every line.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The access logs of one connection manager or `tcp_proxy`.
#[derive(Default)]
pub struct Loggers {
    logs: Vec<Logger>,
    /// The request headers a record keeps: those the formats read, and `x-request-id` (the runtime filter's
    /// draw).
    request_headers: Vec<http::HeaderName>,
    /// The response headers a record keeps: those the formats read, and `grpc-status` (Istio's metrics).
    response_headers: Vec<http::HeaderName>,
}

struct Logger {
    filter: Option<Filter>,
    format: compiled::Compiled,
    writer: writer::Writer,
}

impl Loggers {
    /// The loggers of `logs`; a file that cannot be opened is logged with its path and left out.
    pub fn new(logs: &[AccessLog]) -> Self {
        let logs: Vec<Logger> = logs
            .iter()
            .filter_map(|config| match writer::writer(&config.sink) {
                Ok(writer) => Some(Logger {
                    filter: config.filter.clone(),
                    format: compiled::Compiled::new(&config.format),
                    writer,
                }),
                Err(e) => {
                    tracing::error!(error = %e, "access log: cannot open; its lines are not written");
                    None
                }
            })
            .collect();
        let mut request_headers = vec![crate::http::headers::X_REQUEST_ID];
        let mut response_headers = vec![http::HeaderName::from_static("grpc-status")];
        for log in &logs {
            log.format.request_headers(&mut request_headers);
            log.format.response_headers(&mut response_headers);
        }
        Self {
            logs,
            request_headers,
            response_headers,
        }
    }

    /// The request headers a record keeps for these logs.
    pub fn request_headers(&self) -> &[http::HeaderName] {
        &self.request_headers
    }

    /// The response headers a record keeps of `all` (a copy of every header would cost each request more).
    pub fn response_headers(&self, all: &http::HeaderMap) -> captured::Captured {
        captured::Captured::of(all, &[&self.response_headers])
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Writes `record` to every log whose filter passes.
    pub fn log(&self, record: &Record) {
        for logger in &self.logs {
            if let Some(f) = &logger.filter {
                let request_id = record
                    .request
                    .as_ref()
                    .and_then(|r| r.header(&crate::http::headers::X_REQUEST_ID));
                if !filter::passes(f, record, request_id) {
                    continue;
                }
            }
            LINE.with_borrow_mut(|line| {
                line.clear();
                format::write_line(&logger.format, record, line);
                logger.writer.write(line.as_bytes());
            });
        }
    }
}

/// One request's record while it is in flight, shared by the layers that fill it (in the request's extensions
/// and in the router's `Target`).
#[derive(Clone)]
pub struct Notes(Arc<Shared>);

struct Shared {
    started: Instant,
    record: Mutex<Record>,
    /// Kept only to carry the request's span: no access log or Istio metric reads this record, so a request
    /// the tracer does not sample drops it (`Notes::needed`).
    only_for_trace: bool,
}

impl Notes {
    pub fn start(record: Record) -> Self {
        Self::new(record, false)
    }

    /// Notes only the tracer reads.
    pub fn for_trace_only(record: Record) -> Self {
        Self::new(record, true)
    }

    fn new(record: Record, only_for_trace: bool) -> Self {
        Notes(Arc::new(Shared {
            started: Instant::now(),
            record: Mutex::new(record),
            only_for_trace,
        }))
    }

    /// Whether anything will read the record: false once the tracer has not sampled a request whose notes
    /// only it reads.
    pub fn needed(&self) -> bool {
        !self.0.only_for_trace || self.lock().trace.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0
            .record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the record.
    pub fn with(&self, change: impl FnOnce(&mut Record)) {
        change(&mut self.lock());
    }

    pub fn started(&self) -> Instant {
        self.0.started
    }

    /// Time since the stream started.
    pub fn elapsed(&self) -> std::time::Duration {
        self.0.started.elapsed()
    }
}

/// Sets a field of the request's record, if it has one.
pub fn note<B>(request: &http::Request<B>, change: impl FnOnce(&mut Record)) {
    if let Some(notes) = request.extensions().get::<Notes>() {
        notes.with(change);
    }
}

/// Flushes every writer (at shutdown).
pub fn flush() {
    writer::flush_all();
}
