//! Certificate verification as Envoy does it: the chain must lead to `trusted_ca`, and when
//! `match_typed_subject_alt_names` is set, one of the peer's SANs must match one of its matchers. Envoy does not
//! check an upstream certificate against the host name unless told to, and neither do we: in a mesh the name
//! that matters is the SPIFFE ID.

use super::identity::Identity;
use outrigger_config::model::tls::SanMatcher;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

/// The peer's certificate is trusted but names nobody the configuration accepts.
#[derive(Debug, thiserror::Error)]
#[error(
    "the peer's certificate ({presented}) matches none of match_typed_subject_alt_names ({expected})"
)]
pub struct SanMismatch {
    pub presented: String,
    pub expected: String,
}

/// Checks the SAN rules against a verified leaf certificate.
fn check_sans(matchers: &[SanMatcher], leaf: &CertificateDer<'_>) -> Result<(), Error> {
    if matchers.is_empty() {
        return Ok(());
    }
    let identity = Identity::from_chain(std::slice::from_ref(leaf))
        .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let accepted = matchers.iter().any(|m| {
        identity
            .sans(m.san_type)
            .iter()
            .any(|value| m.matcher.matches(value))
    });
    if accepted {
        return Ok(());
    }
    let presented = identity.all_sans();
    let expected: Vec<String> = matchers
        .iter()
        .map(|m| format!("{:?} {:?}", m.san_type, m.matcher.pattern))
        .collect();
    Err(Error::InvalidCertificate(CertificateError::Other(
        OtherError(Arc::new(SanMismatch {
            presented: if presented.is_empty() {
                "no SANs".into()
            } else {
                presented.join(", ")
            },
            expected: expected.join(", "),
        })),
    )))
}

/// Verifies an upstream's certificate.
#[derive(Debug)]
pub struct UpstreamVerifier {
    /// `None`: the certificate is not verified (Envoy's behaviour without a validation context).
    pub roots: Option<Arc<RootCertStore>>,
    pub sans: Vec<SanMatcher>,
    pub algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(roots) = &self.roots {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        check_sans(&self.sans, end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifies a downstream's client certificate: rustls' WebPKI verifier for the chain, then the SAN rules.
#[derive(Debug)]
pub struct DownstreamVerifier {
    pub chain: Arc<dyn ClientCertVerifier>,
    pub sans: Vec<SanMatcher>,
}

impl ClientCertVerifier for DownstreamVerifier {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.chain
            .verify_client_cert(end_entity, intermediates, now)?;
        check_sans(&self.sans, end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// What to check, for a failure `reason`.
pub fn hint(reason: &str) -> &'static str {
    match reason {
        "expired" | "not_yet_valid" => {
            "the peer's certificate is outside its validity period: renew it (outrigger ca issue), or check clocks"
        }
        "unknown_ca" => {
            "the peer's certificate is not signed by this side's trusted_ca: another CA or trust domain?"
        }
        "san_mismatch" => {
            "the peer is not an identity match_typed_subject_alt_names accepts: check the SPIFFE ID expected"
        }
        "no_client_certificate" => {
            "this side requires a client certificate: is the client calling through its sidecar?"
        }
        "peer_alert" => {
            "the peer refused this side's certificate or parameters: see the peer's log"
        }
        "timeout" => "the peer did not complete the handshake in time",
        "connection_closed" => "the peer closed the connection during the handshake",
        _ => "the peer does not speak TLS as expected (plaintext, or a protocol error)",
    }
}

/// Why a handshake failed, as a short metric label; the log line carries the full error.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "connection_closed",
        };
    };
    match tls {
        Error::InvalidCertificate(e) => match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Other(other) if other.0.downcast_ref::<SanMismatch>().is_some() => {
                "san_mismatch"
            }
            _ => "bad_certificate",
        },
        Error::NoCertificatesPresented => "no_client_certificate",
        Error::AlertReceived(_) => "peer_alert",
        _ => "protocol",
    }
}
