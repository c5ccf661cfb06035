//! A connection that is plaintext or TLS, read and written the same way.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Stream {
    Plain(TcpStream),
    /// With, for an accepted connection, what counts its TLS errors after the handshake.
    Tls(
        Box<tokio_rustls::TlsStream<TcpStream>>,
        Option<crate::tls::connection_error::AfterHandshake>,
    ),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s, _) => s.get_ref().0,
        }
    }
}

impl Stream {
    /// An accepted TLS connection whose TLS errors after the handshake `errors` counts.
    pub fn accepted_tls(
        s: tokio_rustls::server::TlsStream<TcpStream>,
        errors: crate::tls::connection_error::AfterHandshake,
    ) -> Self {
        Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s)), Some(errors))
    }
}

impl From<tokio_rustls::server::TlsStream<TcpStream>> for Stream {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s)), None)
    }
}

impl From<tokio_rustls::client::TlsStream<TcpStream>> for Stream {
    fn from(s: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(s)), None)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s, errors) => {
                let read = Pin::new(s.as_mut()).poll_read(cx, buf);
                if let Poll::Ready(Err(e)) = &read
                    && let Some(errors) = errors.take()
                {
                    errors.record(e);
                }
                read
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
