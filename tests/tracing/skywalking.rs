//! A SkyWalking collector for the tracing tests: it serves `TraceSegmentReportService/collect` over h2c and
//! keeps every `SegmentObject` as it arrives on the stream (Envoy keeps its stream open between segments),
//! with the stream's `authentication` metadata. The messages are decoded with the proxy's hand-written prost
//! structs; the differential test then reads Envoy's segments and ours through the same ones. Stops when dropped.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrigger_proxy::trace::skywalking::SegmentObject;
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Store = Arc<Mutex<Vec<(Option<String>, SegmentObject)>>>;

pub struct SkyWalkingReceiver {
    pub address: SocketAddr,
    store: Store,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SkyWalkingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SkyWalkingReceiver {
    pub async fn start() -> SkyWalkingReceiver {
        Self::start_on(0).await
    }

    /// On a port chosen beforehand (a collector that comes up late).
    pub async fn start_on(port: u16) -> SkyWalkingReceiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let store = Store::default();
        let kept = store.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| collect(request, kept.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SkyWalkingReceiver {
            address,
            store,
            task,
        }
    }

    /// Every segment so far, with its stream's `authentication` metadata.
    pub fn segments(&self) -> Vec<(Option<String>, SegmentObject)> {
        self.store.lock().unwrap().clone()
    }

    /// Waits up to 10 s until `want` segments arrived; returns what arrived.
    pub async fn wait_for(&self, want: usize) -> Vec<(Option<String>, SegmentObject)> {
        let started = Instant::now();
        loop {
            let segments = self.segments();
            if segments.len() >= want || started.elapsed() > Duration::from_secs(10) {
                return segments;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads the stream's gRPC messages (a flag byte, a 4-byte length, the message) as they come; answers one
/// empty `Commands` and `grpc-status: 0` when the client ends the stream.
async fn collect(
    request: http::Request<hyper::body::Incoming>,
    store: Store,
) -> Result<http::Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>, hyper::Error>
{
    assert_eq!(
        request.uri().path(),
        "/skywalking.v3.TraceSegmentReportService/collect"
    );
    let token = request
        .headers()
        .get("authentication")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut body = request.into_body();
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buffer.extend_from_slice(&data);
        }
        while buffer.len() >= 5 {
            let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
            if buffer.len() < 5 + length {
                break;
            }
            buffer.advance(5);
            let message = buffer.split_to(length);
            let segment = SegmentObject::decode(message.freeze()).expect("a SegmentObject");
            store.lock().unwrap().push((token.clone(), segment));
        }
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    // One empty `Commands` message.
    let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
        .map_err(|never| match never {})
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let mut response = http::Response::new(body);
    response
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    Ok(response)
}
