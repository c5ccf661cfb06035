//! The bodies an access log watches: the request's (bytes received, when it ended) and the response's (bytes
//! sent, trailers, and the end of the stream, when the line is written).

use super::{Loggers, Notes};
use crate::metrics::istio::ConnectionLabels;
use crate::upstream::{BoxError, UpstreamBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project! {
    struct CountedRequest {
        #[pin]
        inner: UpstreamBody,
        notes: Notes,
        ended: bool,
    }
}

/// `body`, counting its bytes into the record and noting when it ended. A request that had ended with its
/// headers was noted when its record started (`%REQUEST_DURATION%` 0, as in Envoy, which notes it when it has
/// decoded them): nothing to watch then.
pub fn count_request(body: UpstreamBody, notes: &Notes) -> UpstreamBody {
    if body.is_end_stream() {
        return body;
    }
    CountedRequest {
        inner: body,
        notes: notes.clone(),
        ended: false,
    }
    .boxed()
}

impl Body for CountedRequest {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut inner = this.inner;
        let frame = inner.as_mut().poll_frame(cx);
        let mut add = 0;
        let mut end = false;
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                add = f.data_ref().map_or(0, |d| d.len() as u64);
                end = f.is_trailers();
            }
            Poll::Ready(None) => end = true,
            _ => {}
        }
        if !end && add > 0 && inner.is_end_stream() {
            end = true;
        }
        if add > 0 || (end && !*this.ended) {
            let elapsed = this.notes.elapsed();
            let first_end = end && !*this.ended;
            this.notes.with(|r| {
                r.bytes_received += add;
                if first_end {
                    r.request_duration = Some(elapsed);
                }
            });
            *this.ended |= end;
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

pin_project! {
    struct LoggedResponse<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }

    impl<B> PinnedDrop for LoggedResponse<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.finish();
            }
        }
    }
}

struct Pending {
    notes: Notes,
    loggers: Arc<Loggers>,
    istio: Option<Arc<ConnectionLabels>>,
    tracer: Option<Arc<crate::trace::Tracer>>,
    sent: u64,
    trailers: Option<http::HeaderMap>,
    headers_at: std::time::Duration,
}

impl Pending {
    /// Completes the record where it is (no copy of it is taken), writes its lines, counts it in Istio's
    /// metrics and ends its span.
    fn finish(self) {
        let Pending {
            notes,
            loggers,
            istio,
            tracer,
            sent,
            trailers,
            headers_at,
        } = self;
        let duration = notes.elapsed();
        notes.with(|record| {
            record.bytes_sent = sent;
            record.response_trailers = trailers;
            record.duration = Some(duration);
            if record.response_duration.is_some() {
                record.response_tx_duration = Some(duration.saturating_sub(headers_at));
            }
            if let Some(istio) = &istio {
                crate::metrics::istio::report(istio, record);
            }
            loggers.log(record);
            if let Some((tracer, active)) = tracer.zip(record.trace.take()) {
                tracer.finish(*active, record);
            }
        });
    }
}

/// `body`, writing the record's line once it has been sent (or the stream is gone); `headers_at`: when its
/// headers were sent, since the stream started. With `istio`, the request is counted in Istio's metrics then too.
pub fn finish_response<B>(
    body: B,
    notes: Notes,
    headers_at: std::time::Duration,
    loggers: Arc<Loggers>,
    istio: Option<Arc<ConnectionLabels>>,
    tracer: Option<Arc<crate::trace::Tracer>>,
) -> LoggedBody<B> {
    LoggedBody {
        inner: LoggedResponse {
            inner: body,
            pending: Some(Pending {
                notes,
                loggers,
                istio,
                tracer,
                sent: 0,
                trailers: None,
                headers_at,
            }),
        },
    }
}

pin_project! {
    /// A response body that writes its access log line at its end.
    pub struct LoggedBody<B> {
        #[pin]
        inner: LoggedResponse<B>,
    }
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project().inner.project();
        let frame = this.inner.poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(pending) = this.pending.as_mut() {
                    if let Some(data) = f.data_ref() {
                        pending.sent += data.len() as u64;
                    } else if let Some(trailers) = f.trailers_ref() {
                        pending.trailers = Some(trailers.clone());
                    }
                }
            }
            Poll::Ready(None | Some(Err(_))) => {
                if let Some(pending) = this.pending.take() {
                    pending.finish();
                }
            }
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.inner.size_hint()
    }
}
