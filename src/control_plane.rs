//! `outrigger control-plane`: the file-backed xDS server (`outrigger_control_api::control_plane`) until SIGTERM.

use outrigger_control_api::control_plane::ControlPlane;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(config_dir: PathBuf, listen: SocketAddr, log_level: &str) -> ExitCode {
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
        let server = match ControlPlane::bind(config_dir.clone(), listen).await {
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
