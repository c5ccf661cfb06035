//! The downstream connection as hyper reads and writes it, for what only the connection's bytes tell: whether
//! the client sent anything (a connection that never did is closed, not drained, at its idle timeout), when a
//! tunnel's bytes last moved, and the reset of a tunnel that fell silent: once the state is reset, reads and
//! writes fail. After a 101 the router copies the tunnel over hyper's `Upgraded`, which is this IO: there is
//! no body to wrap then. Requests and responses are followed by their bodies (`stream_timeout`), not here.

use super::connection_state::ConnectionState;
use super::h2_frames::OutboundFrames;
use pin_project_lite::pin_project;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project! {
    pub struct ConnectionIo<S> {
        #[pin]
        inner: S,
        state: Arc<ConnectionState>,
        // h2 only (decided at the first write, after the preface was read): the frames written, for the
        // GOAWAY that ends the connection.
        frames: Option<OutboundFrames>,
        first_write: bool,
    }
}

impl<S> ConnectionIo<S> {
    pub fn new(inner: S, state: Arc<ConnectionState>) -> Self {
        Self {
            inner,
            state,
            frames: None,
            first_write: true,
        }
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "stream idle timeout: connection reset",
    )
}

impl<S: AsyncRead> AsyncRead for ConnectionIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.state.is_reset(cx.waker()) {
            return Poll::Ready(Err(reset_error()));
        }
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && buf.filled().len() > before
        {
            this.state.on_read(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite> AsyncWrite for ConnectionIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.state.is_reset(cx.waker()) {
            return Poll::Ready(Err(reset_error()));
        }
        let result = this.inner.poll_write(cx, bytes);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.state.on_write();
            follow_frames(this.frames, this.first_write, this.state, [&bytes[..n]]);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.state.is_reset(cx.waker()) {
            return Poll::Ready(Err(reset_error()));
        }
        let result = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.state.on_write();
            // The first `n` bytes of the slices went out.
            let mut left = n;
            let written = bufs.iter().map(|b| {
                let take = left.min(b.len());
                left -= take;
                &b[..take]
            });
            follow_frames(this.frames, this.first_write, this.state, written);
        }
        result
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

/// Follows an h2 connection's written frames; keeps the debug data of a GOAWAY in the state.
fn follow_frames<'a>(
    frames: &mut Option<OutboundFrames>,
    first_write: &mut bool,
    state: &ConnectionState,
    written: impl IntoIterator<Item = &'a [u8]>,
) {
    if std::mem::take(first_write) && state.is_h2() {
        *frames = Some(OutboundFrames::default());
    }
    let Some(frames) = frames else {
        return;
    };
    for bytes in written {
        if let Some(debug_data) = frames.written(bytes) {
            state.on_go_away(debug_data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_feed_the_state_and_a_reset_fails_a_pending_read() {
        let state = Arc::new(ConnectionState::new(false));
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = ConnectionIo::new(server, state.clone());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, 18);
        assert!(state.has_read());
        assert!(!state.is_h2());
        let pending = tokio::spawn(async move { io.read(&mut buf).await });
        tokio::task::yield_now().await;
        state.reset();
        let error = pending.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        drop(client);
    }
}
