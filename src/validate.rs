//! `outrigger validate`: exit 0 when every file loads, 1 otherwise, with one line per problem. Like Envoy's
//! validate mode, it also reads the certificates, keys and trust bundles the configuration names, so a file
//! that `outrigger run` could not use is refused here with the same words.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(files: &[PathBuf], dump: bool) -> ExitCode {
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    for file in files {
        let shown = file.display();
        match outrigger_config::load_file(file) {
            Ok(loaded) => {
                for warning in loaded.warnings.iter() {
                    eprintln!("{shown}: {warning}");
                }
                if let Err(problem) = outrigger_proxy::tls::Contexts::new(&loaded.snapshot) {
                    eprintln!("{shown}: error: TLS: {problem}");
                    failed = true;
                    continue;
                }
                if dump {
                    match serde_yaml_ng::to_string(&loaded.snapshot) {
                        Ok(yaml) => {
                            let _ =
                                writeln!(stdout, "# effective configuration of {shown}\n{yaml}");
                        }
                        Err(e) => {
                            eprintln!(
                                "{shown}: error: cannot print the effective configuration: {e}"
                            );
                            failed = true;
                        }
                    }
                } else {
                    let _ = writeln!(stdout, "{shown}: OK");
                }
            }
            Err(problems) => {
                failed = true;
                for problem in problems.iter() {
                    eprintln!("{shown}: {problem}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
