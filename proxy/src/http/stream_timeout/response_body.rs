//! The response body under the stream idle timer: each frame restarts it (and so does request body data still
//! arriving); when it fires the body fails, which hyper turns into a reset: the HTTP/1 connection is closed
//! mid-response, the h2 stream gets RST_STREAM.

use super::Clock;
use crate::http::local_reply::ResponseBody;
use crate::upstream::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep, sleep_until};

pin_project! {
    pub struct IdleBody {
        #[pin]
        inner: ResponseBody,
        #[pin]
        sleep: Sleep,
        last_frame: Instant,
        clock: Arc<Clock>,
    }
}

impl IdleBody {
    pub fn wrap(inner: ResponseBody, clock: Arc<Clock>) -> ResponseBody {
        if inner.is_end_stream() {
            return inner;
        }
        let now = Instant::now();
        IdleBody {
            inner,
            sleep: sleep_until(now + clock.idle),
            last_frame: now,
            clock,
        }
        .boxed()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout: the response body was reset")]
pub struct StreamIdleTimeout;

impl Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.last_frame = Instant::now();
            this.sleep
                .as_mut()
                .reset(*this.last_frame + this.clock.idle);
            return Poll::Ready(frame);
        }
        loop {
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = this.clock.request_activity_after(*this.last_frame) + this.clock.idle;
            if Instant::now() < deadline {
                this.sleep.as_mut().reset(deadline);
                continue;
            }
            this.clock.count_idle_timeout();
            return Poll::Ready(Some(Err(Box::new(StreamIdleTimeout))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
