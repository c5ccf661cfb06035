//! Opaque TCP throughput: each connection writes fixed chunks as fast as it can while it reads the echo back;
//! the figure is the echoed bytes read during the measured window.

use super::{Errors, Window};
use anyhow::Context;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
pub struct Options {
    pub target: SocketAddr,
    pub connections: usize,
    pub chunk: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub target: String,
    pub connections: usize,
    pub chunk: usize,
    pub duration_s: f64,
    pub bytes: u64,
    pub mib_per_s: f64,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

async fn connection(stream: TcpStream, chunk: usize, window: Window) -> (u64, Errors) {
    let mut errors = Errors::default();
    let (mut reader, mut writer) = stream.into_split();
    let end = window.end;
    let write = tokio::spawn(async move {
        let data = vec![0x5a_u8; chunk];
        while tokio::time::Instant::now() < end {
            if writer.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut bytes = 0;
    loop {
        match tokio::time::timeout_at(end, reader.read(&mut buffer)).await {
            Err(_) | Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                if window.measures(tokio::time::Instant::now()) {
                    bytes += n as u64;
                }
            }
            Ok(Err(e)) => {
                errors.add(format!("read: {e}"));
                break;
            }
        }
    }
    // The writer may be blocked on a full buffer now that nobody reads: stop it.
    write.abort();
    (bytes, errors)
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.connections > 0 && options.chunk > 0,
        "connections and chunk must be at least 1"
    );
    let mut streams = Vec::new();
    for _ in 0..options.connections {
        let connect = TcpStream::connect(options.target);
        let stream = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {} timed out", options.target))?
            .with_context(|| format!("connect {}", options.target))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let window = Window::new(options.warmup, options.duration);
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(connection(s, options.chunk, window)))
        .collect();
    let mut bytes = 0;
    let mut errors = Errors::default();
    for task in tasks {
        let (n, e) = task.await?;
        bytes += n;
        errors.merge(e);
    }
    let seconds = options.duration.as_secs_f64();
    Ok(Report {
        mode: "tcp",
        target: options.target.to_string(),
        connections: options.connections,
        chunk: options.chunk,
        duration_s: seconds,
        bytes,
        mib_per_s: bytes as f64 / (1024.0 * 1024.0) / seconds,
        errors: errors.count,
        error_samples: errors.samples,
    })
}
