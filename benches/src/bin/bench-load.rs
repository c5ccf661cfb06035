//! `bench-load`: the benchmarks' load generator; prints one JSON report on stdout (see `outrigger_benches::load`).

use clap::{Parser, Subcommand};
use outrigger_benches::load::{http, tcp};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Load generator: HTTP/1.1, h2c, gRPC unary (closed or open loop) and TCP throughput"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// HTTP requests; closed loop unless --rate is given.
    Http {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, value_enum, default_value = "h1")]
        protocol: http::Protocol,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Concurrent streams per connection (h2 and gRPC).
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Fixed rate in requests per second over all connections (open loop, coordinated omission corrected).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds sent but not recorded, before the measurement.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds a request may take before it counts as an error.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// TCP echo throughput.
    Tcp {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Bytes per write.
        #[arg(long, default_value_t = 65536)]
        chunk: usize,
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
}

fn seconds(s: f64) -> anyhow::Result<Duration> {
    Ok(Duration::try_from_secs_f64(s)?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = match cli.mode {
        Mode::Http {
            target,
            protocol,
            connections,
            streams,
            rate,
            warmup,
            duration,
            timeout,
        } => {
            let options = http::Options {
                target,
                protocol,
                connections,
                streams,
                rate,
                warmup: seconds(warmup)?,
                duration: seconds(duration)?,
                timeout: seconds(timeout)?,
            };
            serde_json::to_string(&runtime.block_on(http::run(options))?)?
        }
        Mode::Tcp {
            target,
            connections,
            chunk,
            warmup,
            duration,
        } => {
            let options = tcp::Options {
                target,
                connections,
                chunk,
                warmup: seconds(warmup)?,
                duration: seconds(duration)?,
            };
            serde_json::to_string(&runtime.block_on(tcp::run(options))?)?
        }
    };
    println!("{report}");
    Ok(())
}
