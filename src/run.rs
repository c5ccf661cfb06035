//! `outrigger run`: load the configuration, then serve it.
//!
//! The data path (listeners, forwarding, admin) is not built yet; until it is, `run` loads and checks the
//! configuration exactly as it will, says so, and exits with status 2 rather than pretending to proxy.

use std::path::Path;
use std::process::ExitCode;

pub fn run(config: Option<&Path>, print_default_config: bool) -> ExitCode {
    if print_default_config {
        print!("{}", outrigger_config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    let (source, loaded) = match config {
        Some(path) => (
            path.display().to_string(),
            outrigger_config::load_file(path),
        ),
        None => (
            "the embedded default".to_string(),
            outrigger_config::load_default(),
        ),
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            for problem in problems.iter() {
                eprintln!("{source}: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    for warning in loaded.warnings.iter() {
        eprintln!("{source}: {warning}");
    }
    let snapshot = &loaded.snapshot;
    eprintln!(
        "outrigger: {source} is valid: {} listeners, {} clusters",
        snapshot.listeners.len(),
        snapshot.clusters.len()
    );
    eprintln!(
        "outrigger: the data path is not built yet, so nothing is served; see the README's status section"
    );
    ExitCode::from(2)
}
