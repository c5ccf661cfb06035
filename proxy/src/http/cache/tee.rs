//! A response body streamed to the client while a copy is kept for the store: once the body ends, the copy is
//! stored; a body past the store's per-entry bound, or one that fails or is dropped before its end, is not.

use super::store::MAX_ENTRY_BYTES;
use crate::http::local_reply::ResponseBody;
use crate::upstream::BoxError;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// What to do with the whole body and its trailers.
pub type Commit = Box<dyn FnOnce(Bytes, Option<HeaderMap>) + Send + Sync>;

pin_project_lite::pin_project! {
    pub struct Tee {
        #[pin]
        inner: ResponseBody,
        copy: BytesMut,
        too_large: bool,
        trailers: Option<HeaderMap>,
        commit: Option<Commit>,
    }
}

impl Tee {
    /// Wraps `inner`; a body that is already over is stored at once (the server may never poll it).
    pub fn new(inner: ResponseBody, commit: Commit) -> Self {
        let mut tee = Self {
            inner,
            copy: BytesMut::new(),
            too_large: false,
            trailers: None,
            commit: Some(commit),
        };
        if tee.inner.is_end_stream()
            && let Some(commit) = tee.commit.take()
        {
            commit(Bytes::new(), None);
        }
        tee
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() > MAX_ENTRY_BYTES {
                        *this.too_large = true;
                        this.copy.clear();
                    } else if !*this.too_large {
                        this.copy.extend_from_slice(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    *this.trailers = Some(trailers.clone());
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.commit.take();
            }
            Poll::Ready(None) | Poll::Pending => {}
        }
        let ended = matches!(polled, Poll::Ready(None))
            || (matches!(polled, Poll::Ready(Some(Ok(_)))) && this.inner.is_end_stream());
        if ended
            && !*this.too_large
            && let Some(commit) = this.commit.take()
        {
            commit(std::mem::take(this.copy).freeze(), this.trailers.take());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
