//! Raw connections for the differential test: bytes sent on a schedule, everything read back with the time the
//! connection closed; HTTP/1 responses parsed from the bytes; a few h2 probes; a stalling upstream.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout_at};

#[derive(Clone, Debug)]
pub enum Step {
    Send(Vec<u8>),
    Wait(Duration),
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The test backend's description of what it received, if this came from it.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Debug)]
pub struct Transcript {
    pub responses: Vec<Response>,
    /// Bytes after the last complete response (a body cut short).
    pub rest: String,
    pub closed: bool,
}

/// What must agree between the proxies: per response the status, a local reply's body or the path the
/// upstream saw, `Connection` and `Content-Type`; a body cut short; whether the connection was closed.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    responses: Vec<(u16, String, Option<String>, Option<String>)>,
    rest: String,
    closed: bool,
}

impl Outcome {
    /// The same outcome, with whether the connection closed left out unless `compare` says otherwise.
    pub fn closed_if(mut self, compare: bool) -> Self {
        self.closed &= compare;
        self
    }
}

impl Transcript {
    pub fn outcome(&self) -> Outcome {
        Outcome {
            responses: self
                .responses
                .iter()
                .map(|r| {
                    let body = match r.json() {
                        Some(seen) => {
                            format!("upstream got {} {}", seen["path"], seen["body_bytes"])
                        }
                        None => r.body.clone(),
                    };
                    let connection = r.header("connection").map(str::to_string);
                    let content_type = r.header("content-type").map(str::to_string);
                    (r.status, body, connection, content_type)
                })
                .collect(),
            rest: self.rest.clone(),
            closed: self.closed,
        }
    }

    pub fn summary(&self) -> String {
        format!("{:?}", self.outcome())
    }

    /// The status and the path the upstream received, of the first response.
    pub fn first_path(&self) -> (u16, Option<String>) {
        match self.responses.first() {
            Some(r) => (
                r.status,
                r.json()
                    .and_then(|s| s["path"].as_str().map(str::to_string)),
            ),
            None => (0, None),
        }
    }
}

/// Connects to `port`, plays `steps` while reading, and stops reading at EOF, a reset, or after `watch`
/// (counted from the end of the steps). The write side stays open until then.
pub async fn exchange(port: u16, steps: &[Step], watch: Duration) -> Transcript {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let planned: Duration = steps
        .iter()
        .map(|s| match s {
            Step::Wait(d) => *d,
            Step::Send(_) => Duration::ZERO,
        })
        .sum();
    let steps = steps.to_vec();
    let writer = tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    let _ = write.write_all(&bytes).await;
                }
                Step::Wait(d) => sleep(d).await,
            }
        }
        std::future::pending::<()>().await;
        drop(write);
    });
    let deadline = Instant::now() + planned + watch;
    let mut bytes = Vec::new();
    let mut closed = false;
    loop {
        match timeout_at(deadline, read.read_buf(&mut bytes)).await {
            Err(_) => break,
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {}
        }
    }
    writer.abort();
    parse(&bytes, closed)
}

fn parse(mut bytes: &[u8], closed: bool) -> Transcript {
    let mut responses = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        if bytes.len() < body_start + length {
            break;
        }
        let body = String::from_utf8_lossy(&bytes[body_start..body_start + length]).to_string();
        responses.push(Response {
            status,
            headers,
            body,
        });
        bytes = &bytes[body_start + length..];
    }
    // A response whose body was cut short: keep its head's status line out, the body bytes in.
    let rest = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => {
            let status = String::from_utf8_lossy(&bytes[..end])
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string();
            format!(
                "{status} cut short: {}",
                String::from_utf8_lossy(&bytes[end + 4..])
            )
        }
        None => String::from_utf8_lossy(bytes).to_string(),
    };
    Transcript {
        responses,
        rest,
        closed,
    }
}

/// An upstream that answers every request with the head and half of a 6-byte body, then stalls for 2.5 s.
pub async fn trickle_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc")
                    .await;
                sleep(Duration::from_millis(2500)).await;
                let _ = stream.write_all(b"def").await;
            });
        }
    });
    address
}

/// An h2 GET of `path` with the four pseudo-headers and `extra` headers: its status and body, or that the
/// stream failed.
pub async fn h2_get(port: u16, path: &str, extra: usize) -> String {
    let headers = (0..extra).map(|i| (format!("x-extra-{i}"), "1".to_string()));
    h2_get_with(port, path, headers.collect()).await
}

/// An h2 GET of `path` with `headers`: its status and body, or that the stream failed.
pub async fn h2_get_with(port: u16, path: &str, headers: Vec<(String, String)>) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let mut request = http::Request::get(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let result = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await;
    let answer = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().collect().await;
            let body = body.map(|b| b.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&body).to_string();
            // The backend's own answer is described by the path it received; a local reply by its body.
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(seen) => format!("status {status}, upstream got {}", seen["path"]),
                Err(_) => format!("status {status}, body {text:?}"),
            }
        }
        Err(_) => "stream failed".to_string(),
    };
    driver.abort();
    answer
}

/// One h2 request, then nothing: whether the proxy ends the connection (GOAWAY, then close) within 5 s.
pub async fn h2_idle_close(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let request = http::Request::get(format!("http://127.0.0.1:{port}/h2"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let status = match sender.send_request(request).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(5), driver).await {
        Ok(_) if started.elapsed() >= Duration::from_millis(900) => {
            format!("status {status}, closed after the idle timeout")
        }
        Ok(_) => format!("status {status}, closed too early"),
        Err(_) => format!("status {status}, still open after 5 s"),
    }
}

/// An h2 request body: the pieces the test sends, then its end when the sender is dropped.
struct Upload(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for Upload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|p| Ok(hyper::body::Frame::data(p))))
    }
}

/// An h2 POST of `path` whose body is `pieces` sent `gap` apart, then ended (`finish`) or left open: its
/// status and body, or that the stream failed, within `watch`.
pub async fn h2_upload(
    port: u16,
    path: &str,
    pieces: &[&'static str],
    gap: Duration,
    finish: bool,
    watch: Duration,
) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let (body, receiver) = tokio::sync::mpsc::unbounded_channel();
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .body(Upload(receiver))
        .unwrap();
    let pieces: Vec<&'static str> = pieces.to_vec();
    let feeder = tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                sleep(gap).await;
            }
            let _ = body.send(Bytes::from_static(piece.as_bytes()));
        }
        if !finish {
            // Keep the body open until the test is over.
            sleep(Duration::from_secs(3600)).await;
        }
    });
    let answer = async {
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.into_body().collect().await;
                let body = body.map(|b| b.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&body).to_string();
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(seen) => format!("status {status}, upstream got {}", seen["path"]),
                    Err(_) => format!("status {status}, body {text:?}"),
                }
            }
            Err(_) => "stream failed".to_string(),
        }
    };
    let answer = tokio::time::timeout(watch, answer)
        .await
        .unwrap_or_else(|_| format!("no answer within {watch:?}"));
    feeder.abort();
    driver.abort();
    answer
}

/// The h2 preface and an empty SETTINGS frame, then what the server says in its first 500 ms: the values it
/// SETTINGS for `SETTINGS_MAX_CONCURRENT_STREAMS` (3) and `SETTINGS_INITIAL_WINDOW_SIZE` (4), and the
/// connection-level WINDOW_UPDATE increments it sends.
pub async fn h2_settings(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut bytes = Vec::new();
    while let Ok(Ok(n)) = timeout_at(deadline, stream.read_buf(&mut bytes)).await {
        if n == 0 {
            break;
        }
    }
    let mut said = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let stream_id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        let Some(payload) = rest.get(9..9 + length) else {
            break;
        };
        let number = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        match kind {
            // SETTINGS, not an acknowledgement.
            4 if flags & 1 == 0 => {
                for setting in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    if id == 3 || id == 4 {
                        said.push(format!("setting {id} = {}", number(&setting[2..])));
                    }
                }
            }
            8 if stream_id == 0 && payload.len() == 4 => {
                said.push(format!(
                    "connection window += {}",
                    number(payload) & 0x7fff_ffff
                ));
            }
            _ => {}
        }
        rest = &rest[9 + length..];
    }
    said.join(", ")
}
