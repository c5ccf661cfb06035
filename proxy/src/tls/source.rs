//! Reading certificates, keys and trust bundles from where the configuration says they are (`DataSource`).

use outrigger_config::model::core::DataSource;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The bytes behind a data source, and where they came from (for error messages).
pub fn read(source: &DataSource) -> Result<Vec<u8>, String> {
    match source {
        DataSource::Filename(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
        }
        DataSource::InlineString(text) => Ok(text.as_bytes().to_vec()),
        DataSource::InlineBytes(bytes) => Ok(bytes.clone()),
        DataSource::EnvironmentVariable(name) => std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| format!("environment variable {name} is not set (or not UTF-8)")),
    }
}

/// Where a data source points, as a user would recognise it.
pub fn describe(source: &DataSource) -> String {
    match source {
        DataSource::Filename(path) => path.clone(),
        DataSource::InlineString(_) | DataSource::InlineBytes(_) => "the inline value".into(),
        DataSource::EnvironmentVariable(name) => format!("environment variable {name}"),
    }
}

/// A PEM certificate chain, leaf first.
pub fn certificates(pem: &[u8], from: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{from}: not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{from}: no `BEGIN CERTIFICATE` block found"));
    }
    Ok(chain)
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &[u8], from: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("{from}: not a PEM private key: {e}"))
}

/// A trust bundle: every certificate in it is a root.
pub fn roots(pem: &[u8], from: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for certificate in certificates(pem, from)? {
        store.add(certificate).map_err(|e| {
            format!("{from}: a CA certificate is not usable as a trust anchor: {e}")
        })?;
    }
    Ok(store)
}
