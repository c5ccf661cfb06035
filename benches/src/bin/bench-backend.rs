//! `bench-backend`: the fixed backend of the benchmarks (see `outrigger_benches::backend`).

use clap::Parser;
use outrigger_benches::backend;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    about = "The benchmarks' backend: 1 KiB HTTP/1.1 and h2c answers, gRPC unary echo, TCP echo"
)]
struct Cli {
    /// HTTP/1.1 + h2c + gRPC address.
    #[arg(long, default_value = "127.0.0.1:21000")]
    http: SocketAddr,
    /// TCP echo address.
    #[arg(long, default_value = "127.0.0.1:21001")]
    tcp: SocketAddr,
    /// Exit after this many seconds even if nobody stops it.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let http = TcpListener::bind(cli.http).await?;
        let tcp = TcpListener::bind(cli.tcp).await?;
        tokio::spawn(backend::serve_http(http));
        tokio::spawn(backend::serve_tcp_echo(tcp));
        tokio::time::sleep(Duration::from_secs(cli.max_seconds)).await;
        Ok(())
    })
}
