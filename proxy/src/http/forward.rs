//! The router: pick the cluster and endpoint, rewrite, send upstream with the route's timeout and retry
//! policy, and turn failures into Envoy's local replies.

use super::Connection;
use super::headers;
use super::local_reply::{Flag, ResponseBody, reply};
use crate::metrics;
use crate::upstream::{BoxError, ClusterState, PickError, SendError, UpstreamBody};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use outrigger_config::model::route::{
    ClusterTarget, Forward, HostRewrite, RetryOn, RetryPolicy, Route,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why one attempt did not produce a response.
enum Failure {
    NoUpstream(PickError),
    Connect(String),
    Timeout,
    Reset(String),
}

/// `upgrade`: the downstream side of an allowed protocol upgrade (WebSocket), to join with the upstream's when
/// it answers 101.
pub async fn forward(
    mut parts: Parts,
    body: Incoming,
    forward: &Forward,
    route: &Route,
    connection: &Connection,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    let Some(cluster_name) = cluster_name(forward, &parts) else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, Flag::NoClusterFound, "");
    };
    let Some(cluster) = connection.inputs.clusters.get(&cluster_name).cloned() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, Flag::NoClusterFound, "");
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let path = headers::rewrite_path(
        &path_and_query,
        route,
        forward.prefix_rewrite.as_deref(),
        forward
            .regex_rewrite
            .as_ref()
            .map(|r| (&r.pattern, r.substitution.as_str())),
    );
    if let Some(host) = headers::authority(&parts) {
        let host = match &forward.host_rewrite {
            HostRewrite::Literal(literal) => literal.clone(),
            HostRewrite::Keep | HostRewrite::Auto => host,
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            parts.headers.insert(http::header::HOST, value);
        }
    }
    let labels = metrics::cluster(&cluster_name);
    let policy = forward.retry_policy.as_ref().filter(|p| p.num_retries > 0);
    // A request with a body is sent once: retrying would need the body buffered.
    let retries = if body.is_end_stream() {
        policy.map(|p| p.num_retries).unwrap_or(0)
    } else {
        0
    };
    let deadline = forward.timeout.map(|t| Instant::now() + t);
    let mut body = Some(body);
    let mut attempt = 0;
    loop {
        let upstream_body: UpstreamBody = match body.take() {
            Some(incoming) => incoming.map_err(|e| Box::new(e) as BoxError).boxed(),
            None => Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed(),
        };
        let try_once = Attempt {
            parts: &parts,
            path: &path,
            cluster: &cluster,
            connection,
            deadline,
            per_try: policy.and_then(|p| p.per_try_timeout),
            auto_host: matches!(forward.host_rewrite, HostRewrite::Auto),
        };
        let result = try_once.send(upstream_body).await;
        connection
            .inputs
            .metrics
            .cluster_rq
            .get_or_create(&labels)
            .inc();
        let retry = attempt < retries && policy.is_some_and(|p| should_retry(p, &result));
        if !retry {
            return finish(result, &cluster, connection, upgrade);
        }
        attempt += 1;
        connection
            .inputs
            .metrics
            .cluster_rq_retry
            .get_or_create(&labels)
            .inc();
        if let Some(p) = policy {
            tokio::time::sleep(back_off(p, attempt)).await;
        }
    }
}

fn cluster_name(forward: &Forward, parts: &Parts) -> Option<String> {
    match &forward.target {
        ClusterTarget::Cluster(name) => Some(name.clone()),
        ClusterTarget::ClusterHeader(header) => parts
            .headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ClusterTarget::WeightedClusters(list) => {
            let total: u64 = list.iter().map(|c| u64::from(c.weight)).sum();
            let mut point = fastrand::u64(..total.max(1));
            list.iter()
                .find(|c| {
                    let hit = point < u64::from(c.weight);
                    point = point.saturating_sub(u64::from(c.weight));
                    hit
                })
                .map(|c| c.name.clone())
        }
    }
}

/// One try at the upstream: everything it needs besides the body.
struct Attempt<'a> {
    parts: &'a Parts,
    path: &'a str,
    cluster: &'a Arc<ClusterState>,
    connection: &'a Connection,
    /// The route's overall deadline.
    deadline: Option<Instant>,
    per_try: Option<Duration>,
    /// `auto_host_rewrite`: send the DNS name of the chosen endpoint as `Host`.
    auto_host: bool,
}

impl Attempt<'_> {
    async fn send(&self, body: UpstreamBody) -> Result<Response<Incoming>, Failure> {
        let Attempt {
            parts,
            path,
            cluster,
            connection,
            deadline,
            per_try,
            auto_host,
        } = *self;
        let endpoint = cluster
            .pick(Some(connection.destination), &connection.own_addresses)
            .map_err(Failure::NoUpstream)?;
        let _active = cluster.balancer().start(endpoint.address);
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = path
            .parse()
            .map_err(|e| Failure::Reset(format!("bad path {path:?}: {e}")))?;
        *request.headers_mut() = parts.headers.clone();
        if auto_host
            && let Some(name) = cluster.hostname_of(endpoint.address)
            && let Ok(host) = HeaderValue::from_str(&name)
        {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let send = cluster.http.send(endpoint, request, parts.version);
        let limit = [
            deadline.map(|d| d.saturating_duration_since(Instant::now())),
            per_try,
        ]
        .into_iter()
        .flatten()
        .min();
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, send).await {
                Ok(result) => result,
                Err(_) => {
                    connection
                        .inputs
                        .metrics
                        .cluster_rq_timeout
                        .get_or_create(&metrics::cluster(&cluster.config.name))
                        .inc();
                    return Err(Failure::Timeout);
                }
            },
            None => send.await,
        };
        result.map_err(|e| match e {
            SendError::Connect(detail) => {
                connection
                    .inputs
                    .metrics
                    .cluster_cx_connect_fail
                    .get_or_create(&metrics::cluster(&cluster.config.name))
                    .inc();
                Failure::Connect(detail)
            }
            SendError::Reset(detail) => Failure::Reset(detail),
        })
    }
}

fn should_retry(policy: &RetryPolicy, result: &Result<Response<Incoming>, Failure>) -> bool {
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    match result {
        Err(Failure::NoUpstream(_)) => false,
        Err(Failure::Connect(_)) => {
            on(RetryOn::ConnectFailure) || on(RetryOn::FiveXx) || on(RetryOn::GatewayError)
        }
        Err(Failure::Timeout) => on(RetryOn::FiveXx) || on(RetryOn::GatewayError),
        Err(Failure::Reset(_)) => on(RetryOn::Reset) || on(RetryOn::FiveXx),
        Ok(response) => {
            let status = response.status().as_u16();
            (on(RetryOn::FiveXx) && status >= 500)
                || (on(RetryOn::GatewayError) && matches!(status, 502..=504))
                || (on(RetryOn::Retriable4xx) && status == 409)
                || (on(RetryOn::RetriableStatusCodes)
                    && policy.retriable_status_codes.contains(&status))
                || grpc_status_retriable(policy, response)
        }
    }
}

/// gRPC conditions read `grpc-status` from a trailers-only response.
fn grpc_status_retriable(policy: &RetryPolicy, response: &Response<Incoming>) -> bool {
    let Some(code) = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let condition = match code {
        "1" => RetryOn::Cancelled,
        "4" => RetryOn::DeadlineExceeded,
        "8" => RetryOn::ResourceExhausted,
        "13" => RetryOn::Internal,
        "14" => RetryOn::Unavailable,
        _ => return false,
    };
    policy.retry_on.contains(&condition)
}

/// Envoy's back-off: full jitter below base * 2^(attempt-1), capped at the maximum.
fn back_off(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .back_off_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.back_off_max);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(fastrand::u64(..millis))
}

fn finish(
    result: Result<Response<Incoming>, Failure>,
    cluster: &ClusterState,
    connection: &Connection,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let labels = metrics::with_class(metrics::cluster(&cluster.config.name), status);
            connection
                .inputs
                .metrics
                .cluster_rq_xx
                .get_or_create(&labels)
                .inc();
            if let (StatusCode::SWITCHING_PROTOCOLS, Some(downstream)) =
                (response.status(), upgrade)
            {
                let mut response = response;
                tunnel(downstream, hyper::upgrade::on(&mut response));
                let (parts, body) = response.into_parts();
                // `Connection: upgrade` and `Upgrade` are the point of a 101: keep them.
                return Response::from_parts(
                    parts,
                    body.map_err(|e| Box::new(e) as BoxError).boxed(),
                );
            }
            let (mut parts, body) = response.into_parts();
            headers::remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
        }
        Err(Failure::NoUpstream(e)) => {
            tracing::debug!(cluster = %cluster.config.name, error = %e, "no upstream for the request");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flag::NoHealthyUpstream,
                "no healthy upstream",
            )
        }
        Err(Failure::Connect(detail)) => {
            tracing::debug!(cluster = %cluster.config.name, %detail, "upstream connect failure");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flag::UpstreamConnectionFailure,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            )
        }
        Err(Failure::Timeout) => reply(
            StatusCode::GATEWAY_TIMEOUT,
            Flag::UpstreamRequestTimeout,
            "upstream request timeout",
        ),
        Err(Failure::Reset(detail)) => {
            tracing::debug!(cluster = %cluster.config.name, %detail, "upstream reset");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flag::UpstreamRemoteReset,
                "upstream connect error or disconnect/reset before headers. reset reason: remote reset",
            )
        }
    }
}

/// Joins the two upgraded connections once both sides have switched, and copies until either closes.
fn tunnel(downstream: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(downstream), Ok(upstream)) = (downstream.await, upstream.await) else {
            tracing::debug!("an upgrade did not complete on both sides");
            return;
        };
        let mut downstream = hyper_util::rt::TokioIo::new(downstream);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
    });
}
