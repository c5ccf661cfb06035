//! The admin API on Envoy's paths, served from its own thread and runtime so that a saturated data path still
//! answers `/ready` and scrapes.

use crate::Inputs;
use crate::http::local_reply::{self, ResponseBody};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Binds now (so a taken port fails at startup) and serves on a dedicated thread.
pub fn start(address: SocketAddr, inputs: Arc<Inputs>) -> std::io::Result<SocketAddr> {
    let socket = std::net::TcpListener::bind(address)?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(socket) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener failed");
                        return;
                    }
                };
                loop {
                    let stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of file descriptors and the like: pause instead of spinning on the error.
                            tracing::warn!(error = %e, "admin API: accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let inputs = inputs.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let inputs = inputs.clone();
                            async move { Ok::<_, Infallible>(handle(request, &inputs)) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(local)
}

/// The configuration in force: the snapshot (static and dynamic listeners), every cluster as configured with
/// its current endpoints (EDS, DNS), the route configurations RDS delivered, and what the control plane sent
/// (versions, update times).
fn config_dump(inputs: &Inputs) -> Result<serde_json::Value, serde_json::Error> {
    let generation = inputs.generation();
    let mut dump = serde_json::to_value(&*generation.snapshot)?;
    if let Some(object) = dump.as_object_mut() {
        let mut clusters = inputs.clusters.all();
        clusters.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        let clusters: Result<Vec<_>, _> = clusters.iter().map(|c| cluster_dump(c)).collect();
        object.insert("clusters".into(), serde_json::Value::Array(clusters?));
        let mut routes: Vec<_> = generation.routes.values().collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        object.insert("route_configs".into(), serde_json::to_value(routes)?);
        if let Some(dynamic) = &generation.dynamic {
            object.insert("dynamic_resources_state".into(), dynamic());
        }
    }
    Ok(dump)
}

/// A cluster's configuration, its endpoints as they are now (a cluster keeps the configuration it was created
/// with when only its endpoints change).
fn cluster_dump(
    cluster: &crate::upstream::ClusterState,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(&cluster.config)?;
    if !matches!(
        cluster.config.discovery,
        outrigger_config::model::cluster::Discovery::StrictDns
            | outrigger_config::model::cluster::Discovery::LogicalDns
    ) && let Some(object) = value.as_object_mut()
    {
        let endpoints: Vec<serde_json::Value> = cluster
            .targets()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "address": t.address.to_string(),
                    "weight": t.weight,
                    "priority": t.priority,
                    "healthy": t.healthy,
                })
            })
            .collect();
        object.remove("localities");
        object.insert("endpoints".into(), endpoints.into());
    }
    Ok(value)
}

fn handle(request: Request<Incoming>, inputs: &Inputs) -> Response<ResponseBody> {
    let path = request.uri().path();
    let post = request.method() == Method::POST;
    match path {
        "/ready" => {
            if inputs.drain.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            } else if inputs.health_check_failed.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "HEALTH CHECK FAILED\n")
            } else if !inputs.is_initialized() {
                // Envoy's state while it waits for the control plane's first configuration.
                text(StatusCode::SERVICE_UNAVAILABLE, "INITIALIZING\n")
            } else {
                text(StatusCode::OK, "LIVE\n")
            }
        }
        "/stats" => text(StatusCode::OK, &inputs.metrics.envoy_stats()),
        "/server_info" => json(&serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "state": if inputs.drain.is_draining() {
                "DRAINING"
            } else if !inputs.is_initialized() {
                "INITIALIZING"
            } else {
                "LIVE"
            },
            "uptime_current_epoch": format!("{}s", inputs.started.elapsed().as_secs()),
            "node": inputs.generation().snapshot.node,
        })),
        "/config_dump" => match config_dump(inputs) {
            Ok(value) => json(&value),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the configuration: {e}\n"),
            ),
        },
        "/listeners" => {
            let mut body = String::new();
            for listener in &inputs.generation().snapshot.listeners {
                let _ = writeln!(body, "{}::{}", listener.name, listener.address);
            }
            text(StatusCode::OK, &body)
        }
        "/clusters" => {
            let mut body = String::new();
            let mut clusters = inputs.clusters.all();
            clusters.sort_by(|a, b| a.config.name.cmp(&b.config.name));
            for cluster in clusters {
                for target in cluster.targets().iter() {
                    let _ = writeln!(
                        body,
                        "{}::{}::weight::{}",
                        cluster.config.name, target.address, target.weight
                    );
                    // Envoy's flags: `healthy`, or `/failed_active_hc`, `/failed_outlier_check`, ...
                    let flags = cluster.health_flags(target.address);
                    let _ = writeln!(
                        body,
                        "{}::{}::health_flags::{flags}",
                        cluster.config.name, target.address
                    );
                }
                // ORIGINAL_DST: the hosts made for the destinations it connects to, as Envoy lists them.
                for address in cluster.original_destinations() {
                    let name = &cluster.config.name;
                    let _ = writeln!(body, "{name}::{address}::weight::1");
                    let _ = writeln!(body, "{name}::{address}::health_flags::healthy");
                }
            }
            text(StatusCode::OK, &body)
        }
        "/stats/prometheus" => {
            let mut response = text(StatusCode::OK, &inputs.metrics.encode());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/drain_listeners" | "/quitquitquit" | "/healthcheck/fail" | "/healthcheck/ok"
        | "/logging" | "/reopen_logs"
            if !post =>
        {
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "This endpoint requires POST\n",
            )
        }
        "/healthcheck/fail" | "/healthcheck/ok" => {
            inputs
                .health_check_failed
                .store(path == "/healthcheck/fail", Ordering::Relaxed);
            text(StatusCode::OK, "OK\n")
        }
        "/logging" => {
            let query = request.uri().query().unwrap_or("");
            let level = query.split('&').find_map(|p| p.strip_prefix("level="));
            match (level, inputs.log_control.get()) {
                (None, _) => text(
                    StatusCode::BAD_REQUEST,
                    "usage: POST /logging?level=trace|debug|info|warn|error\n",
                ),
                (Some(_), None) => text(
                    StatusCode::NOT_IMPLEMENTED,
                    "this process has no adjustable logger\n",
                ),
                (Some(level), Some(set)) => match set(level) {
                    Ok(()) => text(StatusCode::OK, &format!("log level: {level}\n")),
                    Err(e) => text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
                },
            }
        }
        // Log rotation: every access log file is closed and opened again by its path.
        "/reopen_logs" => {
            crate::access_log::writer::reopen_all();
            text(StatusCode::OK, "OK\n")
        }
        "/drain_listeners" | "/quitquitquit" => {
            inputs.drain.start();
            text(StatusCode::OK, "OK\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /ready, /server_info, /config_dump, /listeners, /clusters, /stats, /stats/prometheus\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut response = Response::new(local_reply::text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn json(value: &serde_json::Value) -> Response<ResponseBody> {
    let body = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut response = Response::new(local_reply::text(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
