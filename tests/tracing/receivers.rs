//! Collectors for the tracing tests: an OTLP/gRPC receiver (the `TraceService` of the OTLP protos, served by
//! tonic) and a Zipkin JSON v2 receiver (`POST /api/v2/spans`), each keeping what it received for exact
//! assertions. Both stop when dropped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received OTLP span, flattened.
#[derive(Clone, Debug)]
pub struct Span {
    pub service: String,
    pub resource: BTreeMap<String, String>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: String,
    pub name: String,
    /// 2 SERVER, 3 CLIENT.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    pub error_status: bool,
    pub start_unix_nano: u64,
}

#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().extend(flatten(request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The spans of one export, with their resource.
fn flatten(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource: BTreeMap<String, String> = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .map(|a| (a.key.clone(), text(a.value.as_ref())))
            .collect();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(Span {
                service: service.clone(),
                resource: resource.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_id: hex(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                attributes: span
                    .attributes
                    .iter()
                    .map(|a| (a.key.clone(), text(a.value.as_ref())))
                    .collect(),
                error_status: span.status.is_some_and(|s| s.code == 2),
                start_unix_nano: span.start_time_unix_nano,
            });
        }
    }
    spans
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct OtlpReceiver {
    pub address: SocketAddr,
    store: Store,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// On a port chosen beforehand (a collector that comes up late).
    pub async fn start_on(port: u16) -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> OtlpReceiver {
        let address = listener.local_addr().unwrap();
        let store = Store::default();
        let service = TraceServiceServer::new(store.clone());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        OtlpReceiver {
            address,
            store,
            task,
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.store.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s until `want` spans arrived; returns what arrived.
    pub async fn wait_for(&self, want: usize) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if spans.len() >= want || started.elapsed() > Duration::from_secs(10) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An HTTP collector: Zipkin JSON v2 lists (`application/json`) and OTLP/HTTP exports
/// (`application/x-protobuf`, at `/v1/traces`), each kept apart.
pub struct ZipkinReceiver {
    pub address: SocketAddr,
    spans: Arc<Mutex<Vec<serde_json::Value>>>,
    otlp: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ZipkinReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ZipkinReceiver {
    pub async fn start() -> ZipkinReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let otlp: Arc<Mutex<Vec<Span>>> = Arc::default();
        let kept = spans.clone();
        let kept_otlp = otlp.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                let kept_otlp = kept_otlp.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            let kept_otlp = kept_otlp.clone();
                            async move {
                                let protobuf = request
                                    .headers()
                                    .get("content-type")
                                    .is_some_and(|v| v == "application/x-protobuf")
                                    && request.uri().path() == "/v1/traces";
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                if protobuf {
                                    if let Ok(export) =
                                        <ExportTraceServiceRequest as prost::Message>::decode(body)
                                    {
                                        kept_otlp.lock().unwrap().extend(flatten(export));
                                    }
                                } else if let Ok(serde_json::Value::Array(list)) =
                                    serde_json::from_slice(&body)
                                {
                                    kept.lock().unwrap().extend(list);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(202)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ZipkinReceiver {
            address,
            spans,
            otlp,
            task,
        }
    }

    pub async fn wait_for(&self, want: usize) -> Vec<serde_json::Value> {
        let started = Instant::now();
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if spans.len() >= want || started.elapsed() > Duration::from_secs(10) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to 10 s until `want` OTLP/HTTP spans arrived.
    pub async fn wait_for_otlp(&self, want: usize) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.otlp.lock().unwrap().clone();
            if spans.len() >= want || started.elapsed() > Duration::from_secs(10) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
