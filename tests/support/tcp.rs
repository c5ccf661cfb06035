//! Plain TCP test servers: an echo server, a server that speaks first (like MySQL or SMTP), and one that resets.

use std::future::Future;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves every connection on a free loopback port with `handle`, until dropped.
async fn serve<F, Fut>(handle: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(handle(stream));
        }
    });
    Server { address, task }
}

/// Echoes everything back, then closes its side once the client has closed its own.
pub async fn echo() -> Server {
    serve(|mut stream| async move {
        let (mut read, mut write) = stream.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
        let _ = write.shutdown().await;
    })
    .await
}

/// Greets every connection with `greeting` before reading anything.
pub async fn speaks_first(greeting: &'static [u8]) -> Server {
    serve(move |mut stream| async move {
        let _ = stream.write_all(greeting).await;
        let mut sink = [0u8; 64];
        let _ = stream.read(&mut sink).await;
    })
    .await
}

/// Accepts connections and closes them at once, before any response (an upstream reset).
pub async fn closes_at_once() -> Server {
    serve(|mut stream| async move {
        let mut first = [0u8; 1];
        let _ = stream.read(&mut first).await;
    })
    .await
}

/// A loopback port nothing listens on now.
/// A loopback port nothing listens on now.
/// Waits (up to 10 s) until something accepts connections on 127.0.0.1:`port`; `what` names it if not.
pub async fn wait_until_listening(port: u16, what: &str) {
    let started = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{what} did not start listening on {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A loopback port nothing listens on, for a server started later (by another process, so it cannot be handed
/// a bound socket). Taken below the kernel's ephemeral range (32768 and up here), where outgoing connections
/// pick their source ports, and never the same twice in one test process: asking the kernel for port 0 and
/// releasing it let a connection's source port, or another test, take it before the server bound it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Each test binary starts at its own place in 20000..32000, so concurrent binaries rarely meet.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = (std::process::id() % 1_000) * 12;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % 12_000;
        let port = 20_000 + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
