//! `outrigger iptables install|uninstall|print`: the init step that makes a pod's traffic go through the
//! sidecar. Flags and defaults follow Istio's `istio-iptables`, so existing injection templates carry over.

mod apply;
mod rules;

pub use rules::Capture;

use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Add (or replace) Outrigger's rules, in one iptables-restore transaction per table.
    Install,
    /// Remove exactly Outrigger's rules and chains.
    Uninstall,
    /// Print the iptables-restore script `install` would apply, without applying it.
    Print,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The backend already holding rules in this namespace, else the default `iptables`.
    Auto,
    Nft,
    Legacy,
}

pub fn run(action: Action, capture: &Capture, mode: Mode, ipv6: bool) -> ExitCode {
    let families: &[rules::Family] = if ipv6 {
        &[rules::Family::V4, rules::Family::V6]
    } else {
        &[rules::Family::V4]
    };
    if action == Action::Print {
        for family in families {
            println!(
                "# {} ({})",
                family.restore_command("iptables"),
                family.name()
            );
            print!("{}", rules::install_script(capture, *family));
        }
        return ExitCode::SUCCESS;
    }
    for (done, family) in families.iter().enumerate() {
        let result = match action {
            Action::Install => apply::install(capture, *family, mode),
            Action::Uninstall => apply::uninstall(*family, mode),
            Action::Print => Ok(()),
        };
        if let Err(e) = result {
            eprintln!(
                "outrigger iptables: {} ({}): {e}",
                action_name(action),
                family.name()
            );
            // No half-installed state: take back what the other family already got.
            if action == Action::Install {
                for installed in &families[..done] {
                    if let Err(undo) = apply::uninstall(*installed, mode) {
                        eprintln!(
                            "outrigger iptables: could not undo the {} rules: {undo}",
                            installed.name()
                        );
                    }
                }
            }
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Install => "install",
        Action::Uninstall => "uninstall",
        Action::Print => "print",
    }
}
