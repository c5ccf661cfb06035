//! One check of one host: HTTP (h1 or h2), TCP (send, then expect payloads) or gRPC (`grpc.health.v1.Health/Check`).
//! A probe keeps its connection between checks when `reuse_connection` allows it; the caller bounds each check by
//! the health check's `timeout` and drops the connection when it fires.

use crate::io::Stream;
use crate::tls::Alpn;
use crate::upstream::UpstreamTls;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrigger_config::model::core::AppendAction;
use outrigger_config::model::health_check::{Checker, GrpcCheck, HealthCheck, HttpCheck};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass {
        /// The answer carried `x-envoy-degraded`.
        degraded: bool,
    },
    /// The host answered wrongly (a status outside `expected_statuses`, a gRPC answer other than SERVING).
    /// Not retriable: unhealthy at once, whatever `unhealthy_threshold` says.
    Active { retriable: bool },
    /// No answer: a connection failure, a reset, a closed connection (a timeout is counted the same way).
    Network,
}

/// The address and names one host's checks use.
#[derive(Clone)]
pub struct Destination {
    pub address: SocketAddr,
    /// `Host` / `:authority`.
    pub authority: String,
    pub tls: Option<UpstreamTls>,
}

enum Connection {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
    Tcp(Box<Stream>),
}

pub struct Probe {
    config: Arc<HealthCheck>,
    destination: Destination,
    connection: Option<Connection>,
}

impl Probe {
    pub fn new(config: Arc<HealthCheck>, destination: Destination) -> Self {
        Self {
            config,
            destination,
            connection: None,
        }
    }

    /// The check timed out: its connection is not reused.
    pub fn abandon(&mut self) {
        self.connection = None;
    }

    pub async fn check(&mut self) -> Verdict {
        let config = self.config.clone();
        let (verdict, keep) = match &config.checker {
            Checker::Http(http) => self.http(http).await,
            Checker::Grpc(grpc) => self.grpc(grpc).await,
            Checker::Tcp(tcp) => self.tcp(&tcp.send, &tcp.receive).await,
        };
        if !keep || !config.reuse_connection {
            self.connection = None;
        }
        verdict
    }

    async fn open(&self, alpn: Alpn) -> Result<Stream, ()> {
        let tcp = tokio::net::TcpStream::connect(self.destination.address)
            .await
            .map_err(|_| ())?;
        let _ = tcp.set_nodelay(true);
        match &self.destination.tls {
            None => Ok(Stream::Plain(tcp)),
            // The check's own timeout bounds the handshake (the caller's); this one only has to be longer.
            Some(tls) => tls
                .connect(tcp, alpn, self.config.timeout + Duration::from_secs(1))
                .await
                .map(Stream::from)
                .map_err(|_| ()),
        }
    }

    async fn h1(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, ()> {
        if !matches!(&self.connection, Some(Connection::Http1(s)) if !s.is_closed()) {
            let stream = self.open(Alpn::Http1).await?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ())?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.connection = Some(Connection::Http1(sender));
        }
        match &mut self.connection {
            Some(Connection::Http1(sender)) => {
                sender.ready().await.map_err(|_| ())?;
                Ok(sender)
            }
            _ => Err(()),
        }
    }

    async fn h2(&mut self) -> Result<&mut http2::SendRequest<Full<Bytes>>, ()> {
        if !matches!(&self.connection, Some(Connection::Http2(s)) if !s.is_closed()) {
            let stream = self.open(Alpn::Http2).await?;
            let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|_| ())?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.connection = Some(Connection::Http2(sender));
        }
        match &mut self.connection {
            Some(Connection::Http2(sender)) => {
                sender.ready().await.map_err(|_| ())?;
                Ok(sender)
            }
            _ => Err(()),
        }
    }

    /// The verdict, and whether the connection may serve the next check.
    async fn http(&mut self, check: &HttpCheck) -> (Verdict, bool) {
        let request = http_request(check, &self.destination.authority);
        let response = if check.http2 {
            match self.h2().await {
                Ok(sender) => sender.send_request(request).await,
                Err(()) => return (Verdict::Network, false),
            }
        } else {
            match self.h1().await {
                Ok(sender) => sender.send_request(request).await,
                Err(()) => return (Verdict::Network, false),
            }
        };
        let Ok(response) = response else {
            return (Verdict::Network, false);
        };
        let status = response.status().as_u16();
        let degraded = response.headers().contains_key("x-envoy-degraded");
        let close = response
            .headers()
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // The whole response is read before the verdict, as Envoy does.
        if response.into_body().collect().await.is_err() {
            return (Verdict::Network, false);
        }
        let verdict = if check.expected(status) {
            Verdict::Pass { degraded }
        } else {
            Verdict::Active {
                retriable: check.retriable(status),
            }
        };
        (verdict, !close)
    }

    async fn grpc(&mut self, check: &GrpcCheck) -> (Verdict, bool) {
        let request = grpc_request(check, &self.destination.authority);
        let response = match self.h2().await {
            Ok(sender) => sender.send_request(request).await,
            Err(()) => return (Verdict::Network, false),
        };
        let Ok(response) = response else {
            return (Verdict::Network, false);
        };
        let fail = Verdict::Active { retriable: false };
        let grpc_content = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if response.status() != http::StatusCode::OK || !grpc_content {
            return (fail, true);
        }
        let status_in_headers = response.headers().get("grpc-status").cloned();
        let Ok(body) = response.into_body().collect().await else {
            return (Verdict::Network, false);
        };
        let grpc_status = body
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
            .or(status_in_headers);
        if grpc_status.as_ref().and_then(|v| v.to_str().ok()) != Some("0") {
            return (fail, true);
        }
        // SERVING is 1.
        if serving_status(body.to_bytes()) == Some(1) {
            (Verdict::Pass { degraded: false }, true)
        } else {
            (fail, true)
        }
    }

    async fn tcp(&mut self, send: &[u8], receive: &[Vec<u8>]) -> (Verdict, bool) {
        if !matches!(self.connection, Some(Connection::Tcp(_))) {
            match self.open(Alpn::Configured).await {
                Ok(stream) => self.connection = Some(Connection::Tcp(Box::new(stream))),
                Err(()) => return (Verdict::Network, false),
            }
        }
        let Some(Connection::Tcp(stream)) = &mut self.connection else {
            return (Verdict::Network, false);
        };
        if !send.is_empty() && stream.write_all(send).await.is_err() {
            return (Verdict::Network, false);
        }
        if receive.is_empty() {
            return (Verdict::Pass { degraded: false }, true);
        }
        // Read until every expected payload has shown up in order; a close before that is a network failure,
        // and a wrong answer waits for the timeout, as in Envoy.
        let mut buffer = BytesMut::new();
        loop {
            match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return (Verdict::Network, false),
                Ok(_) => {
                    if contains_in_order(&buffer, receive) {
                        return (Verdict::Pass { degraded: false }, true);
                    }
                }
            }
        }
    }
}

fn http_request(check: &HttpCheck, authority: &str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() =
        http::Method::from_bytes(check.method.as_bytes()).unwrap_or(http::Method::GET);
    let uri = if check.http2 {
        format!("http://{authority}{}", check.path)
    } else {
        check.path.clone()
    };
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    if let Ok(host) = HeaderValue::from_str(authority)
        && !check.http2
    {
        headers.insert(http::header::HOST, host);
    }
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Envoy/HC"),
    );
    for name in &check.request_headers_to_remove {
        headers.remove(name.as_str());
    }
    for header in &check.request_headers_to_add {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) else {
            continue;
        };
        if header.value.is_empty() && !header.keep_empty_value {
            continue;
        }
        match header.append_action {
            AppendAction::AppendIfExistsOrAdd => {
                headers.append(name, value);
            }
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => {
                headers.insert(name, value);
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
        }
    }
    request
}

fn grpc_request(check: &GrpcCheck, authority: &str) -> Request<Full<Bytes>> {
    // HealthCheckRequest { string service = 1; }, in a gRPC frame (not compressed, 4-byte length).
    let mut message = Vec::new();
    if !check.service_name.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, check.service_name.len() as u64);
        message.extend_from_slice(check.service_name.as_bytes());
    }
    let mut frame = vec![0_u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(&message);
    let mut request = Request::new(Full::new(Bytes::from(frame)));
    *request.method_mut() = http::Method::POST;
    if let Ok(uri) = format!("http://{authority}/grpc.health.v1.Health/Check").parse() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Envoy/HC"),
    );
    request
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(buf: &mut Bytes) -> Option<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `HealthCheckResponse.status` (field 1) of the one framed message in `body`; a message without it is UNKNOWN (0).
fn serving_status(mut body: Bytes) -> Option<u64> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = usize::try_from(body.get_u32()).ok()?;
    let mut message = body.split_to(len.min(body.len()));
    let mut status = 0;
    while message.has_remaining() {
        let key = get_varint(&mut message)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut message)?,
            (_, 0) => {
                get_varint(&mut message)?;
            }
            (_, 2) => {
                let n = usize::try_from(get_varint(&mut message)?).ok()?;
                if n > message.remaining() {
                    return None;
                }
                message.advance(n);
            }
            (_, 1) if message.remaining() >= 8 => message.advance(8),
            (_, 5) if message.remaining() >= 4 => message.advance(4),
            _ => return None,
        }
    }
    Some(status)
}

/// Envoy's TCP matcher: each expected payload appears in what was read, each after the previous one.
fn contains_in_order(read: &[u8], expected: &[Vec<u8>]) -> bool {
    let mut from = 0;
    for part in expected {
        let Some(found) = find(&read[from.min(read.len())..], part) else {
            return false;
        };
        from += found + part.len();
    }
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_payloads_match_in_order() {
        let expected = vec![b"AB".to_vec(), b"CD".to_vec()];
        assert!(contains_in_order(b"xxABzzCD", &expected));
        assert!(!contains_in_order(b"CDAB", &expected));
        assert!(!contains_in_order(b"AB", &expected));
    }

    #[test]
    fn grpc_serving_status_is_read_from_the_frame() {
        let frame = |m: &[u8]| {
            let mut f = vec![0, 0, 0, 0, u8::try_from(m.len()).unwrap()];
            f.extend_from_slice(m);
            Bytes::from(f)
        };
        assert_eq!(serving_status(frame(&[0x08, 0x01])), Some(1));
        assert_eq!(serving_status(frame(&[0x08, 0x02])), Some(2));
        assert_eq!(serving_status(frame(&[])), Some(0));
        assert_eq!(serving_status(Bytes::from_static(b"\x01\0\0\0\0")), None);
    }
}
