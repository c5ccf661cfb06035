//! Closing an h2 upstream connection that has carried no stream for the cluster's `idle_timeout` (Envoy's
//! `common_http_protocol_options.idle_timeout`, 1 h unless set). hyper's pool does this for HTTP/1.1; an h2
//! connection is ours (one per endpoint), so its task watches its own streams.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// `Activity::open` once the connection is closing for idleness: no stream may start on it any more.
const CLOSING: usize = usize::MAX;

/// The streams open on one connection, and since when it has had none.
pub struct Activity {
    open: AtomicUsize,
    /// Milliseconds from `born` to the moment the last stream ended.
    idle_since: AtomicU64,
    born: Instant,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// Counts a stream as open until the returned guard is dropped (when its response has ended); `None` when
    /// the connection is closing for idleness (the caller takes another connection).
    pub fn stream(self: &Arc<Self>) -> Option<OpenStream> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open != CLOSING).then(|| open + 1)
            })
            .ok()?;
        Some(OpenStream(self.clone()))
    }

    /// How long the connection has carried no stream; `None` while one is open.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        Some(self.born.elapsed().saturating_sub(since))
    }
}

/// One open stream; the connection is idle once every guard is gone.
pub struct OpenStream(Arc<Activity>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since.store(now, Ordering::Release);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Drives `connection` until it ends (`Some` of its output), or until it has carried no stream for `timeout`
/// (`None`: the caller drops it, which closes the connection).
pub async fn until_idle<F: Future>(
    connection: F,
    activity: Arc<Activity>,
    timeout: Option<Duration>,
) -> Option<F::Output> {
    let mut connection = std::pin::pin!(connection);
    let Some(timeout) = timeout else {
        return Some(connection.await);
    };
    loop {
        let wait = match activity.idle_for() {
            // Closing only if no stream started meanwhile: from here on `stream()` refuses this connection.
            Some(idle)
                if idle >= timeout
                    && activity
                        .open
                        .compare_exchange(0, CLOSING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok() =>
            {
                return None;
            }
            Some(idle) => timeout.saturating_sub(idle).max(Duration::from_millis(1)),
            None => timeout,
        };
        tokio::select! {
            output = &mut connection => return Some(output),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_ends_after_the_timeout_counted_from_its_last_stream() {
        let activity = Activity::new();
        let started = Instant::now();
        let stream = activity.stream();
        assert!(stream.is_some());
        let watched = tokio::spawn(until_idle(
            std::future::pending::<()>(),
            activity.clone(),
            Some(Duration::from_secs(10)),
        ));
        // A stream open for 25 s keeps the connection past the timeout.
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!watched.is_finished());
        drop(stream);
        let ended = watched.await.ok();
        assert_eq!(ended, Some(None), "closed for idleness");
        assert!(
            activity.stream().is_none(),
            "a closing connection takes no stream"
        );
        let lived = started.elapsed();
        assert!(
            lived >= Duration::from_secs(35) && lived < Duration::from_secs(36),
            "{lived:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_the_connection_runs_to_its_end() {
        let activity = Activity::new();
        let output = until_idle(
            async {
                tokio::time::sleep(Duration::from_secs(7200)).await;
                "ended"
            },
            activity,
            None,
        )
        .await;
        assert_eq!(output, Some("ended"));
    }
}
