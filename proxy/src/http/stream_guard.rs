//! A response body that tells its connection when the stream is over: when the body has been sent (or dropped
//! with the connection). The connection's idle timer runs only while no stream is open, as in Envoy.

use super::connection_state::ConnectionState;
use super::local_reply::ResponseBody;
use crate::upstream::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Ends the stream on drop.
pub struct OpenStream(Arc<ConnectionState>);

impl OpenStream {
    pub fn new(state: Arc<ConnectionState>) -> Self {
        Self(state)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stream_ended();
    }
}

pin_project! {
    /// A response body that ends its stream when it has been sent.
    pub struct Guarded {
        #[pin]
        inner: ResponseBody,
        open: Option<OpenStream>,
    }
}

/// `body`, ending the stream once it has been sent.
pub fn guard(body: ResponseBody, open: OpenStream) -> ResponseBody {
    guarded(body, open).boxed()
}

/// The same, unboxed, for a layer that wraps it again before boxing.
pub fn guarded(body: ResponseBody, open: OpenStream) -> Guarded {
    Guarded {
        inner: body,
        open: Some(open),
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = frame {
            this.open.take();
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
