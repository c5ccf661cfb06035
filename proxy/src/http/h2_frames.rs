//! The frames this side writes on an h2 connection, walked by their 9-byte headers, for the one thing hyper does
//! not tell: the debug data of the GOAWAY the codec sent when it ended the connection (`too_many_resets`,
//! `too_many_continuations`, ...), which names the client's flood. h2 sends it on the wire but drops it from the
//! error it returns. And the acknowledgements (SETTINGS and PING with ACK) the socket accepted, for
//! `h2_control_flood`.

/// Debug data kept of a GOAWAY: h2's names are short.
const DEBUG_CAP: usize = 64;

#[derive(Default)]
pub struct OutboundFrames {
    /// The current frame's header as far as it came (9 bytes: then its payload follows).
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    left: usize,
    /// The current frame is a GOAWAY: its payload so far (last stream id, error code, debug data).
    go_away: Option<Vec<u8>>,
    /// The current frame is an acknowledgement.
    ack: bool,
    /// Acknowledgements written whole.
    pub acks: u64,
}

impl OutboundFrames {
    /// Follows `bytes` written; returns the debug data of a GOAWAY that ended in them.
    pub fn written(&mut self, mut bytes: &[u8]) -> Option<Vec<u8>> {
        let mut ended = None;
        while !bytes.is_empty() {
            if self.have < 9 {
                let n = (9 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 9 {
                    let [a, b, c, kind, flags, ..] = self.header;
                    self.left = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
                    self.go_away = (kind == 7).then(Vec::new);
                    self.ack = super::h2_control_flood::is_ack(kind, flags);
                }
            } else {
                let n = self.left.min(bytes.len());
                if let Some(payload) = self.go_away.as_mut() {
                    let room = (8 + DEBUG_CAP).saturating_sub(payload.len()).min(n);
                    payload.extend_from_slice(&bytes[..room]);
                }
                self.left -= n;
                bytes = &bytes[n..];
            }
            if self.have == 9 && self.left == 0 {
                self.have = 0;
                if std::mem::take(&mut self.ack) {
                    self.acks += 1;
                }
                if let Some(payload) = self.go_away.take() {
                    ended = Some(payload.get(8..).unwrap_or_default().to_vec());
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            0,
        ];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn the_debug_data_of_a_go_away_is_found_across_writes() {
        let mut bytes = frame(4, &[]);
        bytes.extend(frame(0, &[1u8; 300]));
        let mut go_away = vec![0, 0, 0, 1, 0, 0, 0, 11];
        go_away.extend_from_slice(b"too_many_resets");
        bytes.extend(frame(7, &go_away));
        let mut frames = OutboundFrames::default();
        let mut found = None;
        // One byte at a time: a header or payload split anywhere is followed.
        for byte in &bytes {
            if let Some(debug) = frames.written(std::slice::from_ref(byte)) {
                found = Some(debug);
            }
        }
        assert_eq!(found.as_deref(), Some(&b"too_many_resets"[..]));
        assert_eq!(
            OutboundFrames::default().written(&bytes).as_deref(),
            Some(&b"too_many_resets"[..])
        );
        assert_eq!(
            OutboundFrames::default().written(&bytes[..bytes.len() - 1]),
            None
        );
    }

    #[test]
    fn acknowledgements_count_once_written_whole() {
        let mut bytes = frame(4, &[]);
        bytes[4] = 1; // SETTINGS ACK
        let mut ping_ack = frame(6, &[5; 8]);
        ping_ack[4] = 1;
        bytes.extend(frame(6, &[5; 8])); // our own PING: not an ack
        bytes.extend(frame(0, &[1u8; 40]));
        bytes.extend(&ping_ack);
        let mut frames = OutboundFrames::default();
        for piece in bytes.chunks(7) {
            frames.written(piece);
        }
        assert_eq!(frames.acks, 2);
        let mut frames = OutboundFrames::default();
        frames.written(&bytes[..bytes.len() - 1]);
        assert_eq!(frames.acks, 1, "the PING ack is not whole yet");
        frames.written(&bytes[bytes.len() - 1..]);
        assert_eq!(frames.acks, 2);
    }
}
