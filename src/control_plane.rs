//! `outrigger control-plane`: the file-backed xDS server (`outrigger_control_api::control_plane`) until SIGTERM.

use outrigger_control_api::control_plane::{ControlPlane, ServerTls};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The server's TLS files: `--tls-cert`, `--tls-key` and, for mutual TLS, `--client-ca`.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn read(&self) -> Result<ServerTls, String> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
        };
        Ok(ServerTls {
            certificate_chain: read("--tls-cert", &self.cert)?,
            private_key: read("--tls-key", &self.key)?,
            client_ca: self
                .client_ca
                .as_ref()
                .map(|ca| read("--client-ca", ca))
                .transpose()?,
        })
    }
}

/// `ca`: `--ca-dir` and `--cert-ttl`, to issue workload certificates; `tls`: serve over (m)TLS.
pub fn run(
    config_dir: PathBuf,
    listen: SocketAddr,
    ca: Option<(PathBuf, std::time::Duration)>,
    tls: Option<TlsFiles>,
    log_level: &str,
) -> ExitCode {
    let _ = crate::run::init_logging(log_level);
    let tls = match tls.as_ref().map(TlsFiles::read).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("outrigger control-plane: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    let has_tls = tls.is_some();
    runtime.block_on(async {
        let bound = match &ca {
            Some((dir, ttl)) => ControlPlane::bind_issuing(config_dir.clone(), listen, dir, *ttl).await,
            None => ControlPlane::bind(config_dir.clone(), listen).await,
        };
        let mutual = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let server = match bound {
            Ok(server) => match tls {
                Some(tls) => server.with_tls(tls),
                None => server,
            },
            Err(e) => {
                eprintln!("outrigger control-plane: {e}");
                return ExitCode::FAILURE;
            }
        };
        let address = server.local_addr().map_or(listen, |a| a);
        tracing::info!(%address, folder = %config_dir.display(), tls = tls_mode(mutual, has_tls), "serving xDS (ADS, state-of-the-world and delta)");
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

fn tls_mode(mutual: bool, tls: bool) -> &'static str {
    match (tls, mutual) {
        (false, _) => "plaintext",
        (true, false) => "TLS",
        (true, true) => "mutual TLS (client certificates required)",
    }
}
