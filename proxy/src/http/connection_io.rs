//! The downstream connection as hyper reads and writes it, for what only the connection's bytes tell: whether
//! the client sent anything (a connection that never did is closed, not drained, at its idle timeout), when a
//! tunnel's bytes last moved, and the reset of a tunnel that fell silent: once the state is reset, reads and
//! writes fail. After a 101 the router copies the tunnel over hyper's `Upgraded`, which is this IO: there is
//! no body to wrap then. Requests and responses are followed by their bodies (`stream_timeout`), not here.
//! On h2 it also watches for SETTINGS and PING floods (`h2_control_flood`).

use super::connection_state::ConnectionState;
use super::h2_control_flood::{self, ControlFlood, Report};
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
        // h2 only (decided at the first read): the frames read, for control-frame floods.
        flood: Option<ControlFlood>,
        first_read: bool,
        report: Option<Report>,
    }
}

impl<S> ConnectionIo<S> {
    pub fn new(inner: S, state: Arc<ConnectionState>) -> Self {
        Self {
            inner,
            state,
            frames: None,
            first_write: true,
            flood: None,
            first_read: true,
            report: None,
        }
    }

    /// Watches h2 connections for control-frame floods, counted and logged in `report`.
    pub fn with_flood_report(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
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
        if let Some(flood) = this.flood.as_mut()
            && flood.take_ahead(buf)
        {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && buf.filled().len() > before
        {
            let read = &buf.filled()[before..];
            this.state.on_read(read);
            if std::mem::take(this.first_read) && this.report.is_some() && this.state.is_h2() {
                *this.flood = Some(ControlFlood::default());
            }
            if let Some(flood) = this.flood.as_mut() {
                flood.inbound.read(read);
            }
        }
        result
    }
}

/// A write was refused: whether the connection is flooded with control frames (then it fails).
fn flooded<S: AsyncRead>(
    inner: Pin<&mut S>,
    cx: &mut Context<'_>,
    flood: &mut Option<ControlFlood>,
    frames: &Option<OutboundFrames>,
    state: &ConnectionState,
    report: &Option<Report>,
) -> bool {
    let (Some(flood), Some(report)) = (flood.as_mut(), report.as_ref()) else {
        return false;
    };
    let acks = frames.as_ref().map_or(0, |f| f.acks);
    flood.refused_write(inner, cx, acks, state, report)
}

fn is_flooded(flood: &Option<ControlFlood>) -> bool {
    flood.as_ref().is_some_and(|f| f.flooded)
}

impl<S: AsyncRead + AsyncWrite> AsyncWrite for ConnectionIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if this.state.is_reset(cx.waker()) {
            return Poll::Ready(Err(reset_error()));
        }
        if is_flooded(this.flood) {
            return Poll::Ready(Err(h2_control_flood::flood_error()));
        }
        let mut inner = this.inner;
        let result = inner.as_mut().poll_write(cx, bytes);
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
                this.state.on_write();
                follow_frames(this.frames, this.first_write, this.state, [&bytes[..n]]);
            }
            Poll::Pending
                if flooded(inner, cx, this.flood, this.frames, this.state, this.report) =>
            {
                return Poll::Ready(Err(h2_control_flood::flood_error()));
            }
            _ => {}
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
        if is_flooded(this.flood) {
            return Poll::Ready(Err(h2_control_flood::flood_error()));
        }
        let mut inner = this.inner;
        let result = inner.as_mut().poll_write_vectored(cx, bufs);
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
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
            Poll::Pending
                if flooded(inner, cx, this.flood, this.frames, this.state, this.report) =>
            {
                return Poll::Ready(Err(h2_control_flood::flood_error()));
            }
            _ => {}
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

    /// The client's preface, then `pings` PINGs, written by a task that never reads.
    fn pinging_client(
        client: tokio::io::DuplexStream,
        pings: usize,
    ) -> (Vec<u8>, tokio::task::JoinHandle<tokio::io::DuplexStream>) {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        for _ in 0..pings {
            bytes.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        let sent = bytes.clone();
        let writer = tokio::spawn(async move {
            let mut client = client;
            let _ = client.write_all(&sent).await;
            client
        });
        (bytes, writer)
    }

    fn watched(
        server: tokio::io::DuplexStream,
    ) -> (
        ConnectionIo<tokio::io::DuplexStream>,
        prometheus_client::metrics::counter::Counter,
    ) {
        let counter = prometheus_client::metrics::counter::Counter::default();
        let io = ConnectionIo::new(server, Arc::new(ConnectionState::new(true))).with_flood_report(
            Report {
                counter: counter.clone(),
                stat_prefix: "test".into(),
            },
        );
        (io, counter)
    }

    /// 64 KiB of DATA frames, none an acknowledgement, written until the write fails or hangs for 1 s.
    async fn write_data(io: &mut ConnectionIo<tokio::io::DuplexStream>) -> Option<io::Error> {
        let mut frame = vec![0u8, 64, 0, 0, 0, 0, 0, 0, 1];
        frame.resize(9 + 16384, b'z');
        let writes = async {
            loop {
                if let Err(e) = io.write_all(&frame).await {
                    return e;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), writes)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_client_owing_too_many_acks_while_writes_are_refused_is_cut_off_and_counted() {
        let (client, server) = tokio::io::duplex(4096);
        let (_, writer) = pinging_client(client, 1500);
        let (mut io, counter) = watched(server);
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let error = write_data(&mut io)
            .await
            .expect("the flood was not cut off");
        assert!(error.to_string().contains("control-frame flood"), "{error}");
        assert_eq!(counter.get(), 1);
        // Every later write fails too.
        assert!(io.write_all(b"x").await.is_err());
        writer.abort();
    }

    #[tokio::test]
    async fn acks_owed_under_the_limit_only_wait_and_bytes_read_ahead_come_in_order() {
        let (client, server) = tokio::io::duplex(4096);
        let (sent, writer) = pinging_client(client, 900);
        let (mut io, counter) = watched(server);
        let mut received = vec![0u8; 64];
        let n = io.read(&mut received).await.unwrap();
        received.truncate(n);
        assert!(write_data(&mut io).await.is_none(), "a write failed");
        assert_eq!(counter.get(), 0);
        // Everything the client sent, read ahead or not, comes to the reader once, in order.
        let mut buf = [0u8; 1000];
        while received.len() < sent.len() {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0);
            received.extend_from_slice(&buf[..n]);
        }
        assert!(received == sent, "bytes out of order");
        writer.abort();
    }
}
