//! HTTP load: `connections` keep-alive connections, each carrying `streams` workers (1 for HTTP/1.1; h2c and gRPC
//! multiplex). A worker sends its next request when the previous one is answered (closed loop) or at its slot of
//! a fixed schedule (open loop).
//!
//! Open-loop latency is corrected for coordinated omission: when a request's intended send time comes while
//! the worker is still waiting for the previous answer, its latency runs from the intended time, so the
//! queueing a slow target causes is counted. When the worker was idle at the intended time, latency runs from
//! the actual send, so the runtime timer's 1 ms granularity is not charged to the target.

use super::{Errors, Latency, Window, histogram, micros};
use crate::{GRPC_PATH, RESPONSE_BYTES, grpc};
use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The gRPC request message: opaque bytes the backend echoes.
const GRPC_MESSAGE: &[u8] = &[0x2a; 64];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1, GET /, 1 KiB response.
    H1,
    /// h2c with prior knowledge, GET /, 1 KiB response.
    H2,
    /// gRPC unary over h2c: a 64-byte message echoed, grpc-status 0 checked.
    Grpc,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub target: SocketAddr,
    pub protocol: Protocol,
    pub connections: usize,
    pub streams: usize,
    /// Requests per second in total; `None` is the closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Per request (and per connection attempt); a request that takes longer is an error.
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub protocol: Protocol,
    pub target: String,
    pub connections: usize,
    pub streams: usize,
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    /// Answered requests including the warm-up: what the target's CPU time during the whole run served.
    pub requests_all: u64,
    pub errors: u64,
    pub rps: f64,
    pub latency: Latency,
    pub error_samples: Vec<String>,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn connect(target: SocketAddr, protocol: Protocol) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target)
            .await
            .with_context(|| format!("connect {target}"))?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        Ok(match protocol {
            Protocol::H1 => {
                let (sender, connection) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Sender::H1(sender)
            }
            Protocol::H2 | Protocol::Grpc => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Sender::H2(sender)
            }
        })
    }

    /// Another worker on the same connection (h2 only; HTTP/1.1 has one worker per connection).
    fn share(&self) -> Option<Self> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }

    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<http::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await
            }
        }
    }
}

fn request(options: &Options) -> anyhow::Result<Request<Full<Bytes>>> {
    let authority = options.target.to_string();
    let request = match options.protocol {
        Protocol::H1 => Request::get("/")
            .header(header::HOST, authority)
            .body(Full::new(Bytes::new()))?,
        Protocol::H2 => {
            Request::get(format!("http://{authority}/")).body(Full::new(Bytes::new()))?
        }
        Protocol::Grpc => Request::builder()
            .method(Method::POST)
            .uri(format!("http://{authority}{GRPC_PATH}"))
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .body(Full::new(grpc::frame(GRPC_MESSAGE)))?,
    };
    Ok(request)
}

/// One request and its whole answer, checked.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
    protocol: Protocol,
) -> Result<(), String> {
    let response = sender
        .send(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let header_status = response.headers().get("grpc-status").cloned();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("status {status}"));
    }
    if protocol == Protocol::Grpc {
        let grpc_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .or(header_status.as_ref())
            .cloned();
        if grpc_status != Some(HeaderValue::from_static("0")) {
            return Err(format!("grpc-status {grpc_status:?}"));
        }
        let body = collected.to_bytes();
        return match grpc::unframe(&body) {
            Some(message) if message == GRPC_MESSAGE => Ok(()),
            _ => Err(format!(
                "gRPC answer of {} bytes is not the echo",
                body.len()
            )),
        };
    }
    let length = collected.to_bytes().len();
    if length != RESPONSE_BYTES {
        return Err(format!("body of {length} bytes, expected {RESPONSE_BYTES}"));
    }
    Ok(())
}

struct WorkerResult {
    histogram: hdrhistogram::Histogram<u64>,
    requests: u64,
    requests_all: u64,
    errors: Errors,
}

struct Worker {
    index: u64,
    workers: u64,
    options: Arc<Options>,
    template: Request<Full<Bytes>>,
    window: Window,
}

impl Worker {
    fn copy_request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(self.template.body().clone());
        *request.method_mut() = self.template.method().clone();
        *request.uri_mut() = self.template.uri().clone();
        *request.headers_mut() = self.template.headers().clone();
        request
    }

    /// The intended send time of this worker's `k`-th request on the open-loop schedule.
    fn intended(&self, rate: f64, k: u64) -> Instant {
        let slot = (k * self.workers + self.index) as f64;
        self.window.start + Duration::from_secs_f64(slot / rate)
    }

    async fn run(self, mut sender: Option<Sender>) -> anyhow::Result<WorkerResult> {
        let mut result = WorkerResult {
            histogram: histogram()?,
            requests: 0,
            requests_all: 0,
            errors: Errors::default(),
        };
        let options = self.options.clone();
        let mut idle_since = self.window.start;
        for k in 0u64.. {
            let intended = match options.rate {
                Some(rate) => {
                    let at = self.intended(rate, k);
                    if at >= self.window.end {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                    Some(at)
                }
                None if Instant::now() >= self.window.end => break,
                None => None,
            };
            let sent = Instant::now();
            let reference = match intended {
                Some(at) if idle_since > at => at,
                _ => sent,
            };
            let counted = |done: Instant| match intended {
                Some(at) => self.window.measures(at),
                None => self.window.measures(done),
            };
            let outcome = async {
                if sender.is_none() {
                    let connect = Sender::connect(options.target, options.protocol);
                    sender = Some(
                        tokio::time::timeout(options.timeout, connect)
                            .await
                            .map_err(|_| "connect: timed out".to_string())?
                            .map_err(|e| format!("{e:#}"))?,
                    );
                }
                let Some(s) = sender.as_mut() else {
                    return Err("no connection".to_string());
                };
                let exchanged = exchange(s, self.copy_request(), options.protocol);
                tokio::time::timeout(options.timeout, exchanged)
                    .await
                    .map_err(|_| "request: timed out".to_string())?
            }
            .await;
            let done = Instant::now();
            idle_since = done;
            if outcome.is_ok() {
                result.requests_all += 1;
            }
            match outcome {
                Ok(()) if counted(done) => {
                    result.requests += 1;
                    result.histogram.saturating_record(micros(done - reference));
                }
                Ok(()) => {}
                Err(message) => {
                    if counted(done) {
                        result.errors.add(message);
                    }
                    // A fresh connection for the next request; pause so a refusing target is not spun on.
                    sender = None;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        Ok(result)
    }
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.connections > 0 && options.streams > 0,
        "connections and streams must be at least 1"
    );
    anyhow::ensure!(
        options.protocol != Protocol::H1 || options.streams == 1,
        "HTTP/1.1 carries one stream per connection"
    );
    if let Some(rate) = options.rate {
        anyhow::ensure!(rate > 0.0 && rate.is_finite(), "the rate must be positive");
    }
    let mut connections = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let connect = Sender::connect(options.target, options.protocol);
        let sender = tokio::time::timeout(options.timeout, connect)
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {} timed out", options.target))??;
        connections.push(sender);
    }
    let options = Arc::new(options);
    let window = Window::new(options.warmup, options.duration);
    let workers = (options.connections * options.streams) as u64;
    let mut tasks = Vec::new();
    let mut index = 0;
    for sender in connections {
        for _ in 1..options.streams {
            let worker = Worker {
                index,
                workers,
                options: options.clone(),
                template: request(&options)?,
                window,
            };
            tasks.push(tokio::spawn(worker.run(sender.share())));
            index += 1;
        }
        let worker = Worker {
            index,
            workers,
            options: options.clone(),
            template: request(&options)?,
            window,
        };
        tasks.push(tokio::spawn(worker.run(Some(sender))));
        index += 1;
    }
    let mut all = histogram()?;
    let mut requests = 0;
    let mut requests_all = 0;
    let mut errors = Errors::default();
    for task in tasks {
        let result = task.await??;
        all.add(&result.histogram)?;
        requests += result.requests;
        requests_all += result.requests_all;
        errors.merge(result.errors);
    }
    let seconds = options.duration.as_secs_f64();
    Ok(Report {
        mode: if options.rate.is_some() {
            "open-loop"
        } else {
            "closed-loop"
        },
        protocol: options.protocol,
        target: options.target.to_string(),
        connections: options.connections,
        streams: options.streams,
        rate: options.rate,
        duration_s: seconds,
        requests,
        requests_all,
        errors: errors.count,
        rps: requests as f64 / seconds,
        latency: Latency::of(&all),
        error_samples: errors.samples,
    })
}
