//! `outrigger ca`: a development CA for SPIFFE identities. `init` makes the CA; `issue` makes a workload
//! certificate whose URI SAN is its SPIFFE ID. Everything is PEM, in the files Envoy and Outrigger read.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a CA: ca.pem (the trust bundle), ca-key.pem, and trust-domain.
    Init {
        /// The SPIFFE trust domain this CA vouches for.
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
        /// Where to write the CA.
        #[arg(long, default_value = "outrigger-ca")]
        out: PathBuf,
        /// How long the CA is valid.
        #[arg(long, default_value = "87600h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Replace a CA already in `--out`.
        #[arg(long)]
        force: bool,
    },
    /// Issue a workload certificate: cert.pem, key.pem, and ca.pem (the trust bundle) in `--out`.
    Issue {
        /// The workload's identity, `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
        #[arg(long)]
        spiffe_id: String,
        /// How long the certificate is valid.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Where to write the certificate and key.
        #[arg(long)]
        out: PathBuf,
        /// The CA made by `outrigger ca init`.
        #[arg(long, default_value = "outrigger-ca")]
        ca: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Init {
            trust_domain,
            out,
            ttl,
            force,
        } => init(&trust_domain, &out, ttl, force),
        Command::Issue {
            spiffe_id,
            ttl,
            out,
            ca,
        } => issue(&spiffe_id, ttl, &out, &ca),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outrigger ca: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init(trust_domain: &str, out: &Path, ttl: Duration, force: bool) -> Result<String, Error> {
    check_trust_domain(trust_domain)?;
    if out.join("ca.pem").exists() && !force {
        return Err(Error::Invalid(format!(
            "{} already holds a CA; pass --force to replace it (certificates it issued will stop being trusted)",
            out.display()
        )));
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.remove(DnType::CommonName);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Outrigger development CA for {trust_domain}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
    set_validity(&mut params, ttl)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    write(&out.join("ca.pem"), &cert.pem(), false)?;
    write(&out.join("ca-key.pem"), &key.serialize_pem(), true)?;
    write(
        &out.join("trust-domain"),
        &format!("{trust_domain}\n"),
        false,
    )?;
    Ok(format!(
        "CA for spiffe://{trust_domain} written to {}",
        out.display()
    ))
}

fn issue(spiffe_id: &str, ttl: Duration, out: &Path, ca: &Path) -> Result<String, Error> {
    let trust_domain = check_spiffe_id(spiffe_id)?;
    let read = |name: &str| {
        let path = ca.join(name);
        std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })
    };
    let ca_pem = read("ca.pem").map_err(|e| {
        Error::Invalid(format!("{e}; create the CA first with `outrigger ca init`"))
    })?;
    if let Ok(expected) = read("trust-domain")
        && expected.trim() != trust_domain
    {
        return Err(Error::Invalid(format!(
            "{spiffe_id} is in trust domain {trust_domain:?}, but the CA in {} vouches for {:?}",
            ca.display(),
            expected.trim()
        )));
    }
    let ca_key = KeyPair::from_pem(&read("ca-key.pem")?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.remove(DnType::CommonName);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params.subject_alt_names = vec![SanType::URI(spiffe_id.to_string().try_into()?)];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, ttl)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    write(&out.join("cert.pem"), &cert.pem(), false)?;
    write(&out.join("key.pem"), &key.serialize_pem(), true)?;
    write(&out.join("ca.pem"), &ca_pem, false)?;
    Ok(format!("{spiffe_id} written to {}", out.display()))
}

/// Valid from a minute ago (clocks drift) for `ttl`.
fn set_validity(params: &mut CertificateParams, ttl: Duration) -> Result<(), Error> {
    let ttl =
        time::Duration::try_from(ttl).map_err(|_| Error::Invalid("the TTL is too long".into()))?;
    if ttl < time::Duration::minutes(1) {
        return Err(Error::Invalid("the TTL must be at least one minute".into()));
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now
        .checked_add(ttl)
        .ok_or_else(|| Error::Invalid("the TTL is too long".into()))?;
    Ok(())
}

/// Keys are written readable by their owner only.
fn write(path: &Path, contents: &str, secret: bool) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}

/// A SPIFFE trust domain: lower-case letters, digits, `.`, `-` and `_` (SPIFFE ID spec, section 2.1).
fn check_trust_domain(domain: &str) -> Result<(), Error> {
    let ok = !domain.is_empty()
        && domain.len() <= 255
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{domain:?} is not a SPIFFE trust domain: use lower-case letters, digits, `.`, `-` and `_`, such as cluster.local"
        )))
    }
}

/// `spiffe://<trust domain>/<path>`, path segments non-empty and not `.` or `..`. Returns the trust domain.
fn check_spiffe_id(id: &str) -> Result<&str, Error> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "{id:?} is not a SPIFFE ID ({why}); write spiffe://cluster.local/ns/NAMESPACE/sa/ACCOUNT"
        ))
    };
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or_else(|| bad("it must start with spiffe://"))?;
    let (domain, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("it needs a path after the trust domain"))?;
    check_trust_domain(domain).map_err(|_| bad("the trust domain is not valid"))?;
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    if !path.split('/').all(segment_ok) {
        return Err(bad(
            "path segments are letters, digits, `.`, `-`, `_`, and never empty, `.` or `..`",
        ));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_checked() {
        assert_eq!(
            check_spiffe_id("spiffe://cluster.local/ns/default/sa/app").unwrap(),
            "cluster.local"
        );
        for bad in [
            "http://cluster.local/ns/a",
            "spiffe://cluster.local",
            "spiffe://cluster.local/",
            "spiffe://Cluster.Local/ns/a",
            "spiffe://cluster.local/ns//a",
            "spiffe://cluster.local/ns/../a",
            "spiffe://cluster.local/ns/a b",
        ] {
            assert!(check_spiffe_id(bad).is_err(), "{bad}");
        }
    }
}
