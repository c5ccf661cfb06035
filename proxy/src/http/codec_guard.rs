//! `codec_type: HTTP1` or `HTTP2`, held to on the connection's first bytes. hyper-util's automatic builder picks
//! the protocol from those bytes whatever it was told (`serve_connection_with_upgrades` ignores `http1_only` and
//! `http2_only`), so the codec is enforced under it, as Envoy's codecs do: an h2 preface on an HTTP1 connection
//! gets Envoy's `400 Bad Request` (without its `date`) and the connection closes; a connection to HTTP2 that
//! does not open with the preface is closed with nothing said. hyper sees the end of the stream either way.

use outrigger_config::model::http::CodecType;
use pin_project_lite::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The h2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much of the preface tells it from an HTTP/1 request line.
const PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0";

enum State {
    /// Nothing read yet.
    First,
    /// The codec accepts the connection.
    Passed,
    /// Writing the refusal: the reply and how much of it went out.
    Refusing(Vec<u8>, usize),
    /// Refused: reads end.
    Closed,
}

pin_project! {
    pub struct CodecGuard<S> {
        #[pin]
        inner: S,
        codec: CodecType,
        server: String,
        state: State,
    }
}

impl<S> CodecGuard<S> {
    /// `server` names the proxy in the refusal, as the connection manager's `server_name` does.
    pub fn new(inner: S, codec: CodecType, server: &str) -> Self {
        Self {
            inner,
            codec,
            server: server.to_string(),
            state: State::First,
        }
    }
}

/// What the codec makes of a connection's first bytes: `None` to serve it, else the bytes to answer before
/// closing (none for HTTP2).
fn refusal(codec: CodecType, first: &[u8], server: &str) -> Option<Vec<u8>> {
    match codec {
        CodecType::Auto => None,
        CodecType::Http1 => first.starts_with(PREFACE_LINE).then(|| {
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\
                 server: {server}\r\nconnection: close\r\n\r\nBad Request"
            )
            .into_bytes()
        }),
        // A first read shorter than the preface is judged on what it has.
        CodecType::Http2 => {
            let opens = PREFACE.starts_with(first) || first.starts_with(PREFACE);
            (!opens).then(Vec::new)
        }
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for CodecGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Passed => return this.inner.poll_read(cx, buf),
                State::Closed => return Poll::Ready(Ok(())),
                State::First => {
                    let before = buf.filled().len();
                    ready!(this.inner.as_mut().poll_read(cx, buf))?;
                    match refusal(*this.codec, &buf.filled()[before..], this.server) {
                        None => {
                            *this.state = State::Passed;
                            return Poll::Ready(Ok(()));
                        }
                        // hyper never sees the refused bytes.
                        Some(reply) => {
                            buf.set_filled(before);
                            *this.state = State::Refusing(reply, 0);
                        }
                    }
                }
                State::Refusing(reply, written) => {
                    if *written == reply.len() {
                        // The peer is going away: a failed flush changes nothing.
                        let _ = ready!(this.inner.as_mut().poll_flush(cx));
                        *this.state = State::Closed;
                        continue;
                    }
                    match ready!(this.inner.as_mut().poll_write(cx, &reply[*written..])) {
                        Ok(n) if n > 0 => *written += n,
                        _ => *this.state = State::Closed,
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite> AsyncWrite for CodecGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// What a client sending `first` reads back through a guard for `codec`, and what the server side reads.
    async fn exchange(codec: CodecType, first: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = duplex(4096);
        let mut guarded = CodecGuard::new(server, codec, "edge");
        client.write_all(first).await.unwrap();
        let mut read = vec![0u8; 256];
        let n = guarded.read(&mut read).await.unwrap();
        read.truncate(n);
        drop(guarded);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        (answer, read)
    }

    #[tokio::test]
    async fn each_codec_serves_only_its_protocol() {
        let preface = [PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0][..]].concat();
        let request = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";

        let (answer, read) = exchange(CodecType::Http1, &preface).await;
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(answer.contains("server: edge\r\nconnection: close\r\n"));
        assert!(answer.ends_with("\r\n\r\nBad Request"));
        assert!(read.is_empty(), "hyper sees the end of the stream");

        let (answer, read) = exchange(CodecType::Http2, request).await;
        assert!(answer.is_empty() && read.is_empty());

        for (codec, first) in [
            (CodecType::Http1, &request[..]),
            (CodecType::Http2, &preface[..]),
            (CodecType::Http2, &PREFACE[..5]),
            (CodecType::Auto, &preface[..]),
            (CodecType::Auto, &request[..]),
        ] {
            let (answer, read) = exchange(codec, first).await;
            assert!(answer.is_empty(), "{codec:?}");
            assert_eq!(read, first, "{codec:?} passes the bytes on");
        }
    }
}
