//! Follows HTTP/1 request framing in the bytes the connection reads, so the connection manager knows, as
//! Envoy's codec does, when a request's body moves and when the request has been received completely.
//!
//! hyper hands the request body to the router as its own `Incoming` type, which nothing between hyper and
//! the upstream can wrap; reading the framing off the wire is what makes `stream_idle_timeout` (reset by body
//! data; 408 before the request is complete, 504 after) and `request_timeout` (disarmed once the request is
//! complete) exact for HTTP/1. Only lengths are read: hyper still parses and validates every message, and a
//! message hyper refuses ends the connection anyway.
//!
//! On an h2 connection (the preface), after an upgrade or a CONNECT, the bytes are no longer HTTP/1 messages:
//! the tracker stops following and says so (`following() == false`).

/// How much of one line is kept: enough for a request line's method and a `Content-Length` or
/// `Transfer-Encoding` value; longer lines are still skipped correctly.
const LINE_KEPT: usize = 256;

#[derive(Debug, Default)]
pub struct H1Framing {
    state: State,
    line: Vec<u8>,
    head: Head,
    /// Requests whose first byte has arrived.
    pub started: u64,
    /// Requests received completely (head and body).
    pub complete: u64,
    /// The connection opened with the h2 preface.
    pub h2: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    /// Between requests.
    #[default]
    Idle,
    /// In the request line or the headers.
    Head,
    /// Body bytes left.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The line break after a chunk's data.
    ChunkEnd,
    Trailers,
    /// Not HTTP/1 requests any more (h2, an upgrade, CONNECT).
    Opaque,
}

#[derive(Debug, Default)]
struct Head {
    request_line_seen: bool,
    content_length: u64,
    chunked: bool,
    upgrade: bool,
    connect: bool,
}

/// What one read carried.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// The request (its number on the connection) the last body bytes of this read belonged to (chunk framing
    /// and trailers count as body).
    pub body_of: Option<u64>,
}

impl H1Framing {
    /// Whether the bytes are still HTTP/1 requests this tracker understands.
    pub fn following(&self) -> bool {
        self.state != State::Opaque
    }

    pub fn feed(&mut self, mut bytes: &[u8]) -> Read {
        let mut read = Read::default();
        while !bytes.is_empty() {
            let used = match self.state {
                State::Opaque => return read,
                State::Idle | State::Head => self.head_bytes(bytes),
                State::Length(left) => {
                    read.body_of = Some(self.started);
                    let used = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - used as u64;
                    self.state = State::Length(left);
                    if left == 0 {
                        self.finish();
                    }
                    used
                }
                State::ChunkData(left) => {
                    read.body_of = Some(self.started);
                    let used = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - used as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    used
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    read.body_of = Some(self.started);
                    self.line_bytes(bytes)
                }
            };
            bytes = &bytes[used..];
        }
        read
    }

    /// Collects one line (up to and including `\n`); returns how many bytes it used.
    fn take_line(&mut self, bytes: &[u8]) -> (usize, bool) {
        match bytes.iter().position(|b| *b == b'\n') {
            Some(at) => {
                self.keep(&bytes[..at]);
                (at + 1, true)
            }
            None => {
                self.keep(bytes);
                (bytes.len(), false)
            }
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_KEPT.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    fn current_line(&mut self) -> Vec<u8> {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        line
    }

    fn head_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.state == State::Idle {
            // Empty lines before a request line are allowed and ignored.
            let blank = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank == bytes.len() {
                return blank;
            }
            self.state = State::Head;
            self.started += 1;
            self.head = Head::default();
            return blank;
        }
        let (used, ended) = self.take_line(bytes);
        if ended {
            let line = self.current_line();
            self.head_line(&line);
        }
        used
    }

    fn head_line(&mut self, line: &[u8]) {
        if !self.head.request_line_seen {
            self.head.request_line_seen = true;
            if line.starts_with(b"PRI * HTTP/2.0") {
                self.h2 = true;
                self.state = State::Opaque;
            }
            self.head.connect = line.starts_with(b"CONNECT ");
            return;
        }
        if line.is_empty() {
            self.state = if self.head.chunked {
                State::ChunkSize
            } else if self.head.content_length > 0 {
                State::Length(self.head.content_length)
            } else {
                State::Idle
            };
            if self.state == State::Idle {
                self.finish();
            }
            return;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            self.head.content_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.chunked = value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.head.upgrade = true;
        }
    }

    fn line_bytes(&mut self, bytes: &[u8]) -> usize {
        let (used, ended) = self.take_line(bytes);
        if !ended {
            return used;
        }
        let line = self.current_line();
        match self.state {
            State::ChunkEnd => self.state = State::ChunkSize,
            State::ChunkSize => {
                let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                let size = std::str::from_utf8(digits.trim_ascii())
                    .ok()
                    .and_then(|d| u64::from_str_radix(d, 16).ok())
                    .unwrap_or(0);
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
            }
            State::Trailers if line.is_empty() => self.finish(),
            _ => {}
        }
        used
    }

    fn finish(&mut self) {
        self.complete += 1;
        // After an upgrade request or a CONNECT the bytes may be a tunnel's: stop following.
        self.state = if self.head.upgrade || self.head.connect {
            State::Opaque
        } else {
            State::Idle
        };
    }
}

#[cfg(test)]
mod tests;
