//! The test's own load reporting service (tonic, with the service envoy-types generates). It keeps every
//! `LoadStatsRequest` with the number of the stream it came on, and answers each stream's first request with
//! the period the test set for that stream (`Period`); the first stream ends when the test says so.

use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::{
    LoadReportingService, LoadReportingServiceServer,
};
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use futures_util::StreamExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;
use tonic::{Request, Response, Status, Streaming};

/// What the service asks for on a stream.
#[derive(Clone)]
pub struct Period {
    pub clusters: Vec<String>,
    pub send_all: bool,
    pub granular: bool,
}

/// A request as received: on which stream (1, 2, ...), when, and the gRPC metadata of its stream.
#[derive(Clone, Debug)]
pub struct Received {
    pub stream: usize,
    pub at: Instant,
    pub request: LoadStatsRequest,
    pub internal_header: Option<String>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    streams: Mutex<usize>,
    /// When each stream's response went out.
    answered: Mutex<Vec<Instant>>,
    close_first: Notify,
}

pub struct LrsServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LrsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LrsServer {
    /// Serves on a free loopback port; stream `n` (from 1) is answered with `periods[n - 1]` (the last one
    /// for later streams).
    pub async fn start(periods: Vec<Period>) -> LrsServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared: Arc<Shared> = Arc::default();
        let service = Service {
            shared: shared.clone(),
            periods: Arc::new(periods),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(LoadReportingServiceServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await;
        });
        LrsServer { port, shared, task }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// When stream `n`'s response went out, once it has.
    pub fn answered(&self, n: usize) -> Option<Instant> {
        self.shared.answered.lock().unwrap().get(n - 1).copied()
    }

    /// Ends the first stream (status OK), as a service going away does.
    pub fn close_first_stream(&self) {
        self.shared.close_first.notify_one();
    }
}

#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
    periods: Arc<Vec<Period>>,
}

type Responses =
    Pin<Box<dyn futures_util::Stream<Item = Result<LoadStatsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LoadReportingService for Service {
    type StreamLoadStatsStream = Responses;

    async fn stream_load_stats(
        &self,
        request: Request<Streaming<LoadStatsRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let internal_header = request
            .metadata()
            .get("x-envoy-internal")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut requests = request.into_inner();
        let stream = {
            let mut streams = self.shared.streams.lock().unwrap();
            *streams += 1;
            *streams
        };
        let period = self
            .periods
            .get(stream - 1)
            .or(self.periods.last())
            .cloned()
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<LoadStatsResponse, Status>>(4);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut answered = false;
            loop {
                let next = tokio::select! {
                    next = requests.next() => next,
                    () = shared.close_first.notified(), if stream == 1 => return,
                };
                let Some(Ok(request)) = next else { return };
                shared.received.lock().unwrap().push(Received {
                    stream,
                    at: Instant::now(),
                    request,
                    internal_header: internal_header.clone(),
                });
                if !answered {
                    answered = true;
                    let response = LoadStatsResponse {
                        clusters: period.clusters.clone(),
                        send_all_clusters: period.send_all,
                        load_reporting_interval: Some(PbDuration {
                            seconds: 1,
                            nanos: 0,
                        }),
                        report_endpoint_granularity: period.granular,
                    };
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                    shared.answered.lock().unwrap().push(Instant::now());
                }
            }
        });
        let responses = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
