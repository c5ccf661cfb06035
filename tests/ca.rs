//! `outrigger ca`: the certificates verify with OpenSSL, carry the SPIFFE ID, and real Envoy 1.40 serves
//! mutual TLS with them, accepting the allowed client identity and refusing another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use support::tcp::free_port;

fn ca(args: &[&str]) -> std::process::Output {
    support::outrigger().arg("ca").args(args).output().unwrap()
}

fn issue(dir: &Path, name: &str, spiffe_id: &str) {
    let out = dir.join(name);
    let output = ca(&[
        "issue",
        "--spiffe-id",
        spiffe_id,
        "--out",
        out.to_str().unwrap(),
        "--ca",
        dir.join("ca").to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn dev_ca_certificates_work_with_openssl_and_envoy() {
    let dir = std::env::temp_dir().join(format!("outrigger-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = ca(&[
        "init",
        "--trust-domain",
        "cluster.local",
        "--out",
        dir.join("ca").to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    issue(
        &dir,
        "server",
        "spiffe://cluster.local/ns/default/sa/server",
    );
    issue(
        &dir,
        "client",
        "spiffe://cluster.local/ns/default/sa/client",
    );
    issue(
        &dir,
        "intruder",
        "spiffe://cluster.local/ns/default/sa/intruder",
    );

    // A second `init` would orphan every issued certificate: refused without --force.
    let again = ca(&["init", "--out", dir.join("ca").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    // Another trust domain than the CA's is refused.
    let other = ca(&[
        "issue",
        "--spiffe-id",
        "spiffe://other.domain/ns/a/sa/b",
        "--out",
        dir.join("x").to_str().unwrap(),
        "--ca",
        dir.join("ca").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("vouches for \"cluster.local\""));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("client/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private keys are private");

    if let Some(openssl) = support::peer("openssl") {
        let verify = Command::new(&openssl)
            .args(["verify", "-CAfile"])
            .arg(dir.join("ca/ca.pem"))
            .arg(dir.join("client/cert.pem"))
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let text = Command::new(&openssl)
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(dir.join("client/cert.pem"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&text.stdout)
                .contains("URI:spiffe://cluster.local/ns/default/sa/client")
        );
    }

    let (Some(envoy), Some(curl)) = (support::peer("envoy"), support::peer("curl")) else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("envoy.yaml");
    std::fs::write(
        &config,
        support::envoy::mtls_server_config(
            &dir.join("server"),
            "spiffe://cluster.local/ns/default/sa/client",
            port,
            admin,
            "hello over mTLS",
        ),
    )
    .unwrap();
    let mut envoy = support::envoy::Envoy::start(&envoy, &config);
    envoy.wait_for_port(port);
    let call = |identity: &str| {
        Command::new(&curl)
            .args(["-sS", "--max-time", "10", "-k", "--tlsv1.3"])
            .arg("--cert")
            .arg(dir.join(identity).join("cert.pem"))
            .arg("--key")
            .arg(dir.join(identity).join("key.pem"))
            .arg(format!("https://127.0.0.1:{port}/"))
            .output()
            .unwrap()
    };
    let allowed = call("client");
    let refused = call("intruder");
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&allowed.stdout),
        "hello over mTLS",
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(
        !refused.status.success(),
        "Envoy accepted a SPIFFE ID it does not allow"
    );
}
