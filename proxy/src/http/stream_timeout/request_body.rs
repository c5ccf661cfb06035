//! The request body under the stream timers. Envoy's codec tells its connection manager of every piece of a
//! request body and of its end; here the body itself does: each frame the stack reads restarts the stream idle
//! clock, and the end of the body (`is_end_stream`, or no more frames) marks the request received completely,
//! which disarms `request_timeout` and makes a later stream idle timeout a 504 rather than a 408. The same for
//! HTTP/1 and h2, whatever hyper's body type: the filters see it boxed.

use crate::upstream::{BoxError, UpstreamBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

/// How far one request has arrived, as its body has been read.
#[derive(Default)]
pub struct RequestProgress {
    inner: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    /// When the last frame was read.
    last_frame: Option<Instant>,
    complete: bool,
}

impl RequestProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The last frame read, if after `since`; else `since`.
    pub fn activity_after(&self, since: Instant) -> Instant {
        self.lock().last_frame.map_or(since, |at| at.max(since))
    }

    /// Whether the whole request has been received.
    pub fn is_complete(&self) -> bool {
        self.lock().complete
    }

    fn frame(&self, ended: bool) {
        let mut progress = self.lock();
        progress.last_frame = Some(Instant::now());
        progress.complete |= ended;
    }

    fn end(&self) {
        self.lock().complete = true;
    }
}

pin_project! {
    struct WatchedBody {
        #[pin]
        inner: UpstreamBody,
        progress: Arc<RequestProgress>,
    }
}

/// `body`, reporting to the returned progress as it is read. A body that is over before it starts (no body,
/// `END_STREAM` on the headers) is complete at once and is not wrapped.
pub fn watch(body: UpstreamBody) -> (UpstreamBody, Arc<RequestProgress>) {
    let progress = Arc::new(RequestProgress::default());
    if body.is_end_stream() {
        progress.end();
        return (body, progress);
    }
    let watched = WatchedBody {
        inner: body,
        progress: progress.clone(),
    };
    (watched.boxed(), progress)
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let frame = this.inner.as_mut().poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(_))) => this.progress.frame(this.inner.is_end_stream()),
            Poll::Ready(None) => this.progress.end(),
            // A failed body (the client reset the stream) never completes.
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
