//! Protocol detection by peeking at a connection's first bytes, without consuming them: a TLS ClientHello (SNI
//! and ALPN, as `tls_inspector`), the h2 preface or an HTTP/1 request line (as `http_inspector`).

pub mod client_hello;

use std::time::Duration;
use tokio::net::TcpStream;

/// What the first bytes say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detected {
    pub tls: bool,
    pub server_name: Option<String>,
    /// From the ClientHello's ALPN, or `http/1.1` / `h2c` from plaintext HTTP.
    pub application_protocols: Vec<String>,
}

/// The answer from the bytes seen so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Known(Detected),
    /// Not enough bytes yet to tell.
    NeedMore,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
/// Envoy's inspectors read at most this much.
const PEEK_LIMIT: usize = 16 * 1024;

/// Classifies a prefix of the stream.
pub fn classify(bytes: &[u8], tls: bool, http: bool) -> Verdict {
    if bytes.is_empty() {
        return Verdict::NeedMore;
    }
    if tls && bytes[0] == 0x16 {
        return match client_hello::parse(bytes) {
            client_hello::Parsed::Hello { server_name, alpn } => Verdict::Known(Detected {
                tls: true,
                server_name,
                application_protocols: alpn,
            }),
            client_hello::Parsed::Incomplete if bytes.len() < PEEK_LIMIT => Verdict::NeedMore,
            _ => Verdict::Known(Detected::default()),
        };
    }
    if !http {
        return Verdict::Known(Detected::default());
    }
    let prefix = &bytes[..bytes.len().min(H2_PREFACE.len())];
    if H2_PREFACE.starts_with(prefix) {
        return if bytes.len() >= H2_PREFACE.len() {
            known_http("h2c")
        } else {
            Verdict::NeedMore
        };
    }
    http1(bytes)
}

fn known_http(protocol: &str) -> Verdict {
    Verdict::Known(Detected {
        application_protocols: vec![protocol.to_string()],
        ..Detected::default()
    })
}

/// `METHOD SP target SP HTTP/1.x CRLF`.
fn http1(bytes: &[u8]) -> Verdict {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n");
    let line = &bytes[..line_end.unwrap_or(bytes.len())];
    let method_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let method = &line[..method_end];
    let known_method = METHODS.iter().any(|m| m.as_bytes() == method);
    let could_be_method = METHODS.iter().any(|m| m.as_bytes().starts_with(method));
    if method_end == line.len() {
        // No space yet: still inside the method, or not HTTP at all.
        return if could_be_method && line_end.is_none() {
            Verdict::NeedMore
        } else {
            Verdict::Known(Detected::default())
        };
    }
    if !known_method {
        return Verdict::Known(Detected::default());
    }
    match line_end {
        None if bytes.len() < PEEK_LIMIT => Verdict::NeedMore,
        None => Verdict::Known(Detected::default()),
        Some(_) if line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0") => {
            known_http("http/1.1")
        }
        Some(_) => Verdict::Known(Detected::default()),
    }
}

/// Peeks until the bytes tell, or until `timeout`. `None` means the time ran out first.
pub async fn detect(
    stream: &TcpStream,
    tls: bool,
    http: bool,
    timeout: Option<Duration>,
) -> Option<Detected> {
    let work = async {
        let mut buffer = vec![0u8; PEEK_LIMIT];
        let mut pause = Duration::from_millis(1);
        let mut last_len = usize::MAX;
        loop {
            let n = match stream.peek(&mut buffer).await {
                Ok(n) => n,
                Err(_) => return Detected::default(),
            };
            if n == 0 {
                // The peer closed before saying anything recognisable.
                return Detected::default();
            }
            match classify(&buffer[..n], tls, http) {
                Verdict::Known(detected) => return detected,
                Verdict::NeedMore if n == last_len => {
                    // `peek` returns at once while data is buffered; wait a little for more to arrive.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Verdict::NeedMore => last_len = n,
            }
        }
    };
    match timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_and_h2c_are_told_apart() {
        assert_eq!(
            classify(b"GET /x HTTP/1.1\r\nHost: a\r\n", false, true),
            known_http("http/1.1")
        );
        assert_eq!(classify(b"GE", false, true), Verdict::NeedMore);
        assert_eq!(classify(b"GET /long/path", false, true), Verdict::NeedMore);
        assert_eq!(classify(H2_PREFACE, false, true), known_http("h2c"));
        assert_eq!(classify(&H2_PREFACE[..10], false, true), Verdict::NeedMore);
    }

    #[test]
    fn other_protocols_are_opaque() {
        let opaque = Verdict::Known(Detected::default());
        assert_eq!(
            classify(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", false, true),
            opaque
        ); // Postgres SSLRequest
        assert_eq!(classify(b"*1\r\n$4\r\nPING\r\n", false, true), opaque); // Redis
        assert_eq!(classify(b"GET\r\n", false, true), opaque);
        assert_eq!(classify(b"FOO / HTTP/1.1\r\n", false, true), opaque);
    }

    #[tokio::test]
    async fn detection_gives_up_at_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let result = detect(&server, true, true, Some(Duration::from_millis(50))).await;
        assert_eq!(result, None);
    }
}
