//! A test origin server: answers every request with a JSON description of what it received, so tests can see
//! what the proxy forwarded. `/slow/<ms>` waits first; `/status/<code>` answers with that status; a gRPC
//! request (`content-type: application/grpc`) gets its description followed by `grpc-status: 0` trailers.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Backend {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// Dropping it stops the server as a killed process would: the listening socket and every open connection
/// are closed (requests in flight get no response).
impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Serves HTTP/1.1 and h2 (prior knowledge) on a free loopback port.
    pub async fn start(name: &'static str) -> Backend {
        Self::serve(name, TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// The same on 127.0.0.1:`port` (a backend started again where a stopped one was: the stopped one's
    /// socket may take a moment to close, so binding is tried for up to 5 s).
    pub async fn start_at(name: &'static str, port: u16) -> Backend {
        let started = std::time::Instant::now();
        loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(listener) => return Self::serve(name, listener),
                Err(e) => assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "cannot bind 127.0.0.1:{port} again: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn serve(name: &'static str, listener: TcpListener) -> Backend {
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // The connections belong to the accept task: aborting it aborts them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    Some(_) = connections.join_next() => continue,
                };
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| answer(name, request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { address, task }
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(name: &str, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut request = request;
    if request.headers().get("upgrade").is_some() {
        return Ok(upgrade_echo(&mut request));
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse().ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    let description = serde_json::json!({
        "backend": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "authority": parts.uri.authority().map(|a| a.as_str()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body.len(),
    });
    let grpc = parts
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let full = Full::new(Bytes::from(description.to_string()));
    let body: Body = if grpc {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "done".parse().unwrap());
        full.with_trailers(async move { Some(Ok(trailers)) })
            .boxed()
    } else {
        full.boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status.unwrap_or(StatusCode::OK);
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
        .headers_mut()
        .insert("x-backend", name.parse().unwrap());
    Ok(response)
}

/// Switches protocols, then echoes raw bytes on the upgraded connection.
fn upgrade_echo(request: &mut Request<Incoming>) -> Response<Body> {
    let kind = request.headers()["upgrade"].clone();
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let (mut read, mut write) = tokio::io::split(&mut io);
        let _ = tokio::io::copy(&mut read, &mut write).await;
    });
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response
        .headers_mut()
        .insert("connection", "upgrade".parse().unwrap());
    response.headers_mut().insert("upgrade", kind);
    response
}
