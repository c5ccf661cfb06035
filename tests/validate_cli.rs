//! `outrigger validate` as a user runs it: exit codes, one line per problem, and `--dump`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::outrigger;

#[test]
fn exit_zero_when_every_file_loads() {
    let output = outrigger()
        .args([
            "validate",
            "tests/configs/valid/03-tcp-proxy-single-cluster.yaml",
            "config/default.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(": OK")).count(),
        2,
        "{stdout}"
    );
}

#[test]
fn exit_one_with_file_path_and_reason_per_problem() {
    let output = outrigger()
        .args([
            "validate",
            "tests/configs/valid/03-tcp-proxy-single-cluster.yaml",
            "tests/configs/invalid/08-unknown-lb-policy.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tests/configs/invalid/08-unknown-lb-policy.yaml: error: static_resources.clusters[0].lb_policy: unknown enum value 'FASTEST_RESPONSE'"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let output = outrigger()
        .args(["validate", "no/such/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no/such/file.yaml: error:") && stderr.contains("cannot read the file"),
        "{stderr}"
    );
}

#[test]
fn dump_prints_the_effective_config_with_defaults() {
    let output = outrigger()
        .args([
            "validate",
            "--dump",
            "tests/configs/valid/03-tcp-proxy-single-cluster.yaml",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let yaml = String::from_utf8_lossy(&output.stdout);
    let dumped: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("the dump is YAML");
    let cluster = &dumped["clusters"][0];
    // Defaults the file does not write.
    assert_eq!(cluster["connect_timeout"].as_str(), Some("2s"), "{yaml}");
    assert_eq!(cluster["lb_policy"].as_str(), Some("ROUND_ROBIN"), "{yaml}");
    assert_eq!(
        cluster["circuit_breakers"]["default"]["max_pending_requests"].as_u64(),
        Some(1024),
        "{yaml}"
    );
}

#[test]
fn run_prints_the_embedded_default() {
    let output = outrigger()
        .args(["run", "--print-default-config"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("virtualOutbound") && text.contains("15001"),
        "{text}"
    );
}

/// `outrigger run` refuses a certificate it cannot read or a key that is not the certificate's, naming the
/// place and the file; `outrigger validate` refuses the same files with the same words (as Envoy's validate
/// mode loads them too).
#[test]
fn run_and_validate_name_the_tls_file_they_cannot_use() {
    let corpus = std::fs::read_to_string("tests/configs/valid/27-downstream-mtls.yaml").unwrap();
    let dir = std::env::temp_dir().join(format!("outrigger-run-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let refusals = |config: &str| {
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        ["run", "validate"].map(|command| {
            let mut outrigger = outrigger();
            if command == "run" {
                outrigger.args(["run", "-c"]);
            } else {
                outrigger.arg("validate");
            }
            let output = outrigger.arg(&path).output().unwrap();
            assert_eq!(output.status.code(), Some(1), "outrigger {command}");
            String::from_utf8_lossy(&output.stderr).into_owned()
        })
    };
    // `validate` says what `run` would: the same problem after the `TLS: ` that both print.
    let problem = |stderr: &str| {
        stderr
            .lines()
            .find_map(|line| line.split_once("TLS: ").map(|(_, rest)| rest.to_string()))
            .unwrap_or_else(|| panic!("no TLS problem in {stderr}"))
    };
    let same_words = |[run, validate]: [String; 2]| {
        assert_eq!(
            problem(&run),
            problem(&validate),
            "run: {run}\nvalidate: {validate}"
        );
        [run, validate]
    };
    // A certificate that is not there.
    for stderr in same_words(refusals(
        &corpus.replace("certs/app.pem", "certs/missing.pem"),
    )) {
        assert!(
            stderr.contains("TLS: listener \"inbound-mtls\", filter chain \"mtls-http\"")
                && stderr.contains("cannot read tests/configs/certs/missing.pem"),
            "{stderr}"
        );
    }
    // A certificate with another certificate's key.
    for stderr in same_words(refusals(
        &corpus.replace("certs/app-key.pem", "certs/ca-key.pem"),
    )) {
        assert!(
            stderr.contains("do not form a usable certificate and key"),
            "{stderr}"
        );
    }
    // A key that is not there.
    for stderr in same_words(refusals(
        &corpus.replace("certs/app-key.pem", "certs/missing-key.pem"),
    )) {
        assert!(
            stderr.contains("filter chain \"mtls-http\"")
                && stderr.contains("cannot read tests/configs/certs/missing-key.pem"),
            "{stderr}"
        );
    }
    // A certificate file that holds no PEM certificate.
    for stderr in same_words(refusals(
        &corpus.replace("certs/app.pem}", "certs/README.md}"),
    )) {
        assert!(
            stderr.contains("tests/configs/certs/README.md: no `BEGIN CERTIFICATE` block found"),
            "{stderr}"
        );
    }
    // A certificate the proxy may not read (skipped as root, who reads any file).
    let unreadable = dir.join("unreadable.pem");
    std::fs::copy("tests/configs/certs/app.pem", &unreadable).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    if std::fs::read(&unreadable).is_err() {
        let shown = unreadable.display().to_string();
        for stderr in same_words(refusals(
            &corpus.replace("tests/configs/certs/app.pem", &shown),
        )) {
            assert!(stderr.contains(&format!("cannot read {shown}")), "{stderr}");
        }
    }
    // The valid file itself passes both checks.
    let output = outrigger()
        .args(["validate", "tests/configs/valid/27-downstream-mtls.yaml"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Envoy's validate mode loads the TLS files too: a missing certificate, a missing key, a key of another
/// certificate, a file without a PEM certificate and a missing trusted CA are refused by both (exit code), the
/// good pair accepted by both.
#[test]
fn validate_refuses_the_tls_files_envoy_validate_refuses() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let cases = [
        ("tests/configs/valid/27-downstream-mtls.yaml", true),
        (
            "tests/configs/invalid/30-tls-certificate-missing.yaml",
            false,
        ),
        (
            "tests/configs/invalid/31-tls-key-of-another-certificate.yaml",
            false,
        ),
        ("tests/configs/invalid/33-tls-key-missing.yaml", false),
        (
            "tests/configs/invalid/34-tls-certificate-not-pem.yaml",
            false,
        ),
        (
            "tests/configs/invalid/35-tls-trusted-ca-missing.yaml",
            false,
        ),
    ];
    for (file, valid) in cases {
        let ours = outrigger().args(["validate", file]).output().unwrap();
        let theirs = std::process::Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "--concurrency",
                "1",
            ])
            .args(["-l", "critical", "-c", file])
            .output()
            .unwrap();
        assert_eq!(
            ours.status.success(),
            valid,
            "outrigger validate {file}: {ours:?}"
        );
        assert_eq!(
            theirs.status.success(),
            valid,
            "envoy --mode validate {file}: {theirs:?}"
        );
    }
}
