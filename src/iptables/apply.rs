//! Applying the rules: read the nat table, drop what is ours, add ours back (or not), and write the table in
//! one `iptables-restore` transaction, so a failure leaves the previous rules whole.

use super::Mode;
use super::rules::{self, Capture, Family};
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadFlag(String),
    #[error(
        "{command} was not found; install the iptables package (Debian: apt-get install iptables)"
    )]
    Missing { command: String },
    #[error(
        "{command} failed: {detail}\n  changing iptables rules needs root or the NET_ADMIN capability (in Kubernetes: \
         securityContext.capabilities.add: [NET_ADMIN, NET_RAW]); nothing was changed"
    )]
    Denied { command: String, detail: String },
    #[error("{command} failed: {detail}; nothing was changed")]
    Failed { command: String, detail: String },
}

pub fn install(capture: &Capture, family: Family, mode: Mode) -> Result<(), Error> {
    rules::validate(capture).map_err(Error::BadFlag)?;
    let base = backend(mode, family)?;
    let existing = rules::nat_without_ours(&save(&base, family)?);
    restore(
        &base,
        family,
        &rules::nat_table(existing, rules::rules(capture, family)),
    )
}

pub fn uninstall(family: Family, mode: Mode) -> Result<(), Error> {
    let base = backend(mode, family)?;
    let existing = rules::nat_without_ours(&save(&base, family)?);
    restore(&base, family, &rules::nat_table(existing, Vec::new()))
}

/// Which iptables to drive. `Auto` follows the rules already present: a namespace set up with the legacy
/// backend keeps using it; otherwise the system's default `iptables`.
fn backend(mode: Mode, family: Family) -> Result<String, Error> {
    Ok(match mode {
        Mode::Nft => "iptables-nft".into(),
        Mode::Legacy => "iptables-legacy".into(),
        Mode::Auto => {
            let has_rules = |base: &str| {
                Command::new(family.save_command(base))
                    .output()
                    .is_ok_and(|o| {
                        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\n-A ")
                    })
            };
            if has_rules("iptables-legacy") && !has_rules("iptables-nft") {
                "iptables-legacy"
            } else {
                "iptables"
            }
            .into()
        }
    })
}

fn save(base: &str, family: Family) -> Result<String, Error> {
    let command = family.save_command(base);
    let output = Command::new(&command)
        .args(["-t", "nat"])
        .output()
        .map_err(|e| missing(&command, e))?;
    if !output.status.success() {
        return Err(failure(&command, &String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn restore(base: &str, family: Family, script: &str) -> Result<(), Error> {
    let command = family.restore_command(base);
    let mut child = Command::new(&command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(&command, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| failure(&command, &e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failure(&command, &e.to_string()))?;
    if !output.status.success() {
        return Err(failure(&command, &String::from_utf8_lossy(&output.stderr)));
    }
    Ok(())
}

fn missing(command: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Missing {
            command: command.to_string(),
        }
    } else {
        failure(command, &e.to_string())
    }
}

fn failure(command: &str, detail: &str) -> Error {
    let detail = detail.trim().to_string();
    let denied = [
        "Permission denied",
        "you must be root",
        "Operation not permitted",
    ];
    if denied.iter().any(|d| detail.contains(d)) {
        Error::Denied {
            command: command.to_string(),
            detail,
        }
    } else {
        Error::Failed {
            command: command.to_string(),
            detail,
        }
    }
}
