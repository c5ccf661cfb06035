//! `outrigger`: one binary for the sidecar's jobs. This file only parses the command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod await_sidecar;
mod ca;
mod control_plane;
mod inject;
mod iptables;
mod log_format;
mod memory;
mod run;
mod validate;
mod xds;

#[derive(Parser)]
#[command(
    name = "outrigger",
    version,
    about = "A small, fast service-mesh sidecar that speaks Envoy v3 configuration"
)]
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
    /// A development CA for SPIFFE identities (`init`, `issue`).
    #[command(subcommand)]
    Ca(ca::Command),
    /// Redirect the pod's traffic to the sidecar with iptables (the init step), or undo it, or show the rules.
    Iptables {
        #[arg(value_enum)]
        action: iptables::Action,
        #[command(flatten)]
        capture: iptables::Capture,
        /// iptables backend: auto (follow existing rules), nft or legacy.
        #[arg(long = "iptables-mode", value_enum, default_value = "auto")]
        mode: iptables::Mode,
        /// Also install the rules for IPv6 (ip6tables).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        ipv6: bool,
    },
    /// Wait until the local sidecar is ready, then run the app (start ordering without native sidecars).
    Await {
        /// The sidecar's admin address (its `/ready`).
        #[arg(long, default_value = "127.0.0.1:15000")]
        admin: std::net::SocketAddr,
        /// Give up (exit 1, without starting the app) when the sidecar is not ready by then.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// When the app exits, ask the sidecar to stop (`POST /quitquitquit`): for jobs.
        #[arg(long)]
        shutdown: bool,
        /// The app and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Serve the Envoy resources of a folder over xDS (ADS, state-of-the-world and delta) to Envoy or Outrigger.
    ControlPlane {
        /// Resource files (YAML or JSON, each a list of `resources` with their "@type"); a sub-folder named after
        /// a node id holds that node's own resources. Changes are picked up within a second.
        #[arg(long = "config-dir")]
        config_dir: PathBuf,
        /// Address of the gRPC server.
        #[arg(long, default_value = "127.0.0.1:15010")]
        listen: std::net::SocketAddr,
        /// Issue workload certificates with this CA (`outrigger ca init --out DIR`): a node whose metadata has
        /// `SPIFFE_ID`, or `NAMESPACE` and `SERVICE_ACCOUNT`, gets SDS secrets `default` (its certificate) and
        /// `ROOTCA` (the CA bundle), renewed at two thirds of their life.
        #[arg(long = "ca-dir")]
        ca_dir: Option<PathBuf>,
        /// Serve over TLS with this certificate chain (PEM); needs `--tls-key`.
        #[arg(long = "tls-cert", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of `--tls-cert` (PEM).
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this CA bundle (PEM): mutual TLS. Needs `--tls-cert`.
        #[arg(long = "client-ca", requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// How long issued certificates are valid.
        #[arg(long = "cert-ttl", default_value = "24h", value_parser = humantime::parse_duration)]
        cert_ttl: std::time::Duration,
        /// Log level: trace, debug, info, warn, error.
        #[arg(short = 'l', long = "log-level", default_value = "info")]
        log_level: String,
    },
    /// Add the Outrigger init and sidecar containers to the workloads of a Kubernetes manifest (like
    /// `istioctl kube-inject`); everything else passes through.
    Inject {
        /// The manifest (YAML, any number of documents); `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Write the result here instead of standard output.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        #[command(flatten)]
        options: inject::Options,
    },
    /// Run the sidecar: the embedded transparent-sidecar default, or the Envoy v3 bootstrap given with -c.
    Run {
        /// An Envoy v3 bootstrap file (YAML or JSON). Without it, the embedded default runs.
        #[arg(short = 'c', long = "config-path")]
        config: Option<PathBuf>,
        /// Print the embedded default configuration (Envoy YAML) and exit.
        #[arg(long)]
        print_default_config: bool,
        /// After SIGTERM (or POST /drain_listeners), exit once no connection is open, or after this many seconds.
        #[arg(long = "drain-time-s", default_value_t = 5)]
        drain_time_s: u64,
        /// Worker threads for the data path. Default: the CPUs this process may use (cgroup quota included).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Log level: trace, debug, info, warn, error (or a tracing filter such as `outrigger_proxy=debug`).
        #[arg(short = 'l', long = "log-level", default_value = "info")]
        log_level: String,
        /// The proxy's own log lines: `text`, or `json` (one object per line, for log pipelines).
        #[arg(long = "log-format", value_enum, default_value = "text")]
        log_format: log_format::LogFormat,
        /// The node id told to the control plane and shown on /server_info (replaces the bootstrap's `node.id`).
        #[arg(long = "service-node")]
        service_node: Option<String>,
        /// The node cluster told to the control plane (replaces the bootstrap's `node.cluster`).
        #[arg(long = "service-cluster")]
        service_cluster: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files, dump } => validate::run(&files, dump),
        Command::Ca(command) => ca::run(command),
        Command::Iptables {
            action,
            capture,
            mode,
            ipv6,
        } => iptables::run(action, &capture, mode, ipv6),
        Command::Await {
            admin,
            timeout,
            shutdown,
            command,
        } => await_sidecar::run(await_sidecar::Args {
            admin,
            timeout,
            shutdown,
            command,
        }),
        Command::ControlPlane {
            config_dir,
            listen,
            ca_dir,
            cert_ttl,
            tls_cert,
            tls_key,
            client_ca,
            log_level,
        } => control_plane::run(
            config_dir,
            listen,
            ca_dir.map(|dir| (dir, cert_ttl)),
            tls_cert
                .zip(tls_key)
                .map(|(cert, key)| control_plane::TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
            &log_level,
        ),
        Command::Inject {
            file,
            output,
            options,
        } => inject::run(&file, output.as_deref(), &options),
        Command::Run {
            config,
            print_default_config,
            drain_time_s,
            concurrency,
            log_level,
            log_format,
            service_node,
            service_cluster,
        } => run::run(run::Args {
            config,
            print_default_config,
            drain_time: std::time::Duration::from_secs(drain_time_s),
            concurrency,
            log_level,
            log_format,
            service_node,
            service_cluster,
        }),
    }
}
