//! The request body on its way upstream. When the route may retry, the body is streamed to the first attempt
//! while a copy is kept, up to the buffer limit, so a retry can send it again: a POST or a gRPC call is retried
//! like a GET (Envoy's router does the same). Past the limit the copy is dropped and the request can no longer be
//! retried (`retry_or_shadow_abandoned`), but it keeps flowing.
//!
//! Every attempt's body shares one state: the chunks copied so far, and the rest of the downstream body. An
//! attempt first replays the copied chunks, then reads on from the downstream body (copying as it goes); when an
//! attempt is dropped midway, it hands the downstream body back for the next one.

use crate::upstream::{BoxError, UpstreamBody};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

pub enum RequestBody {
    /// Sent once: no copy kept.
    Once(Option<UpstreamBody>),
    Replay(ReplayBody),
}

impl RequestBody {
    /// A body retries can replay, keeping at most `limit` bytes.
    pub fn replayable(body: UpstreamBody, limit: usize) -> Self {
        let hint = body.size_hint();
        let done = body.is_end_stream();
        if done {
            // Nothing to keep (a GET): an empty body replays for free.
            return RequestBody::empty();
        }
        RequestBody::Replay(ReplayBody {
            shared: Arc::new(Mutex::new(Shared {
                chunks: Vec::new(),
                copied: 0,
                limit,
                overflowed: false,
                source: (!done).then_some(body),
                source_done: done,
                trailers: None,
            })),
            source: None,
            replayed: 0,
            trailers_sent: false,
            hint,
        })
    }

    pub fn empty() -> Self {
        RequestBody::Once(None)
    }

    /// Another body with the same content, for a retry; `None` when the copy outgrew the limit (or this body is
    /// sent once).
    pub fn try_clone(&self) -> Option<Self> {
        match self {
            RequestBody::Once(None) => Some(RequestBody::Once(None)),
            RequestBody::Once(Some(_)) => None,
            RequestBody::Replay(body) => {
                let overflowed = body.shared.lock().map(|s| s.overflowed).unwrap_or(true);
                (!overflowed).then(|| {
                    RequestBody::Replay(ReplayBody {
                        shared: body.shared.clone(),
                        source: None,
                        replayed: 0,
                        trailers_sent: false,
                        hint: body.hint,
                    })
                })
            }
        }
    }

    /// The body outgrew the buffer limit: it cannot be sent again.
    pub fn is_abandoned(&self) -> bool {
        match self {
            RequestBody::Once(body) => body.is_some(),
            RequestBody::Replay(body) => body.shared.lock().map(|s| s.overflowed).unwrap_or(true),
        }
    }
}

pub struct ReplayBody {
    shared: Arc<Mutex<Shared>>,
    /// The downstream body while this attempt reads it.
    source: Option<UpstreamBody>,
    /// Chunks of `Shared::chunks` this attempt has sent.
    replayed: usize,
    trailers_sent: bool,
    hint: SizeHint,
}

struct Shared {
    chunks: Vec<Bytes>,
    copied: usize,
    limit: usize,
    overflowed: bool,
    /// The rest of the downstream body, when no attempt holds it.
    source: Option<UpstreamBody>,
    source_done: bool,
    trailers: Option<HeaderMap>,
}

impl Drop for ReplayBody {
    fn drop(&mut self) {
        if let Some(source) = self.source.take()
            && let Ok(mut shared) = self.shared.lock()
        {
            shared.source = Some(source);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Once(None) => Poll::Ready(None),
            RequestBody::Once(Some(body)) => Pin::new(body).poll_frame(cx),
            RequestBody::Replay(body) => body.poll_replay(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Once(None) => true,
            RequestBody::Once(Some(body)) => body.is_end_stream(),
            RequestBody::Replay(body) => body.hint.exact() == Some(0) && body.is_drained(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Once(None) => SizeHint::with_exact(0),
            RequestBody::Once(Some(body)) => body.size_hint(),
            RequestBody::Replay(body) => body.hint,
        }
    }
}

impl ReplayBody {
    fn is_drained(&self) -> bool {
        self.shared
            .lock()
            .map(|s| s.source_done && self.replayed >= s.chunks.len() && s.trailers.is_none())
            .unwrap_or(true)
    }

    fn poll_replay(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Ok(mut shared) = self.shared.lock() else {
            return Poll::Ready(Some(Err("request body state poisoned".into())));
        };
        if let Some(chunk) = shared.chunks.get(self.replayed) {
            self.replayed += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if shared.source_done {
            if !self.trailers_sent
                && let Some(trailers) = shared.trailers.clone()
            {
                self.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            return Poll::Ready(None);
        }
        if self.source.is_none() {
            match shared.source.take() {
                Some(source) => self.source = Some(source),
                None => {
                    return Poll::Ready(Some(Err(
                        "the request body is still held by an earlier attempt".into(),
                    )));
                }
            }
        }
        let Some(source) = self.source.as_mut() else {
            return Poll::Ready(None);
        };
        // The lock is held while polling the downstream body: only one attempt reads it at a time anyway.
        let polled = Pin::new(source).poll_frame(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.source_done = true;
                self.source = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if !shared.overflowed {
                            if shared.copied + data.len() <= shared.limit {
                                shared.copied += data.len();
                                shared.chunks.push(data.clone());
                                self.replayed += 1;
                            } else {
                                // Past the limit: give the memory back; this request will not be retried.
                                shared.overflowed = true;
                                shared.chunks = Vec::new();
                            }
                        }
                        Frame::data(data)
                    }
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            shared.trailers = Some(trailers.clone());
                            self.trailers_sent = true;
                        }
                        frame
                    }
                };
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// A body that yields its chunks one frame at a time.
    struct Chunks(std::collections::VecDeque<&'static str>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))),
            )
        }
    }

    fn source(chunks: &[&'static str]) -> UpstreamBody {
        Chunks(chunks.iter().copied().collect()).boxed()
    }

    async fn read(body: RequestBody) -> String {
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_retry_replays_the_whole_body() {
        let first = RequestBody::replayable(source(&["he", "llo"]), 1024);
        let second = first.try_clone().unwrap();
        assert_eq!(read(first).await, "hello");
        assert_eq!(read(second).await, "hello");
    }

    #[tokio::test]
    async fn an_attempt_dropped_midway_hands_the_rest_on() {
        let mut first = RequestBody::replayable(source(&["a", "b", "c"]), 1024);
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "a");
        let second = first.try_clone().unwrap();
        drop(first);
        assert_eq!(read(second).await, "abc");
    }

    #[tokio::test]
    async fn past_the_limit_the_body_flows_but_cannot_be_retried() {
        let first = RequestBody::replayable(source(&["1234", "5678"]), 6);
        let probe = first.try_clone().unwrap();
        assert_eq!(read(first).await, "12345678");
        assert!(probe.is_abandoned());
        assert!(probe.try_clone().is_none());
    }

    #[tokio::test]
    async fn an_empty_body_is_always_replayable() {
        let body =
            RequestBody::replayable(Full::new(Bytes::new()).map_err(|n| match n {}).boxed(), 0);
        assert!(body.try_clone().is_some());
        assert_eq!(read(body).await, "");
    }
}
