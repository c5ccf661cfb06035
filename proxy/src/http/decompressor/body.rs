//! A body decoded frame by frame on its way through, its byte counts reported at its end as Envoy does: in the
//! `total_*_bytes` statistics and in trailers `x-envoy-decompressor-<name>-{compressed,uncompressed}-bytes`
//! (which an HTTP/1 peer never sees, as with Envoy's default codec settings).

use super::inflate::{Inflater, LibraryStats};
use crate::upstream::BoxError;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// What one direction counts, and the trailers' names.
#[derive(Clone)]
pub struct Tally {
    pub compressed: Counter,
    pub uncompressed: Counter,
    pub library: LibraryStats,
    pub trailer_names: Arc<(HeaderName, HeaderName)>,
}

pin_project_lite::pin_project! {
    pub struct Decompressed<B> {
        #[pin]
        inner: B,
        inflater: Inflater,
        tally: Tally,
        compressed: u64,
        uncompressed: u64,
        // What is left to send after the inner body ended: decoded bytes, then the trailers.
        pending_data: Option<Bytes>,
        pending_trailers: Option<HeaderMap>,
        done: bool,
    }
}

impl<B> Decompressed<B> {
    pub fn new(inner: B, inflater: Inflater, tally: Tally) -> Self {
        Self {
            inner,
            inflater,
            tally,
            compressed: 0,
            uncompressed: 0,
            pending_data: None,
            pending_trailers: None,
            done: false,
        }
    }
}

fn inflate(
    inflater: &mut Inflater,
    tally: &Tally,
    compressed: &mut u64,
    uncompressed: &mut u64,
    input: &[u8],
) -> Bytes {
    let output = inflater.inflate(input, &tally.library);
    *compressed += input.len() as u64;
    *uncompressed += output.len() as u64;
    tally.compressed.inc_by(input.len() as u64);
    tally.uncompressed.inc_by(output.len() as u64);
    Bytes::from(output)
}

fn add_totals(trailers: &mut HeaderMap, tally: &Tally, compressed: u64, uncompressed: u64) {
    let (compressed_name, uncompressed_name) = &*tally.trailer_names;
    trailers.insert(compressed_name.clone(), HeaderValue::from(compressed));
    trailers.insert(uncompressed_name.clone(), HeaderValue::from(uncompressed));
}

impl<B> Body for Decompressed<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(data) = this.pending_data.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Some(trailers) = this.pending_trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let out = inflate(
                            this.inflater,
                            this.tally,
                            this.compressed,
                            this.uncompressed,
                            &data,
                        );
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        // The body ends with its trailers: the totals join them.
                        *this.done = true;
                        if let Ok(mut trailers) = frame.into_trailers() {
                            add_totals(
                                &mut trailers,
                                this.tally,
                                *this.compressed,
                                *this.uncompressed,
                            );
                            *this.pending_trailers = Some(trailers);
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    // Envoy's codec ends a body with an empty frame, which the decoder sees too.
                    *this.done = true;
                    let out = inflate(
                        this.inflater,
                        this.tally,
                        this.compressed,
                        this.uncompressed,
                        &[],
                    );
                    if !out.is_empty() {
                        *this.pending_data = Some(out);
                    }
                    let mut trailers = HeaderMap::new();
                    add_totals(
                        &mut trailers,
                        this.tally,
                        *this.compressed,
                        *this.uncompressed,
                    );
                    *this.pending_trailers = Some(trailers);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending_data.is_none() && self.pending_trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
