//! `outrigger`: one binary for the sidecar's jobs. This file only parses the command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod validate;

#[derive(Parser)]
#[command(name = "outrigger", version, about = "A small, fast service-mesh sidecar that speaks Envoy v3 configuration")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load configuration files exactly as the proxy would and report every problem (like `envoy --mode validate`).
    Validate {
        /// Envoy v3 bootstrap files, YAML or JSON (by extension).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the effective configuration, every default filled in, as YAML.
        #[arg(long)]
        dump: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files, dump } => validate::run(&files, dump),
    }
}
