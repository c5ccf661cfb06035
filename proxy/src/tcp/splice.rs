//! One direction of a plain TCP to plain TCP connection, without copying the bytes through user space.
//!
//! Why: the buffered copy reads every byte into a buffer of ours and writes it back out, two copies through
//! user space per byte; on loopback those copies were most of tcp_proxy's CPU time, and scenario (e) of
//! benches/README.md (opaque TCP echo) showed Outrigger at 0.6-0.7x Envoy's throughput. `splice(2)` moves the
//! bytes from the reading socket into a pipe and from the pipe into the writing socket as page references, so
//! the kernel hands pages on instead of copying them. TLS streams cannot be spliced (their bytes are
//! decrypted and encrypted in user space): they keep the buffered copy.
//!
//! Everything tcp_proxy observes stays as it was: bytes are counted as the writing socket takes them (stats,
//! access log, Istio's metrics), each chunk moved counts as activity for the idle timeout, and the caller
//! half-closes the writing side when the reading side ends.

use super::pipes::PIPES;
use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The most one `splice` call is asked to move. The pipe takes what fits in it (see `pipes.rs`), so this only
/// needs to be at least that.
const CHUNK: usize = 1 << 20;

/// How one direction ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// The reading side ended (EOF or an error) or the writing side failed: the caller half-closes the writing
    /// side, as the buffered copy does.
    Ended,
    /// No pipe could be had (out of descriptors, or the user's pipe allowance spent) or this kernel cannot
    /// splice these sockets. No byte is in flight: the caller goes on with the buffered copy.
    Unsupported,
}

/// Moves bytes from `from` to `to` until `from` ends or either side fails, adding each byte `to` takes to
/// `total` and one to `activity` for each chunk passed on.
pub async fn copy(
    from: &TcpStream,
    to: &TcpStream,
    activity: &AtomicU64,
    total: &AtomicU64,
) -> Copied {
    loop {
        // Waiting for bytes holds no pipe (see `pipes.rs`).
        if from.readable().await.is_err() {
            return Copied::Ended;
        }
        let Some(pipe) = PIPES.take() else {
            return Copied::Unsupported;
        };
        // One burst: what `from` has, through the pipe, until it has no more for now.
        loop {
            let filled = from.try_io(Interest::READABLE, || {
                splice(from, None, &pipe.input, None, CHUNK, flags()).map_err(io::Error::from)
            });
            match filled {
                Ok(0) => {
                    PIPES.give(pipe);
                    return Copied::Ended;
                }
                Ok(n) => {
                    // A pipe left with bytes in it is dropped (closed), never given back.
                    if drain(&pipe.output, to, n, total).await.is_err() {
                        return Copied::Ended;
                    }
                    activity.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    PIPES.give(pipe);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if unsupported(&e) => {
                    PIPES.give(pipe);
                    return Copied::Unsupported;
                }
                Err(_) => return Copied::Ended,
            }
        }
    }
}

/// Whether a failed splice says the kernel cannot splice these descriptors at all (rather than the
/// connection failing).
fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}

/// Moves the `left` bytes in the pipe into `to`, waiting while its send buffer is full.
async fn drain(
    pipe_out: &OwnedFd,
    to: &TcpStream,
    mut left: usize,
    total: &AtomicU64,
) -> io::Result<()> {
    while left > 0 {
        let moved = to.try_io(Interest::WRITABLE, || {
            splice(pipe_out, None, to, None, left, flags()).map_err(io::Error::from)
        });
        match moved {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                left -= n;
                total.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Never block (the sockets and the pipe are all non-blocking; this covers the pipe side explicitly), and
/// move pages rather than copy them where the kernel can.
fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets: (the end we hold, the end the code under test holds).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (outside, inside) = tokio::join!(TcpStream::connect(address), listener.accept());
        (outside.unwrap(), inside.unwrap().0)
    }

    /// Copies `from` to `to` (10 s at most); returns how it ended, the bytes moved and the activity count.
    async fn copy_bounded(from: &TcpStream, to: &TcpStream) -> (Copied, u64, u64) {
        let (activity, total) = (AtomicU64::new(0), AtomicU64::new(0));
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            copy(from, to, &activity, &total),
        )
        .await
        .expect("the copy ends within 10 s");
        (
            ended,
            total.load(Ordering::Relaxed),
            activity.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn moves_every_byte_counts_them_and_ends_at_eof() {
        let (mut writer, from) = pair().await;
        let (mut reader, to) = pair().await;
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let sent = payload.clone();
        let writing = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
            writer.shutdown().await.unwrap();
            writer
        });
        let reading = tokio::spawn(async move {
            let mut back = vec![0u8; 3_000_000];
            reader.read_exact(&mut back).await.unwrap();
            back
        });
        let (ended, total, activity) = copy_bounded(&from, &to).await;
        assert_eq!(ended, Copied::Ended);
        assert_eq!(total, payload.len() as u64);
        assert!(activity >= 1);
        assert!(reading.await.unwrap() == payload);
        drop(writing.await.unwrap());
    }

    #[tokio::test]
    async fn a_failed_writing_side_ends_the_direction() {
        let (mut writer, from) = pair().await;
        let (reader, to) = pair().await;
        // The far end of `to` is gone: writes into it fail once the reset arrives.
        drop(reader);
        let feeding = tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..200 {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            writer
        });
        let (ended, _, _) = copy_bounded(&from, &to).await;
        assert_eq!(ended, Copied::Ended);
        feeding.abort();
    }
}
