//! Request mirroring (`RouteAction.request_mirror_policies`): a copy of the request, body included, goes to each
//! mirror cluster that its `runtime_fraction` draws, fire and forget. The copy's response is read and thrown
//! away; it never delays, fails or changes the main response. A mirror's outcome shows only in its cluster's
//! statistics (`upstream_rq_total`, `upstream_rq_2xx`, `upstream_rq_timeout`, connection failures), which the
//! mirror's own upstream stack counts as for any request.
//!
//! What the mirror receives is what Envoy 1.40's shadow receives (checked against it): the request as the main
//! upstream gets it (after the route's header changes and rewrites), its `Host` with `-shadow` appended to the
//! host name (before any port), `x-envoy-internal: true`, and the proxy's local address appended to
//! `x-forwarded-for` (Envoy's async client adds both). It has the route's `timeout` and no retries.
//!
//! The body is copied as it streams to the main upstream (`Tee`), frame by frame, so a large body is never held
//! whole. Bound: a mirror that reads slower than the main upstream may lag by at most the route's buffer limit
//! (`request_body_buffer_limit`, else the listener's `per_connection_buffer_limit_bytes`, 1 MiB by default, the
//! limit Envoy gives its shadow streams); past it, that mirror's request is reset and the main one goes on. Envoy
//! instead applies the slow mirror's back-pressure to the downstream body, which stalls the main request too
//! (checked with Envoy 1.40: a mirror that stops reading a 5 MB body holds the main request until the client gives
//! up); the brief for this feature asks that a mirror never delays the main request. If the main upstream stops
//! reading the body (it failed or answered early), the rest of the body is still read for the mirrors, as Envoy's
//! router reads it whatever the main upstream does.

use super::Connection;
use super::attempt::Target;
use super::replay_body::RequestBody;
use super::route_stack::RouteService;
use crate::upstream::{BoxError, UpstreamBody};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use outrigger_config::model::route::{MirrorPolicy, MirrorTarget};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The request as the main upstream gets it, for the mirrors to copy.
pub struct Original<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
}

/// Starts the mirrors of `policies` that their fractions draw, and returns the body the main request sends
/// (`body` itself when nothing is mirrored). `limit` bounds how far a mirror may lag behind (see the module).
pub fn start(
    policies: &[MirrorPolicy],
    connection: &Connection,
    service: Option<RouteService>,
    original: Original<'_>,
    body: UpstreamBody,
    limit: usize,
) -> UpstreamBody {
    let Some(service) = service else {
        return body;
    };
    let mut sinks = Vec::new();
    for policy in policies {
        let fraction = policy.fraction;
        if fraction.numerator == 0
            || (fraction.numerator < fraction.denominator
                && fastrand::u32(..fraction.denominator.max(1)) >= fraction.numerator)
        {
            continue;
        }
        let name = match &policy.target {
            MirrorTarget::Cluster(name) => Some(name.as_str()),
            MirrorTarget::ClusterHeader(header) => original
                .headers
                .get(header.as_str())
                .and_then(|v| v.to_str().ok()),
        };
        // As in Envoy: no header, or a cluster that does not exist, means no mirror (and no statistic).
        let Some(cluster) = name.and_then(|n| connection.inputs.clusters.get(n)) else {
            continue;
        };
        let (mirror_body, sink) = if body.is_end_stream() {
            (RequestBody::empty(), None)
        } else {
            let (sink, mirror_body) = channel(body.size_hint(), limit);
            (RequestBody::Once(Some(mirror_body.boxed())), Some(sink))
        };
        let mut request = Request::new(mirror_body);
        *request.method_mut() = original.method.clone();
        *request.uri_mut() = original.uri.clone();
        *request.version_mut() = original.version;
        *request.headers_mut() = shadow_headers(original.headers);
        request.extensions_mut().insert(Target {
            cluster,
            destination: connection.destination,
            own_addresses: connection.own_addresses.clone(),
            downstream_version: original.version,
            auto_host: false,
            attempt_count_header: false,
            notes: None,
            hash: None,
        });
        sinks.extend(sink);
        let service = service.clone();
        tokio::spawn(async move {
            let Ok(response) = service.oneshot(request).await;
            // Read and dropped frame by frame, so the connection can be reused and nothing piles up.
            let mut body = response.into_body();
            while let Some(Ok(_)) = body.frame().await {}
        });
    }
    if sinks.is_empty() {
        return body;
    }
    Tee {
        source: Some(body),
        sinks,
    }
    .boxed()
}

/// The headers a mirror gets: the main request's, with the shadow host and the async client's additions.
fn shadow_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    if let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| HeaderValue::from_str(&shadow_host(h)).ok())
    {
        headers.insert(http::header::HOST, host);
    }
    headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
    super::forwarded::append_forwarded_for(&mut headers, super::forwarded::local_address());
    headers
}

/// `host:port` -> `host-shadow:port`; `[v6]:port` -> `[v6]-shadow:port`; `host` -> `host-shadow`.
fn shadow_host(host: &str) -> String {
    let port_at = match host.rfind(']') {
        Some(end) => host[end..].find(':').map(|i| end + i),
        None => host.rfind(':'),
    };
    match port_at {
        Some(at) => format!("{}-shadow{}", &host[..at], &host[at..]),
        None => format!("{host}-shadow"),
    }
}

type Item = Result<Frame<Bytes>, BoxError>;

/// Where the tee writes one mirror's copy.
struct Sink {
    sender: mpsc::UnboundedSender<Item>,
    /// Bytes sent and not yet read by the mirror's request.
    queued: Arc<AtomicUsize>,
    limit: usize,
}

fn channel(hint: SizeHint, limit: usize) -> (Sink, MirrorBody) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Sink {
            sender,
            queued: queued.clone(),
            limit,
        },
        MirrorBody {
            receiver,
            queued,
            hint,
        },
    )
}

impl Sink {
    /// False when this mirror is done with: its request ended, or it fell too far behind (then it is reset).
    fn send(&self, frame: &Frame<Bytes>) -> bool {
        let copy = match frame.data_ref() {
            Some(data) => {
                let queued = self.queued.fetch_add(data.len(), Ordering::AcqRel) + data.len();
                if queued > self.limit {
                    tracing::debug!(
                        limit = self.limit,
                        "a mirror fell behind the request body by more than the buffer limit; its request is reset"
                    );
                    let _ = self
                        .sender
                        .send(Err("the mirror fell behind the request body".into()));
                    return false;
                }
                Frame::data(data.clone())
            }
            None => match frame.trailers_ref() {
                Some(trailers) => Frame::trailers(trailers.clone()),
                None => return true,
            },
        };
        self.sender.send(Ok(copy)).is_ok()
    }
}

/// The main request's body: each frame read is also sent to the mirrors.
struct Tee {
    /// `None` once it has ended.
    source: Option<UpstreamBody>,
    sinks: Vec<Sink>,
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let Some(source) = self.source.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(source).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => self.sinks.retain(|sink| sink.send(frame)),
            Poll::Ready(Some(Err(e))) => {
                for sink in self.sinks.drain(..) {
                    let _ = sink.sender.send(Err(e.to_string().into()));
                }
            }
            // The whole body was read: dropping the senders ends each mirror's body.
            Poll::Ready(None) => {
                self.sinks.clear();
                self.source = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.source.as_ref().is_none_or(|s| s.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.source
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |s| s.size_hint())
    }
}

impl Drop for Tee {
    /// The main request let go of its body before its end (its upstream failed or answered early): the rest is
    /// read for the mirrors still reading, still within their bound.
    fn drop(&mut self) {
        let (Some(source), false) = (self.source.take(), self.sinks.is_empty()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let rest = Tee {
            source: Some(source),
            sinks: std::mem::take(&mut self.sinks),
        };
        runtime.spawn(async move {
            let mut rest = rest;
            while !rest.sinks.is_empty() {
                match rest.frame().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            // Mirrors still reading lose their senders with the tee: their bodies end (or were reset above).
            rest.source = None;
        });
    }
}

/// A mirror's copy of the request body.
struct MirrorBody {
    receiver: mpsc::UnboundedReceiver<Item>,
    queued: Arc<AtomicUsize>,
    hint: SizeHint,
}

impl Body for MirrorBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let polled = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.queued.fetch_sub(data.len(), Ordering::AcqRel);
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("example.com:8080"), "example.com-shadow:8080");
        assert_eq!(shadow_host("a.b"), "a.b-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
    }

    #[tokio::test]
    async fn a_mirror_that_falls_behind_is_reset_and_the_main_body_flows() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..4)
            .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 10]))))
            .collect();
        let source = http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed();
        let (fast, mut fast_body) = channel(SizeHint::default(), 1_000);
        let (slow, mut slow_body) = channel(SizeHint::default(), 25);
        let tee = Tee {
            source: Some(source),
            sinks: vec![fast, slow],
        };
        // The main request reads everything while the slow mirror reads nothing.
        let main = tee.collect().await.unwrap().to_bytes();
        assert_eq!(main.len(), 40);
        let fast_copy = (&mut fast_body).collect().await.unwrap().to_bytes();
        assert_eq!(fast_copy, main);
        // Two chunks fit the slow mirror's 25 bytes, the third did not: its body ends in an error.
        let mut got = 0;
        let mut failed = false;
        while let Some(frame) = slow_body.frame().await {
            match frame {
                Ok(frame) => got += frame.into_data().map_or(0, |d| d.len()),
                Err(_) => failed = true,
            }
        }
        assert_eq!(got, 20);
        assert!(failed);
    }
}
