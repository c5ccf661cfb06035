//! Who the peer of a TLS connection is, read from its certificate: SPIFFE ID (URI SAN), DNS names, subject and
//! the certificate hash, for RBAC principals and `x-forwarded-client-cert`.

use outrigger_config::model::tls::SanType;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<String>,
    /// The subject, as `CN=...,O=...`.
    pub subject: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub hash: String,
    /// The certificate chain as presented, leaf first (for XFCC `Cert` and `Chain`).
    pub chain: Vec<CertificateDer<'static>>,
}

impl Identity {
    /// `None` when the leaf is not a parsable X.509 certificate (rustls would have refused it before).
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Option<Self> {
        let leaf = chain.first()?;
        let (_, certificate) = X509Certificate::from_der(leaf.as_ref()).ok()?;
        let mut identity = Identity {
            subject: certificate.subject().to_string(),
            hash: hex(ring::digest::digest(&ring::digest::SHA256, leaf.as_ref()).as_ref()),
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            ..Identity::default()
        };
        if let Ok(Some(names)) = certificate.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    GeneralName::URI(uri) => identity.uris.push((*uri).to_string()),
                    GeneralName::DNSName(dns) => identity.dns.push((*dns).to_string()),
                    GeneralName::RFC822Name(email) => identity.emails.push((*email).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_text(bytes) {
                            identity.ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(identity)
    }

    /// The SANs of one type, as text.
    pub fn sans(&self, kind: SanType) -> &[String] {
        match kind {
            SanType::Uri => &self.uris,
            SanType::Dns => &self.dns,
            SanType::Email => &self.emails,
            SanType::IpAddress => &self.ips,
            SanType::OtherName => &[],
        }
    }

    /// What a log line calls this peer: its SPIFFE ID, else a DNS name, else its subject.
    pub fn name(&self) -> &str {
        self.uris
            .first()
            .or(self.dns.first())
            .map(String::as_str)
            .unwrap_or(&self.subject)
    }

    /// Every SAN, for error messages.
    pub fn all_sans(&self) -> Vec<String> {
        let prefixed = |kind: &str, values: &[String]| {
            values
                .iter()
                .map(|v| format!("{kind}:{v}"))
                .collect::<Vec<_>>()
        };
        [
            prefixed("URI", &self.uris),
            prefixed("DNS", &self.dns),
            prefixed("email", &self.emails),
            prefixed("IP", &self.ips),
        ]
        .concat()
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
