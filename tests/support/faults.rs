//! Misbehaving peers for the fault tests: an upstream that resets every other connection, and a DNS server
//! whose answers the test switches (an address, "no such name", or silence).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// Connections 1, 3, 5, ... are reset (RST) once the request has arrived; 2, 4, 6, ... get a 200 and are
/// closed (`connection: close`), so every request needs a connection of its own.
pub struct Resetter {
    pub address: SocketAddr,
    pub connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Resetter {
    pub async fn start() -> Resetter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    if number % 2 == 1 {
                        // SO_LINGER 0: closing sends RST instead of FIN.
                        let _ = stream.set_zero_linger();
                        return;
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-backend: resetter\r\nconnection: close\r\n\r\nok")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Resetter {
            address,
            connections,
            task,
        }
    }
}

/// What the DNS server answers now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DnsMode {
    /// The name's A record (and no AAAA record).
    Answer = 0,
    /// NXDOMAIN: the name does not exist.
    NoSuchName = 1,
    /// Nothing: queries time out.
    Silent = 2,
}

/// A DNS server on UDP for one name, answering as its mode says; any other name is NXDOMAIN.
pub struct Dns {
    mode: Arc<AtomicU8>,
    pub queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dns {
    /// Serves on `address` (bound here, so a taken port fails now, naming it).
    pub async fn start(address: SocketAddr, name: &str, ip: Ipv4Addr) -> Dns {
        let socket = UdpSocket::bind(address)
            .await
            .unwrap_or_else(|e| panic!("the test's DNS server cannot bind {address} (UDP): {e}"));
        let mode = Arc::new(AtomicU8::new(DnsMode::Answer as u8));
        let queries = Arc::new(AtomicU64::new(0));
        let (current, counted, name) = (mode.clone(), queries.clone(), name.to_ascii_lowercase());
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let mode = current.load(Ordering::SeqCst);
                if mode == DnsMode::Silent as u8 {
                    continue;
                }
                if let Some(reply) = reply(&buffer[..n], &name, ip, mode == DnsMode::Answer as u8) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Dns {
            mode,
            queries,
            task,
        }
    }

    pub fn set(&self, mode: DnsMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

/// The reply to one query (RFC 1035 section 4): the header with QR, AA and RA set, the question echoed, and
/// for an A question about `name` (when `exists`) one answer pointing back at the question's name.
fn reply(query: &[u8], name: &str, ip: Ipv4Addr, exists: bool) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    // The question's name: labels up to the root (no compression in a question we are asked).
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_ascii_lowercase());
        at += length;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let known = exists && labels.join(".") == name;
    let answer = known && qtype == 1;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    // Opcode and RD copied; QR, AA, RA set; RCODE 3 (NXDOMAIN) for a name that does not exist.
    let flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | if known { 0 } else { 3 };
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&header[..2]);
    reply.extend_from_slice(&flags.to_be_bytes());
    reply.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if answer {
        // Name: a pointer to offset 12; type A, class IN, TTL 1 s, four bytes of address.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}
