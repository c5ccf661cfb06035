//! `outrigger control-plane`: the file-backed xDS server (`outrigger_control_api::control_plane`) until SIGTERM.

use outrigger_control_api::control_plane::ControlPlane;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `ca`: `--ca-dir` and `--cert-ttl`, to issue workload certificates.
pub fn run(
    config_dir: PathBuf,
    listen: SocketAddr,
    ca: Option<(PathBuf, std::time::Duration)>,
    log_level: &str,
) -> ExitCode {
    let _ = crate::run::init_logging(log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outrigger: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let bound = match &ca {
            Some((dir, ttl)) => ControlPlane::bind_issuing(config_dir.clone(), listen, dir, *ttl).await,
            None => ControlPlane::bind(config_dir.clone(), listen).await,
        };
        let server = match bound {
            Ok(server) => server,
            Err(e) => {
                eprintln!("outrigger control-plane: {e}");
                return ExitCode::FAILURE;
            }
        };
        let address = server.local_addr().map_or(listen, |a| a);
        tracing::info!(%address, folder = %config_dir.display(), "serving xDS (ADS, state-of-the-world and delta)");
        match server.serve(crate::run::signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("outrigger control-plane: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
