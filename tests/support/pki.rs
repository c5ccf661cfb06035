//! Certificates for the TLS tests: a development CA and SPIFFE workload certificates from `outrigger ca`,
//! plus the ones it refuses to make (expired, from another trust domain), made here with rcgen.

use std::path::{Path, PathBuf};

pub const TRUST_DOMAIN: &str = "cluster.local";

pub fn spiffe(service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/default/sa/{service_account}")
}

/// A directory with `ca/` (the CA) and one sub-directory per issued identity (`cert.pem`, `key.pem`,
/// `ca.pem`); removed when dropped.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("outrigger-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        pki.ca_init("ca", TRUST_DOMAIN);
        pki
    }

    fn ca_init(&self, name: &str, trust_domain: &str) {
        let output = super::outrigger()
            .args(["ca", "init", "--trust-domain", trust_domain, "--out"])
            .arg(self.dir.join(name))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Issues `spiffe_id` from the CA in `ca` into `name/`.
    pub fn issue_from(&self, ca: &str, name: &str, spiffe_id: &str) -> PathBuf {
        let out = self.dir.join(name);
        let output = super::outrigger()
            .args(["ca", "issue", "--spiffe-id", spiffe_id, "--out"])
            .arg(&out)
            .arg("--ca")
            .arg(self.dir.join(ca))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    }

    pub fn issue(&self, name: &str, spiffe_id: &str) -> PathBuf {
        self.issue_from("ca", name, spiffe_id)
    }

    /// A certificate for `spiffe_id` from a second CA, for the trust domain `other.local`.
    pub fn other_trust_domain(&self, name: &str, service_account: &str) -> PathBuf {
        if !self.dir.join("other-ca").exists() {
            self.ca_init("other-ca", "other.local");
        }
        self.issue_from(
            "other-ca",
            name,
            &format!("spiffe://other.local/ns/default/sa/{service_account}"),
        )
    }

    /// A certificate from the real CA whose validity ended an hour ago.
    pub fn expired(&self, name: &str, spiffe_id: &str) -> PathBuf {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
        let ca_dir = self.dir.join("ca");
        let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
        let ca_key =
            KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca-key.pem")).unwrap())
                .unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.to_string().try_into().unwrap())];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(2);
        params.not_after = now - time::Duration::hours(1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let out = self.dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(out.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(out.join("ca.pem"), ca_pem).unwrap();
        out
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path` as text for a config file.
pub fn text(path: &Path) -> String {
    path.display().to_string()
}
