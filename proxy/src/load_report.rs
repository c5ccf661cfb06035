//! The load reporting service client (`cluster_manager.load_stats_config`): one
//! `envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats` stream over the configured cluster, as
//! Envoy 1.40 runs it (checked against real Envoy, `tests/load_reporting.rs`):
//!
//! - every request carries the node, with the client feature `envoy.lrs.supports_send_all_clusters`;
//! - the first request of a stream reports the clusters of the last period (none on the first stream);
//! - each `LoadStatsResponse` starts a period: its `clusters` (or every cluster with `send_all_clusters`),
//!   reported every `load_reporting_interval`, per endpoint when `report_endpoint_granularity`; a cluster new
//!   to the period starts from zero, one already reported keeps counting;
//! - when the stream ends or cannot be opened, a new one is tried 5 s later (Envoy's fixed retry delay).

mod counts;
mod report;

pub use counts::{ActiveGuard, AttemptLoad, HostLoad, Loads, Taken};

use crate::Inputs;
use crate::http::ext_authz::channel::ClusterChannel;
use crate::upstream::ClusterState;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use outrigger_config::model::LoadStatsConfig;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Envoy's `LoadStatsReporter` waits this long before opening a new stream.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// What Envoy tells the service it supports.
const SEND_ALL_CLUSTERS: &str = "envoy.lrs.supports_send_all_clusters";

/// Starts the client; it runs until the returned handle is dropped (aborted) or the process ends.
pub fn spawn(inputs: Arc<Inputs>, config: &LoadStatsConfig, mut node: Node) -> AbortOnDrop {
    if !node.client_features.iter().any(|f| f == SEND_ALL_CLUSTERS) {
        node.client_features.push(SEND_ALL_CLUSTERS.to_string());
    }
    inputs.clusters.count_load();
    let mut reporter = Reporter {
        inputs,
        cluster: config.cluster.clone(),
        node,
        period: Period::default(),
    };
    AbortOnDrop(tokio::spawn(async move {
        loop {
            match reporter.stream().await {
                Ok(()) => tracing::warn!(
                    cluster = %reporter.cluster,
                    "the load reporting service closed the StreamLoadStats stream; reconnecting in 5 s"
                ),
                Err(e) => tracing::warn!(
                    cluster = %reporter.cluster,
                    "StreamLoadStats stream to the load reporting service failed: {e}; reconnecting in 5 s"
                ),
            }
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }))
}

/// Stops the client when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the last response asked for; outlives a stream.
#[derive(Default)]
struct Period {
    /// The clusters reported, each with when it was last reported (or its period started).
    clusters: Vec<(String, Instant)>,
    send_all: bool,
    granular: bool,
    interval: Duration,
}

struct Reporter {
    inputs: Arc<Inputs>,
    cluster: String,
    node: Node,
    period: Period,
}

impl Reporter {
    async fn stream(&mut self) -> Result<(), String> {
        let (tx, rx) = mpsc::channel::<LoadStatsRequest>(4);
        let requests = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|request| (request, rx))
        });
        let first = self.report();
        let _ = tx.send(first).await;
        let channel = ClusterChannel {
            inputs: self.inputs.clone(),
            cluster: self.cluster.clone(),
            timeout: Duration::ZERO,
            streaming: true,
        };
        let mut client = LoadReportingServiceClient::new(channel);
        let mut responses = client
            .stream_load_stats(requests)
            .await
            .map_err(|s| format!("{:?} {}", s.code(), s.message()))?
            .into_inner();
        let mut next: Option<Instant> = None;
        loop {
            let tick = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = responses.message() => {
                    match message.map_err(|s| format!("{:?} {}", s.code(), s.message()))? {
                        Some(response) => {
                            self.start_period(&response);
                            next = Some(Instant::now() + self.period.interval);
                        }
                        None => return Ok(()),
                    }
                }
                () = tick => {
                    let report = self.report();
                    if tx.send(report).await.is_err() {
                        return Ok(());
                    }
                    next = Some(Instant::now() + self.period.interval);
                }
            }
        }
    }

    /// A response starts a period; a cluster not in the previous one starts counting from zero.
    fn start_period(&mut self, response: &LoadStatsResponse) {
        let now = Instant::now();
        let names: Vec<String> = if response.send_all_clusters {
            let mut all: Vec<String> = self
                .inputs
                .clusters
                .all()
                .iter()
                .map(|c| c.config.name.clone())
                .collect();
            all.sort();
            all
        } else {
            response.clusters.clone()
        };
        let previous: HashMap<String, Instant> = self.period.clusters.drain(..).collect();
        for name in names {
            let since = match previous.get(&name) {
                Some(since) => *since,
                None => {
                    if let Some(cluster) = self.inputs.clusters.get(&name) {
                        loads(&cluster).take();
                    }
                    now
                }
            };
            self.period.clusters.push((name, since));
        }
        self.period.send_all = response.send_all_clusters;
        self.period.granular = response.report_endpoint_granularity;
        self.period.interval = response
            .load_reporting_interval
            .as_ref()
            .map(|d| {
                Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                    + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
            })
            .unwrap_or_default()
            // A zero interval would report without a pause; Envoy's timer then fires on its next loop turn.
            .max(Duration::from_millis(1));
    }

    /// The next request: the node and, for each cluster of the period that exists, its counts since it was
    /// last reported.
    fn report(&mut self) -> LoadStatsRequest {
        let now = Instant::now();
        let mut cluster_stats = Vec::new();
        for (name, since) in &mut self.period.clusters {
            // Envoy skips a cluster it does not have (yet).
            let Some(cluster) = self.inputs.clusters.get(name) else {
                continue;
            };
            let taken = loads(&cluster).take();
            cluster_stats.push(report::cluster_stats(
                &cluster,
                &taken,
                self.period.granular,
                now - *since,
            ));
            *since = now;
        }
        LoadStatsRequest {
            node: Some(self.node.clone()),
            cluster_stats,
        }
    }
}

/// The cluster's counts (started by `Clusters::count_load`; a cluster replaced since starts anew here).
fn loads(cluster: &ClusterState) -> &Loads {
    cluster.load.get_or_init(|| Arc::new(Loads::default()))
}
