//! A tonic transport over a cluster of the configuration: each gRPC call is one h2 request through the
//! cluster's own balancer and connection pool (its TLS, its limits), as Envoy's `envoy_grpc` client sends it.

use crate::Inputs;
use crate::upstream::{BoxError, SendError, UpstreamBody};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Clone)]
pub struct ClusterChannel {
    pub inputs: Arc<Inputs>,
    pub cluster: String,
    /// The call's deadline, announced to the service as Envoy announces it (none when zero).
    pub timeout: Duration,
    /// A streaming call (the load reports): each message goes on as it comes, instead of the whole body
    /// once it has ended.
    pub streaming: bool,
}

/// A request body fed by a task that reads tonic's body (which is not `Sync`, as the pool's bodies must be).
struct Forwarded(tokio::sync::mpsc::Receiver<Result<http_body::Frame<Bytes>, BoxError>>);

impl http_body::Body for Forwarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx)
    }
}

fn forwarded(mut body: tonic::body::Body) -> UpstreamBody {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        // Ends when the call's body ends or the call is gone (the receiver dropped).
        while let Some(frame) = body.frame().await {
            if tx.send(frame.map_err(BoxError::from)).await.is_err() {
                break;
            }
        }
    });
    BodyExt::boxed(Forwarded(rx))
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<BoxBody<Bytes, BoxError>>, BoxError>> + Send>>;

impl tower_service::Service<Request<tonic::body::Body>> for ClusterChannel {
    type Response = Response<BoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let inputs = self.inputs.clone();
        let name = self.cluster.clone();
        let timeout = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let streaming = self.streaming;
        Box::pin(async move {
            let cluster = inputs
                .clusters
                .get(&name)
                .ok_or_else(|| BoxError::from(format!("no cluster {name:?}")))?;
            let picked = cluster.pick(None, &[]).map_err(|e| e.to_string())?;
            let (mut parts, body) = request.into_parts();
            // Envoy's gRPC client names the cluster as the call's authority, marks the call internal and
            // announces its deadline (checked with Envoy 1.40: `grpc-timeout: 500m`).
            if let Ok(host) = HeaderValue::from_str(&name) {
                parts.headers.insert(http::header::HOST, host);
            }
            let headers = &mut parts.headers;
            headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
            if timeout > 0 {
                headers.insert(
                    "grpc-timeout",
                    format!("{timeout}m").parse::<HeaderValue>()?,
                );
                headers.insert("x-envoy-expected-rq-timeout-ms", HeaderValue::from(timeout));
            }
            let body = if streaming {
                forwarded(body)
            } else {
                unary(body).await?
            };
            // With load reports configured, the call counts on its host as a routed request does (Envoy's gRPC
            // client goes through its router).
            let load = cluster
                .load_of(picked.address)
                .map(crate::load_report::AttemptLoad::start);
            let sent = cluster
                .http
                .send(
                    picked,
                    Request::from_parts(parts, body),
                    http::Version::HTTP_2,
                )
                .await;
            let in_progress = match (&sent, load) {
                (Ok((response, _)), Some(load)) => load.answered(response.status().as_u16()),
                (
                    Err(SendError::Connect(_) | SendError::ConnectTimeout(_) | SendError::Overflow),
                    Some(load),
                ) => {
                    load.not_issued();
                    None
                }
                _ => None,
            };
            let (response, open) = sent.map_err(|e| e.to_string())?;
            // The h2 stream counts as open until the answer has been read (the guards live in the body).
            Ok(response.map(move |body| {
                body.map_frame(move |frame| {
                    let _ = (&open, &in_progress);
                    frame
                })
                .map_err(BoxError::from)
                .boxed()
            }))
        })
    }
}

async fn unary(body: tonic::body::Body) -> Result<UpstreamBody, BoxError> {
    // A unary call's message, whole (tonic's body is not `Sync`, as the pool's bodies must be), sent as
    // one DATA frame without a `content-length`, as Envoy sends it.
    let message = body.collect().await.map_err(BoxError::from)?.to_bytes();
    let frame = std::iter::once(Ok::<_, BoxError>(http_body::Frame::data(message)));
    let body: UpstreamBody = BodyExt::boxed(http_body_util::StreamBody::new(
        futures_util::stream::iter(frame),
    ));
    Ok(body)
}
