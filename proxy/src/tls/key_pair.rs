//! A certificate chain and its private key, checked to belong together.
//!
//! rustls checks the pair by parsing the certificate with webpki, which refuses X.509 version 1 certificates.
//! Envoy (BoringSSL) serves them, and public Envoy examples carry such self-signed certificates inline, so the
//! public keys are compared here with a parser that reads every version.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The pair, ready for a handshake; an error says why it cannot be served (`chain_name` and `key_name` say
/// where each came from).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    chain_name: &str,
    key_name: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let unusable = |why: String| {
        format!("{chain_name} and {key_name} do not form a usable certificate and key: {why}")
    };
    let Some(leaf) = chain.first() else {
        return Err(unusable("the certificate chain is empty".into()));
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| unusable(e.to_string()))?;
    let (_, certificate) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| unusable(format!("the first certificate cannot be parsed: {e}")))?;
    // A key type whose public half rustls cannot derive cannot be compared; rustls accepts it as well.
    if let Some(public) = signing_key.public_key()
        && public.as_ref() != certificate.tbs_certificate.subject_pki.raw
    {
        return Err(unusable(
            "the private key does not belong to the first certificate".into(),
        ));
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}
