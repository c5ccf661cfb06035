//! What the HTTP/1 codec says when a request cannot be parsed or its head does not arrive in time, worded as
//! Envoy's codec words it. hyper answers a malformed request itself (a bare `400`/`431` with no body, no
//! `server`) and closes a connection whose head is late with nothing said. Envoy answers both with a local reply:
//! the status, its reason as a `text/plain` body, `server`, `connection: close`, and counts the request
//! (`downstream_rq_total`, `downstream_rq_4xx`). This IO, between hyper and the connection:
//! - replaces hyper's own error response (an HTTP/1 response head without `server`: every response of the
//!   stack carries one) with Envoy's;
//! - runs `request_headers_timeout` (Envoy's, from the first byte of a request head until the head is complete):
//!   past it, writes Envoy's `408 request header timeout` and ends the reads, so hyper ends the connection;
//! - refuses the heads Envoy refuses and hyper would take: `Content-Length` with `Transfer-Encoding` (400; hyper
//!   drops the length and frames by the encoding), an encoding not ending in `chunked` (501), HTTP/1.2+ (426);
//!   and unfolds obs-fold lines, which Envoy accepts and hyper refuses. A head split across reads is checked
//!   whole; a fold split across two reads is left to hyper. Pipelined heads (sent before the previous response)
//!   are hyper's alone.
//!
//! Both are logged at most once a second (`log_limit`).

use super::connection_state::ConnectionState;
use crate::log_limit;
use pin_project_lite::pin_project;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Counts a reply the codec made (its status).
pub type OnReply = Arc<dyn Fn(u16) + Send + Sync>;

pin_project! {
    pub struct CodecReply<S> {
        #[pin]
        inner: S,
        state: Arc<ConnectionState>,
        server: String,
        on_reply: OnReply,
        headers_timeout: Option<Duration>,
        // The request head being read (HTTP/1), from its first byte until it is complete.
        head: Option<Head>,
        // Requests taken when the last head was complete: the next head starts once a stream started since and
        // none is open.
        last_head: Option<u64>,
        // Our reply, and how much of it went out.
        pending: Vec<u8>,
        written: usize,
        // A reply was made: reads end and hyper's later writes are dropped.
        replied: bool,
    }
}

impl<S> CodecReply<S> {
    pub fn new(
        inner: S,
        state: Arc<ConnectionState>,
        server: &str,
        headers_timeout: Option<Duration>,
        on_reply: OnReply,
    ) -> Self {
        Self {
            inner,
            state,
            server: server.to_string(),
            on_reply,
            headers_timeout,
            head: None,
            last_head: None,
            pending: Vec::new(),
            written: 0,
            replied: false,
        }
    }
}

/// A request head on its way in: its bytes so far (up to `HEAD_CAP`), the requests taken before it, and the
/// `request_headers_timeout` deadline.
struct Head {
    bytes: Vec<u8>,
    requests: u64,
    deadline: Option<Pin<Box<Sleep>>>,
}

/// A request head's time limit when `request_headers_timeout` is unset (Envoy has none): a client trickling a
/// head is cut off (408) rather than held for ever. Idle keep-alive connections are not timed by it.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Past this, a head is hyper's to refuse (431); we stop keeping its bytes.
const HEAD_CAP: usize = 128 * 1024;

/// What Envoy's codec says to a complete head that hyper would take or answer otherwise: both
/// `Content-Length` and `Transfer-Encoding` (400), a `Transfer-Encoding` not ending in `chunked` (501), an
/// HTTP/1 minor version other than 0 and 1 (426).
fn refuse_head(head: &[u8]) -> Option<(u16, &'static str)> {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next()?;
    if let Some(version) = request_line.rsplit(' ').next()
        && let Some(minor) = version.strip_prefix("http/1.")
        && minor != "0"
        && minor != "1"
    {
        return Some((426, "Upgrade Required"));
    }
    let (mut length, mut encoding) = (false, None);
    for line in lines {
        if line.starts_with("content-length:") {
            length = true;
        } else if let Some(value) = line.strip_prefix("transfer-encoding:") {
            encoding = Some(value.trim().to_string());
        }
    }
    match encoding {
        Some(_) if length => Some((400, "Bad Request")),
        Some(e) if e.rsplit(',').next().map(str::trim) != Some("chunked") => {
            Some((501, "Not Implemented"))
        }
        _ => None,
    }
}

/// Envoy's codec unfolds an obs-fold line (a header line starting with a space or tab) into the value before
/// it; hyper refuses it. Within one read, CR LF before the fold becomes two spaces (the length stays).
fn unfold(bytes: &mut [u8]) {
    for i in 0..bytes.len().saturating_sub(2) {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' && matches!(bytes[i + 2], b' ' | b'\t') {
            bytes[i] = b' ';
            bytes[i + 1] = b' ';
        }
    }
}

/// Envoy's local reply of its HTTP/1 codec.
fn reply(status: u16, body: &str, server: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nserver: {server}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status of hyper's own error response, when `bytes` start one: an HTTP/1 error head without `server`.
fn hyper_error(bytes: &[u8]) -> Option<u16> {
    let rest = bytes
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    (status >= 400 && !head.contains("\r\nserver:")).then_some(status)
}

impl<S: AsyncWrite> CodecReply<S> {
    /// Writes what is left of our reply.
    fn drive(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        while *this.written < this.pending.len() {
            let n = ready!(
                this.inner
                    .as_mut()
                    .poll_write(cx, &this.pending[*this.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *this.written += n;
        }
        Poll::Ready(Ok(()))
    }

    fn start_reply(self: Pin<&mut Self>, status: u16, body: &str) {
        let this = self.project();
        *this.pending = reply(status, body, this.server);
        *this.written = 0;
        *this.replied = true;
        (this.on_reply)(status);
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for CodecReply<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replied {
            ready!(self.as_mut().drive(cx))?;
            return Poll::Ready(Ok(()));
        }
        let (requests, open) = (self.state.requests(), self.state.open_streams());
        let this = self.as_mut().project();
        // A stream started since the head began: hyper has it all.
        if let Some(head) = this.head.as_ref()
            && requests > head.requests
        {
            *this.last_head = Some(head.requests);
            *this.head = None;
        }
        let late = match this.head.as_mut().and_then(|h| h.deadline.as_mut()) {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if late {
            static LATE: log_limit::Once = log_limit::Once::per_second();
            if LATE.allow() {
                tracing::info!(
                    "request headers not complete within request_headers_timeout (30 s when unset): 408, connection closed \
                     (at most one such line a second)"
                );
            }
            self.as_mut().start_reply(408, "request header timeout");
            ready!(self.as_mut().drive(cx))?;
            return Poll::Ready(Ok(()));
        }
        let this = self.as_mut().project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        if buf.filled().len() == before || this.state.is_h2() {
            return Poll::Ready(Ok(()));
        }
        // The first byte of a head: no head in progress, none open, and a stream started since the last one.
        let next = this.last_head.is_none_or(|last| requests > last) && open == 0;
        if this.head.is_none() && next {
            let mut deadline = this
                .headers_timeout
                .map(|t| Box::pin(tokio::time::sleep(t)));
            // Registers the waker, so the deadline wakes the connection even while hyper waits for bytes.
            if let Some(deadline) = deadline.as_mut() {
                let _ = deadline.as_mut().poll(cx);
            }
            *this.head = Some(Head {
                bytes: Vec::new(),
                requests,
                deadline,
            });
        }
        let Some(head) = this.head.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if head.bytes.len() >= HEAD_CAP {
            return Poll::Ready(Ok(()));
        }
        let new = &mut buf.filled_mut()[before..];
        unfold(new);
        let from = head.bytes.len().saturating_sub(3);
        let had_line = head.bytes.windows(2).any(|w| w == b"\r\n");
        head.bytes.extend_from_slice(new);
        let end = head.bytes[from..].windows(4).position(|w| w == b"\r\n\r\n");
        // The request line is judged as soon as it is whole: hyper parses it before the head is complete.
        let line = (!had_line)
            .then(|| head.bytes.windows(2).position(|w| w == b"\r\n"))
            .flatten();
        let refused = match (end, line) {
            (Some(end), _) => refuse_head(&head.bytes[..from + end]),
            (None, Some(line)) => {
                refuse_head(&head.bytes[..line]).filter(|(status, _)| *status == 426)
            }
            (None, None) => return Poll::Ready(Ok(())),
        };
        if end.is_none() && refused.is_none() {
            return Poll::Ready(Ok(()));
        }
        // The head is complete (its timer stops) or refused; either way it is checked before hyper reads it.
        *this.last_head = Some(head.requests);
        *this.head = None;
        if let Some((status, body)) = refused {
            static REFUSED: log_limit::Once = log_limit::Once::per_second();
            if REFUSED.allow() {
                tracing::info!(
                    status,
                    "HTTP/1 request head refused as Envoy refuses it; connection closed (at most one such line \
                     a second)"
                );
            }
            buf.set_filled(before);
            self.as_mut().start_reply(status, body);
            ready!(self.as_mut().drive(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite> AsyncWrite for CodecReply<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replied {
            // Ours goes out first; anything hyper writes after it is dropped.
            ready!(self.as_mut().drive(cx))?;
            return Poll::Ready(Ok(bytes.len()));
        }
        if let Some(status) = hyper_error(bytes) {
            static MALFORMED: log_limit::Once = log_limit::Once::per_second();
            if MALFORMED.allow() {
                tracing::info!(
                    status,
                    "malformed HTTP/1 request refused; connection closed (at most one such line a second)"
                );
            }
            let body = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            self.as_mut().start_reply(status, body);
            ready!(self.as_mut().drive(cx))?;
            return Poll::Ready(Ok(bytes.len()));
        }
        self.project().inner.poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.replied || first.is_some_and(|b| hyper_error(b).is_some()) {
            let Some(first) = first else {
                return Poll::Ready(Ok(0));
            };
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let n = ready!(self.poll_write(cx, first))?;
            // An error response has no body: the whole write is taken.
            return Poll::Ready(Ok(if n == first.len() { total } else { n }));
        }
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().drive(cx))?;
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().drive(cx))?;
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_smuggling_head_is_answered_and_never_reaches_hyper() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let state = Arc::new(ConnectionState::new(false));
        let (mut client, server) = tokio::io::duplex(4096);
        let counted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = counted.clone();
        let mut io = CodecReply::new(
            server,
            state,
            "outrigger",
            None,
            Arc::new(move |status| seen.lock().unwrap().push(status)),
        );
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "hyper sees the end of the stream, never the head");
        let mut reply = vec![0u8; 4096];
        let n = client.read(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).to_string();
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
        assert!(
            reply.ends_with("connection: close\r\n\r\nBad Request"),
            "{reply}"
        );
        assert_eq!(*counted.lock().unwrap(), vec![400]);
    }

    #[test]
    fn heads_are_refused_as_envoy_refuses_them() {
        let refuse = |head: &str| refuse_head(head.as_bytes()).map(|(s, _)| s);
        assert_eq!(refuse("GET / HTTP/1.1\r\nhost: a"), None);
        assert_eq!(refuse("GET / HTTP/1.7\r\nhost: a"), Some(426));
        assert_eq!(
            refuse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"),
            Some(400)
        );
        assert_eq!(
            refuse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity"),
            Some(501)
        );
        assert_eq!(
            refuse("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked"),
            None
        );
        let mut folded = b"GET / HTTP/1.1\r\nx-a: 1\r\n  folded\r\n\r\n".to_vec();
        unfold(&mut folded);
        assert_eq!(
            folded,
            b"GET / HTTP/1.1\r\nx-a: 1    folded\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn hyper_error_heads_are_told_from_the_stacks_responses() {
        assert_eq!(
            hyper_error(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
            Some(400)
        );
        assert_eq!(
            hyper_error(b"HTTP/1.1 431 Request Header Fields Too Large\r\ndate: x\r\n\r\n"),
            Some(431)
        );
        assert_eq!(
            hyper_error(b"HTTP/1.1 400 Bad Request\r\nserver: outrigger\r\n\r\n"),
            None
        );
        assert_eq!(hyper_error(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(hyper_error(b"hello"), None);
    }
}
