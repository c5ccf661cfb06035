//! Shared helpers for the end-to-end tests.

#![allow(dead_code)]

pub mod backend;
pub mod client;
pub mod control_plane;
pub mod envoy;
pub mod faults;
pub mod load;
pub mod netns;
pub mod pki;
pub mod proxy;
pub mod sidecar;
pub mod tcp;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: tests run from here, since the corpus refers to certificates by relative path.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `outrigger` binary built for this test run, or `$OUTRIGGER_BIN` (for a target directory that several
/// worktrees share, where the built binary's path may hold another worktree's build).
pub fn outrigger() -> Command {
    let binary = std::env::var_os("OUTRIGGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_outrigger")));
    let mut command = Command::new(binary);
    command.current_dir(repo_root());
    command
}

/// True under CI, where a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A third-party program the test needs (`envoy`, `curl`, ...), found on PATH or through `$<NAME>_BIN`.
/// Outside CI a missing one returns `None` so the caller can say what it skipped; under CI it fails the test.
pub fn peer(name: &str) -> Option<PathBuf> {
    let override_var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    let found = std::env::var_os(&override_var)
        .map(PathBuf::from)
        .or_else(|| find_on_path(name));
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required under CI=true but was not found on PATH (or in ${override_var}); .ci/run installs it"
        );
        eprintln!(
            "note: {name} not found; the parts of this test that need it are not run (they are in CI)"
        );
    }
    found
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python interpreter that has grpcio, or `None` (a failure under CI) when there is none.
pub fn python_with_grpcio() -> Option<PathBuf> {
    let python = peer("python3")?;
    let has_grpcio = Command::new(&python)
        .args(["-c", "import grpc, grpc_health.v1.health"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_grpcio {
        assert!(
            !in_ci(),
            "python3 lacks grpcio under CI=true; .ci/run installs it"
        );
        eprintln!(
            "note: grpcio is not installed; the grpcio interop test is not run (it is in CI)"
        );
        return None;
    }
    Some(python)
}

/// Stops a peer process when the test ends, whatever happens (stdin closed first, then killed).
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python grpcio peer (`tests/peers/grpc_peer.py MODE`) started as a server: its guard, the port it printed
/// first, and the rest of its standard output (read after its standard input is closed).
pub struct GrpcioServer {
    pub guard: ChildGuard,
    pub port: u16,
    pub stdout: std::io::BufReader<std::process::ChildStdout>,
}

/// Starts `grpc_peer.py MODE` with `python` and waits for it to print its port.
pub fn grpcio_server(python: &Path, mode: &str) -> GrpcioServer {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut guard = ChildGuard(
        Command::new(python)
            .arg(grpc_peer_script())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(guard.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = line.trim().parse().expect("the peer prints its port");
    GrpcioServer {
        guard,
        port,
        stdout,
    }
}

/// The Python gRPC peer script.
pub fn grpc_peer_script() -> PathBuf {
    repo_root().join("tests/peers/grpc_peer.py")
}
