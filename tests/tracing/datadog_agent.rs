//! A fake Datadog agent: `POST /v0.4/traces` with a msgpack body (an array of trace chunks, each an array of
//! span maps), decoded with rmpv and kept for assertions; it answers with the sampling rates it was given, as
//! the agent does. Stops when dropped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as the agent received it.
#[derive(Clone, Debug, PartialEq)]
pub struct DdSpan {
    pub service: String,
    pub name: String,
    pub resource: String,
    pub kind: String,
    pub trace_id: u64,
    pub span_id: u64,
    pub parent_id: u64,
    pub start: u64,
    pub duration: u64,
    pub error: i64,
    pub meta: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    /// The index of its chunk in its upload, and of the upload.
    pub chunk: (usize, usize),
}

/// One upload: its method, path and headers.
#[derive(Clone, Debug)]
pub struct Upload {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub chunks: usize,
}

#[derive(Default)]
struct Received {
    uploads: Vec<Upload>,
    spans: Vec<DdSpan>,
}

pub struct Agent {
    pub address: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Agent {
    /// `answer` is the JSON body of every answer (`{"rate_by_service": {...}}`).
    pub async fn start(answer: &'static str) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received: Arc<Mutex<Received>> = Arc::default();
        let kept = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                record(&kept, &parts, &body);
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from_static(answer.as_bytes())))
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
        Agent {
            address,
            received,
            task,
        }
    }

    /// Waits (up to 10 s) until `want` spans arrived; returns them all.
    pub async fn wait_for(&self, want: usize) -> Vec<DdSpan> {
        let started = Instant::now();
        loop {
            let spans = self.received.lock().unwrap().spans.clone();
            if spans.len() >= want || started.elapsed() > Duration::from_secs(10) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.received.lock().unwrap().uploads.clone()
    }
}

fn record(kept: &Mutex<Received>, parts: &http::request::Parts, body: &[u8]) {
    let mut received = kept.lock().unwrap();
    let upload_index = received.uploads.len();
    let value = rmpv::decode::read_value(&mut &body[..])
        .unwrap_or_else(|e| panic!("the agent got a body that is not msgpack: {e}"));
    let chunks = value.as_array().expect("an array of trace chunks").clone();
    for (c, chunk) in chunks.iter().enumerate() {
        for span in chunk.as_array().expect("a chunk is an array of spans") {
            received.spans.push(dd_span(span, (upload_index, c)));
        }
    }
    received.uploads.push(Upload {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        chunks: chunks.len(),
    });
}

fn dd_span(v: &rmpv::Value, chunk: (usize, usize)) -> DdSpan {
    let map: BTreeMap<String, &rmpv::Value> = v
        .as_map()
        .expect("a span is a map")
        .iter()
        .map(|(k, v)| (k.as_str().expect("string keys").to_string(), v))
        .collect();
    let text = |k: &str| {
        map.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let number = |k: &str| map.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let strings = |k: &str| -> BTreeMap<String, String> {
        map.get(k)
            .and_then(|v| v.as_map())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap_or("").to_string(),
                            v.as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    DdSpan {
        service: text("service"),
        name: text("name"),
        resource: text("resource"),
        kind: text("type"),
        trace_id: number("trace_id"),
        span_id: number("span_id"),
        parent_id: number("parent_id"),
        start: number("start"),
        duration: number("duration"),
        error: map.get("error").and_then(|v| v.as_i64()).unwrap_or(-1),
        meta: strings("meta"),
        metrics: map
            .get("metrics")
            .and_then(|v| v.as_map())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap_or("").to_string(),
                            v.as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        chunk,
    }
}
