//! A bounded request loop for the fault tests: a few workers GET one URL until stopped (or a cap of requests
//! or time is reached), and the tally says what was sent, what succeeded (200) and how the rest failed.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Never more requests than this in one loop, whatever happens.
const MAX_REQUESTS: u64 = 20_000;
/// Never longer than this.
const MAX_TIME: Duration = Duration::from_secs(90);
/// One request's limit: past it, it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a loop saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub succeeded: u64,
    /// Each failure: the status and body, or the client's error.
    pub failed: Vec<String>,
    /// Successful replies by their `x-backend` header.
    pub by_backend: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.succeeded += other.succeeded;
        self.failed.extend(other.failed);
        for (backend, n) in other.by_backend {
            *self.by_backend.entry(backend).or_default() += n;
        }
    }

    /// "sent N, succeeded N, failed N", as tests/README.md reports them.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, succeeded {}, failed {}",
            self.sent,
            self.succeeded,
            self.failed.len()
        )
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// `workers` loops sending GET `url` one after the other on `runtime`; with `fresh_connections` every
    /// request opens its own connection, else each worker keeps its connection alive.
    pub fn start(runtime: &Runtime, url: &str, workers: usize, fresh_connections: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let workers = (0..workers)
            .map(|_| {
                let (stop, sent, url) = (stop.clone(), sent.clone(), url.to_string());
                runtime.spawn(worker(url, fresh_connections, stop, sent))
            })
            .collect();
        Load {
            stop,
            sent,
            workers,
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Blocks until `count` requests were sent in all (at most 30 s).
    pub fn wait_for_sent(&self, count: u64) {
        let started = Instant::now();
        while self.sent() < count {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the load sent {} requests in 30 s, not {count}",
                self.sent()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the workers once their requests in flight are answered; what they saw.
    pub fn stop(self, runtime: &Runtime) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for worker in self.workers {
            tally.merge(runtime.block_on(worker).unwrap());
        }
        tally
    }
}

async fn worker(url: String, fresh: bool, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> Tally {
    let mut builder = Client::builder(TokioExecutor::new());
    if fresh {
        builder.pool_max_idle_per_host(0);
    }
    let client = builder.build_http::<Empty<Bytes>>();
    let mut tally = Tally::default();
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst)
        && sent.fetch_add(1, Ordering::SeqCst) < MAX_REQUESTS
        && started.elapsed() < MAX_TIME
    {
        tally.sent += 1;
        let request = http::Request::get(&url).body(Empty::new()).unwrap();
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = response.status().as_u16();
            let backend = response
                .headers()
                .get("x-backend")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_bytes();
            Ok::<_, String>((status, backend, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok((200, backend, _))) => {
                tally.succeeded += 1;
                *tally.by_backend.entry(backend).or_default() += 1;
            }
            Ok(Ok((status, _, body))) => tally
                .failed
                .push(format!("{status} {}", String::from_utf8_lossy(&body))),
            Ok(Err(e)) => tally.failed.push(e),
            Err(_) => tally
                .failed
                .push(format!("no answer in {REQUEST_TIMEOUT:?}")),
        }
    }
    tally
}
