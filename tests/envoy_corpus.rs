//! The configuration corpus, run through real Envoy 1.40 and through `outrigger validate`: both must accept
//! `valid/`, both must reject `invalid/`, and `unsupported/` holds what Envoy accepts and we deliberately
//! refuse (each file's first line gives the reason), where our error must name the feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{outrigger, peer, repo_root};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Valid,
    Invalid,
    Unsupported,
}

fn corpus() -> Vec<(PathBuf, Expect)> {
    let mut files = Vec::new();
    for (dir, expect) in [
        ("valid", Expect::Valid),
        ("invalid", Expect::Invalid),
        ("unsupported", Expect::Unsupported),
    ] {
        let dir = repo_root().join("tests/configs").join(dir);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "json"))
            .collect();
        entries.sort();
        files.extend(entries.into_iter().map(|p| (p, expect)));
    }
    // The sidecar's embedded default must be a config Envoy runs as well.
    files.push((repo_root().join("config/default.yaml"), Expect::Valid));
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Exit status and stderr of `outrigger validate FILE`.
fn outrigger_validate(file: &Path) -> (bool, String) {
    let output = outrigger()
        .args(["validate", &relative(file)])
        .output()
        .expect("run outrigger");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn envoy_accepts(envoy: &Path, file: &Path) -> (bool, String) {
    let output = Command::new(envoy)
        .current_dir(repo_root())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "critical",
            "-c",
        ])
        .arg(relative(file))
        .output()
        .expect("run envoy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn corpus_is_large_enough_and_labelled() {
    let files = corpus();
    assert!(
        files.len() >= 40,
        "the corpus needs at least 40 configs, has {}",
        files.len()
    );
    for expect in [Expect::Valid, Expect::Invalid, Expect::Unsupported] {
        assert!(
            files.iter().filter(|(_, e)| *e == expect).count() >= 6,
            "too few {expect:?} configs"
        );
    }
    for (file, expect) in &files {
        if *expect == Expect::Unsupported {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                text.starts_with("# unsupported: "),
                "{} must start with `# unsupported: <reason>`",
                relative(file)
            );
        }
    }
}

#[test]
fn outrigger_agrees_with_the_labels() {
    let mut wrong = Vec::new();
    for (file, expect) in corpus() {
        let (accepted, stderr) = outrigger_validate(&file);
        let name = relative(&file);
        match expect {
            Expect::Valid if !accepted => {
                wrong.push(format!("{name}: refused a valid config:\n{stderr}"))
            }
            Expect::Invalid | Expect::Unsupported if accepted => {
                wrong.push(format!("{name}: accepted it"))
            }
            Expect::Invalid | Expect::Unsupported => {
                // Every problem line names the file, a severity and a place.
                for line in stderr.lines() {
                    if !line.starts_with(&format!("{name}: error: "))
                        && !line.starts_with(&format!("{name}: warning: "))
                    {
                        wrong.push(format!("{name}: malformed problem line {line:?}"));
                    }
                }
                if expect == Expect::Unsupported
                    && !(stderr.contains("not implement")
                        || stderr.contains("not supported")
                        || stderr.contains("duplicate"))
                {
                    wrong.push(format!(
                        "{name}: the error does not name the unsupported feature:\n{stderr}"
                    ));
                }
            }
            Expect::Valid => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn envoy_and_outrigger_agree() {
    let Some(envoy) = peer("envoy") else { return };
    let files = corpus();
    // Envoy takes about 0.3 s a file; two threads halve the wait on a 2-core machine.
    let results: Vec<(PathBuf, Expect, bool, String)> = std::thread::scope(|scope| {
        let halves = files.chunks(files.len().div_ceil(2).max(1));
        let handles: Vec<_> = halves
            .map(|chunk| {
                let envoy = &envoy;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(f, e)| {
                            let (ok, text) = envoy_accepts(envoy, f);
                            (f.clone(), *e, ok, text)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("envoy thread"))
            .collect()
    });
    let mut disagreements = Vec::new();
    for (file, expect, envoy_ok, envoy_text) in results {
        let (ours_ok, ours_text) = outrigger_validate(&file);
        let name = relative(&file);
        let envoy_should = expect != Expect::Invalid;
        if envoy_ok != envoy_should {
            disagreements.push(format!(
                "{name}: Envoy {} it, but it is in {expect:?}:\n{envoy_text}",
                verdict(envoy_ok)
            ));
        }
        let ours_should = expect == Expect::Valid;
        if ours_ok != ours_should {
            disagreements.push(format!(
                "{name}: Outrigger {} it (Envoy {}):\n{ours_text}",
                verdict(ours_ok),
                verdict(envoy_ok)
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepts" } else { "rejects" }
}
