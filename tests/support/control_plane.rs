//! `outrigger control-plane` as a process serving a folder, stopped when dropped.

use super::ChildGuard;
use super::tcp::free_port;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct ControlPlane {
    _guard: ChildGuard,
    pub log: PathBuf,
    pub port: u16,
}

impl ControlPlane {
    /// Serves `dir` on a free port; its log is `dir` with `.log` added.
    pub fn start(dir: &Path) -> ControlPlane {
        Self::start_with(dir, &[])
    }

    /// With more arguments (`--tls-cert`, ...).
    pub fn start_with(dir: &Path, args: &[&OsStr]) -> ControlPlane {
        Self::start_at(dir, free_port(), args)
    }

    /// On 127.0.0.1:`port` (a control plane started again where a stopped one was); waits until it listens.
    pub fn start_at(dir: &Path, port: u16, args: &[&OsStr]) -> ControlPlane {
        let log = dir.with_extension("log");
        let child = super::outrigger()
            .args(["control-plane", "--config-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let guard = ChildGuard(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the control plane did not listen on {port}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ControlPlane {
            _guard: guard,
            log,
            port,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
