//! `bench-run`: the side-by-side benchmark; `bash benches/run` finds the peers and calls it.

use clap::Parser;
use outrigger_benches::run::{self, Settings};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Outrigger, Envoy, haproxy and nginx side by side (use `bash benches/run`)")]
struct Cli {
    #[arg(long)]
    outrigger: PathBuf,
    #[arg(long)]
    envoy: Option<PathBuf>,
    #[arg(long)]
    haproxy: Option<PathBuf>,
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// nginx's dynamic stream module (for scenario e); without it nginx's TCP figure is n/a.
    #[arg(long)]
    nginx_stream_module: Option<PathBuf>,
    /// The `bench-load` binary.
    #[arg(long)]
    load: PathBuf,
    /// The `bench-backend` binary.
    #[arg(long)]
    backend: PathBuf,
    /// Where results.json, results.md and work/ (configs, logs) go.
    #[arg(long, default_value_os_t = run::default_out())]
    out: PathBuf,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Runs per scenario and target.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// The kernel's clock ticks per second (`getconf CLK_TCK`), for /proc CPU times.
    #[arg(long, default_value_t = 100.0)]
    clock_ticks: f64,
    /// First port; the run uses ports up to base + 600 on 127.0.0.1.
    #[arg(long, default_value_t = 21000)]
    port_base: u16,
    /// Scenarios to run, by letter.
    #[arg(long, default_value = "abcdefghij")]
    scenarios: String,
    /// The machine, as shown with the table.
    #[arg(long, default_value = "")]
    machine: String,
    /// The date of the run.
    #[arg(long, default_value = "")]
    date: String,
    /// Versions of the peers, as one line.
    #[arg(long, default_value = "")]
    versions: String,
    /// How busy the machine was when the run started (e.g. the load average), shown with the table.
    #[arg(long, default_value = "")]
    conditions: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let about = serde_json::json!({
        "machine": cli.machine,
        "date": cli.date,
        "versions": cli.versions,
        "conditions": cli.conditions,
    });
    run::main(Settings {
        outrigger: cli.outrigger,
        envoy: cli.envoy,
        haproxy: cli.haproxy,
        nginx: cli.nginx,
        nginx_stream_module: cli.nginx_stream_module,
        load: cli.load,
        backend: cli.backend,
        out: cli.out,
        warmup: cli.warmup,
        duration: cli.duration,
        repeats: cli.repeats,
        clock_ticks: cli.clock_ticks,
        port_base: cli.port_base,
        scenarios: cli.scenarios,
        about,
    })
}
