//! SETTINGS and PING floods on a downstream h2 connection: a client that sends frames demanding an
//! acknowledgement and never reads them. Envoy 1.40 queues every acknowledgement and closes the connection (no
//! GOAWAY; counted in the global `http2.outbound_control_flood`, not as a protocol error) once more than
//! `max_outbound_control_frames` (1000) control frames wait in its output buffer, that is once the socket stopped
//! taking bytes and 1000 more were asked for (checked by running it against the same floods).
//!
//! The h2 crate keeps at most one pending acknowledgement and stops reading until it can write it, so the same
//! flood only stalls the connection here, both sides' socket buffers full. This follows the frames in the bytes:
//! the frames read that demand an acknowledgement (SETTINGS and PING without ACK) and the acknowledgements the
//! socket accepted (`h2_frames`). When a write is refused (the socket is full) while acknowledgements are owed,
//! the client's next bytes are read ahead into a bounded buffer (handed to h2 later, in order), so the frames
//! Envoy would have queued are counted; past the limit the connection fails with an I/O error (hyper closes it).
//!
//! A client that reads its acknowledgements is never cut off, however many it asks for: its writes are not
//! refused. A slow reader of a large response owes at most a few acknowledgements, far below the limit. Envoy
//! goes further: it queues the acknowledgements of everything one socket read brought before writing any, so it
//! also closes a client that reads them but sends more than 1000 PINGs in one burst (checked); h2 reads 8 KiB at
//! a time and writes as it goes, so no such burst can be seen here, and that stricter case is not copied.

use super::connection_state::ConnectionState;
use crate::log_limit;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Envoy's default `max_outbound_control_frames`.
pub const MAX_OUTBOUND_CONTROL_FRAMES: u64 = 1000;

/// Bytes read ahead at most while writes are refused: a flood of the smallest frames (9-byte SETTINGS) passes
/// the limit in 9 KiB, so this is only reached by a client that sends other frames too (DATA, which flow control
/// bounds anyway).
const READ_AHEAD_CAP: usize = 64 * 1024;

/// The client's connection preface, before its first frame.
const PREFACE_LEN: usize = 24;

const SETTINGS: u8 = 4;
const PING: u8 = 6;
const ACK: u8 = 1;

/// Frames read from the client, followed by their 9-byte headers: counts those demanding an acknowledgement.
pub struct InboundFrames {
    /// Preface bytes still to pass.
    preface: usize,
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    left: usize,
    /// SETTINGS and PING frames without ACK read so far.
    pub demanded: u64,
}

impl Default for InboundFrames {
    fn default() -> Self {
        Self {
            preface: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            left: 0,
            demanded: 0,
        }
    }
}

impl InboundFrames {
    pub fn read(&mut self, mut bytes: &[u8]) {
        let skip = self.preface.min(bytes.len());
        self.preface -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if self.have < 9 {
                let n = (9 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 9 {
                    let [a, b, c, kind, flags, ..] = self.header;
                    self.left = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
                    if (kind == SETTINGS || kind == PING) && flags & ACK == 0 {
                        self.demanded += 1;
                    }
                }
            } else {
                let n = self.left.min(bytes.len());
                self.left -= n;
                bytes = &bytes[n..];
            }
            if self.have == 9 && self.left == 0 {
                self.have = 0;
            }
        }
    }
}

/// Whether an outbound frame header is an acknowledgement (SETTINGS or PING with ACK).
pub fn is_ack(kind: u8, flags: u8) -> bool {
    (kind == SETTINGS || kind == PING) && flags & ACK != 0
}

/// Where a detected flood is counted (`http2.outbound_control_flood`) and which listener's log line names.
pub struct Report {
    pub counter: prometheus_client::metrics::counter::Counter,
    pub stat_prefix: std::sync::Arc<str>,
}

/// One h2 connection's flood watch: its inbound frames and the bytes read ahead while writes are refused.
#[derive(Default)]
pub struct ControlFlood {
    pub inbound: InboundFrames,
    /// Bytes read ahead (`taken..filled` not yet handed to h2). Allocated at the first refused write that owes
    /// acknowledgements, freed once handed over.
    ahead: Vec<u8>,
    filled: usize,
    taken: usize,
    /// The read side ended or failed while reading ahead: no more reading ahead (h2 finds out when it reads).
    read_done: bool,
    /// The flood was detected: every later write fails too.
    pub flooded: bool,
}

impl ControlFlood {
    /// Acknowledgements owed: demanded by frames read, not yet accepted by the socket.
    pub fn owed(&self, acks_written: u64) -> u64 {
        self.inbound.demanded.saturating_sub(acks_written)
    }

    /// Hands bytes read ahead to h2; false when there are none.
    pub fn take_ahead(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.taken >= self.filled {
            return false;
        }
        let n = buf.remaining().min(self.filled - self.taken);
        buf.put_slice(&self.ahead[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.filled {
            self.ahead = Vec::new();
            self.filled = 0;
            self.taken = 0;
        }
        true
    }

    /// A write was refused (`Pending`): while acknowledgements are owed, reads the client's next bytes ahead
    /// (bounded) and counts the frames in them. True once more than the limit are owed: the flood was counted
    /// and logged, and the connection must fail.
    pub fn refused_write<S: AsyncRead>(
        &mut self,
        mut inner: Pin<&mut S>,
        cx: &mut Context<'_>,
        acks_written: u64,
        state: &ConnectionState,
        report: &Report,
    ) -> bool {
        if self.owed(acks_written) == 0 {
            return false;
        }
        while self.owed(acks_written) <= MAX_OUTBOUND_CONTROL_FRAMES
            && !self.read_done
            && self.filled < READ_AHEAD_CAP
        {
            if self.ahead.is_empty() {
                self.ahead = vec![0; READ_AHEAD_CAP];
            }
            let mut buf = ReadBuf::new(&mut self.ahead[self.filled..]);
            match inner.as_mut().poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len();
                    let read = &self.ahead[self.filled..self.filled + n];
                    state.on_read(read);
                    self.inbound.read(read);
                    self.filled += n;
                }
                // Ended or failed: h2 finds out when it reads past the bytes held.
                Poll::Ready(_) => self.read_done = true,
                Poll::Pending => break,
            }
        }
        if self.owed(acks_written) <= MAX_OUTBOUND_CONTROL_FRAMES {
            return false;
        }
        self.flooded = true;
        report.counter.inc();
        static LOGGED: log_limit::Once = log_limit::Once::per_second();
        if LOGGED.allow() {
            tracing::warn!(
                stat_prefix = &*report.stat_prefix,
                owed = self.owed(acks_written),
                "h2 control-frame flood (SETTINGS or PING whose acknowledgements the client does not read, \
                 over max_outbound_control_frames {MAX_OUTBOUND_CONTROL_FRAMES}): connection closed \
                 (at most one such line a second)"
            );
        }
        true
    }
}

pub fn flood_error() -> io::Error {
    io::Error::other("h2 control-frame flood: acknowledgements not read by the client")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    fn client_bytes() -> Vec<u8> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(SETTINGS, 0, &[0, 3, 0, 0, 0, 100]));
        bytes.extend(frame(SETTINGS, ACK, &[]));
        // A HEADERS frame whose payload looks like PING headers: payload is skipped, not parsed.
        bytes.extend(frame(1, 4, &frame(PING, 0, &[0; 8])));
        bytes.extend(frame(PING, 0, &[7; 8]));
        bytes.extend(frame(PING, ACK, &[7; 8]));
        bytes.extend(frame(0, 0, &[9; 300]));
        bytes.extend(frame(PING, 0, &[8; 8]));
        bytes
    }

    #[test]
    fn frames_demanding_an_ack_are_counted_in_one_buffer() {
        let mut frames = InboundFrames::default();
        frames.read(&client_bytes());
        // The client's SETTINGS and its two PINGs; not its ACKs, not the frame inside a payload.
        assert_eq!(frames.demanded, 3);
    }

    #[test]
    fn frames_split_anywhere_across_reads_are_counted_once() {
        let bytes = client_bytes();
        for chunk in [1, 2, 5, 9, 10, 17, 23, 24, 25, 100] {
            let mut frames = InboundFrames::default();
            for piece in bytes.chunks(chunk) {
                frames.read(piece);
            }
            assert_eq!(frames.demanded, 3, "chunks of {chunk}");
        }
        // The last PING's header not yet whole: not counted yet.
        let mut frames = InboundFrames::default();
        frames.read(&bytes[..bytes.len() - 10]);
        assert_eq!(frames.demanded, 2);
    }

    #[test]
    fn bytes_read_ahead_are_handed_over_in_order_and_freed() {
        let mut flood = ControlFlood {
            ahead: b"abcdef".to_vec(),
            filled: 6,
            ..ControlFlood::default()
        };
        let mut out = [0u8; 4];
        let mut buf = ReadBuf::new(&mut out);
        assert!(flood.take_ahead(&mut buf));
        assert_eq!(buf.filled(), b"abcd");
        let mut out = [0u8; 4];
        let mut buf = ReadBuf::new(&mut out);
        assert!(flood.take_ahead(&mut buf));
        assert_eq!(buf.filled(), b"ef");
        assert_eq!(flood.ahead.capacity(), 0, "freed once handed over");
        assert!(!flood.take_ahead(&mut buf));
        assert_eq!(flood.owed(0), 0);
    }
}
