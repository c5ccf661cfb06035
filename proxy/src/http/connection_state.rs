//! What the connection manager tracks about one downstream connection, shared by the request layers
//! (`downstream_stats` counts streams, `stream_timeout` watches a tunnel), the connection's own timers
//! (`connection_timeout`) and its IO (`connection_io`): open streams, whether the client has sent anything,
//! when a tunnel's bytes last moved, the connection's drain and its reset.
//!
//! Request bodies are not followed here: each stream's body is wrapped where the stack sees it
//! (`stream_timeout::request_body`).

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use tokio::sync::Notify;
use tokio::time::Instant;

pub struct ConnectionState {
    inner: Mutex<Inner>,
    /// Woken when a stream starts or ends, a drain starts, or the connection is reset.
    pub changed: Notify,
}

struct Inner {
    /// When the connection last read a byte; `None` before the first (Envoy has no codec yet then).
    last_read: Option<Instant>,
    last_write: Option<Instant>,
    /// The connection speaks h2 (its codec, its preface, or a stream said so).
    h2: bool,
    open_streams: usize,
    /// Requests the connection has taken, for `max_requests_per_connection`.
    requests: u64,
    draining: bool,
    reset: bool,
    wakers: Vec<Waker>,
    /// The debug data of the GOAWAY this side sent (h2), which names why the codec ended the connection.
    go_away: Option<Vec<u8>>,
}

/// The h2 connection preface, as far as it tells h2 from HTTP/1.
const PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl ConnectionState {
    /// `h2` when the codec can only be h2.
    pub fn new(h2: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
                last_read: None,
                last_write: None,
                h2,
                open_streams: 0,
                requests: 0,
                draining: false,
                reset: false,
                wakers: Vec::new(),
                go_away: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes were read; the first read tells an h2 preface (an AUTO connection that has no stream yet when
    /// it is drained must get GOAWAY at once, as HTTP/1 must not).
    pub fn on_read(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        if inner.last_read.is_none() && bytes.starts_with(PREFACE) {
            inner.h2 = true;
        }
        inner.last_read = Some(Instant::now());
    }

    pub fn on_write(&self) {
        self.lock().last_write = Some(Instant::now());
    }

    pub fn on_go_away(&self, debug_data: Vec<u8>) {
        self.lock().go_away = Some(debug_data);
    }

    /// The debug data of the last GOAWAY this side sent.
    pub fn go_away(&self) -> Option<Vec<u8>> {
        self.lock().go_away.clone()
    }

    /// Whether the client has sent anything yet.
    pub fn has_read(&self) -> bool {
        self.lock().last_read.is_some()
    }

    /// The last byte read or written, for a tunnel after an upgrade.
    pub fn last_io(&self) -> Option<Instant> {
        let inner = self.lock();
        inner.last_read.max(inner.last_write)
    }

    /// Whether the connection speaks h2.
    pub fn is_h2(&self) -> bool {
        self.lock().h2
    }

    /// A request started; returns how many the connection has taken.
    pub fn stream_started(&self, version: http::Version) -> u64 {
        let requests = {
            let mut inner = self.lock();
            inner.open_streams += 1;
            inner.requests += 1;
            inner.h2 |= version == http::Version::HTTP_2;
            inner.requests
        };
        self.changed.notify_waiters();
        requests
    }

    pub fn stream_ended(&self) {
        let mut inner = self.lock();
        inner.open_streams = inner.open_streams.saturating_sub(1);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Requests the connection has taken.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub fn open_streams(&self) -> usize {
        self.lock().open_streams
    }

    /// The connection stops taking new requests (`Connection: close`, GOAWAY).
    pub fn start_drain(&self) {
        self.lock().draining = true;
        self.changed.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.lock().draining
    }

    /// Fails the connection's reads and writes from now on: the way a stream that outlived its idle timeout
    /// after an upgrade is reset.
    pub fn reset(&self) {
        let wakers = {
            let mut inner = self.lock();
            inner.reset = true;
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        self.changed.notify_waiters();
    }

    /// Whether the connection was reset; else remembers `waker` to wake when it is.
    pub fn is_reset(&self, waker: &Waker) -> bool {
        let mut inner = self.lock();
        if !inner.reset && !inner.wakers.iter().any(|w| w.will_wake(waker)) {
            inner.wakers.push(waker.clone());
        }
        inner.reset
    }
}
