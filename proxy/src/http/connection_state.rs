//! What the connection manager tracks about one downstream connection, shared by the IO wrapper that sees
//! its bytes (`observed_io`), the request layers (`stream_timeout`, `downstream_stats`) and the connection's
//! own timers (`connection_timeout`): request framing and activity, open streams, and the connection's drain.

use super::h1_framing::H1Framing;
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
    /// `None` when the connection can only be h2 (no HTTP/1 framing to follow).
    framing: Option<H1Framing>,
    /// When the connection last read a byte; `None` before the first (Envoy has no codec yet then).
    last_read: Option<Instant>,
    last_write: Option<Instant>,
    /// The HTTP/1 request whose body last moved (its number on the connection), and when.
    body_read: Option<(u64, Instant)>,
    /// Requests the connection manager has seen, and how many are still open.
    requests: u64,
    open_streams: usize,
    draining: bool,
    reset: bool,
    wakers: Vec<Waker>,
}

/// One request's place on its connection.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    /// 1 for the first request of the connection, and so on (HTTP/1 requests arrive in turn); `None` for a
    /// request the connection did not count, whose body is then followed like an h2 body.
    pub number: Option<u64>,
    /// The request had no body (`END_STREAM` on the headers, or no body framing).
    pub ended_with_head: bool,
}

impl Ticket {
    pub fn untracked(ended_with_head: bool) -> Self {
        Self {
            number: None,
            ended_with_head,
        }
    }
}

impl ConnectionState {
    /// `http1` tells whether the connection may carry HTTP/1 (its framing is then followed).
    pub fn new(http1: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
                framing: http1.then(H1Framing::default),
                last_read: None,
                last_write: None,
                body_read: None,
                requests: 0,
                open_streams: 0,
                draining: false,
                reset: false,
                wakers: Vec::new(),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn on_read(&self, bytes: &[u8]) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.last_read = Some(now);
        if let Some(framing) = inner.framing.as_mut()
            && let Some(number) = framing.feed(bytes).body_of
        {
            inner.body_read = Some((number, now));
        }
    }

    pub fn on_write(&self) {
        self.lock().last_write = Some(Instant::now());
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
        self.lock().framing.as_ref().is_none_or(|f| f.h2)
    }

    pub fn stream_started(&self, ended_with_head: bool) -> Ticket {
        let ticket = {
            let mut inner = self.lock();
            inner.requests += 1;
            inner.open_streams += 1;
            Ticket {
                number: Some(inner.requests),
                ended_with_head,
            }
        };
        self.changed.notify_waiters();
        ticket
    }

    pub fn stream_ended(&self) {
        let mut inner = self.lock();
        inner.open_streams = inner.open_streams.saturating_sub(1);
        drop(inner);
        self.changed.notify_waiters();
    }

    pub fn open_streams(&self) -> usize {
        self.lock().open_streams
    }

    /// Whether the request has been received completely; `None` when that cannot be seen (an h2 request with
    /// a body).
    pub fn request_complete(&self, ticket: Ticket) -> Option<bool> {
        if ticket.ended_with_head {
            return Some(true);
        }
        let number = ticket.number?;
        let inner = self.lock();
        let framing = inner.framing.as_ref()?;
        if framing.complete >= number {
            return Some(true);
        }
        framing.following().then_some(false)
    }

    /// When the request's body last moved: exact for HTTP/1; for h2, any byte read on the connection.
    pub fn request_activity(&self, ticket: Ticket) -> Option<Instant> {
        let inner = self.lock();
        match (inner.framing.as_ref(), ticket.number) {
            (Some(framing), Some(number)) if framing.following() => inner
                .body_read
                .filter(|(read, _)| *read == number)
                .map(|(_, at)| at),
            _ => inner.last_read,
        }
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
