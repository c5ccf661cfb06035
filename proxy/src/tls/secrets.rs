//! The secrets TLS contexts name: the bootstrap's static ones and those SDS delivered. A context's own
//! configuration with its secrets put in place is what its handshakes are built from.

use outrigger_config::Snapshot;
use outrigger_config::model::tls::{CommonTls, Secret, SecretKind, SecretRef, SecretSource};
use std::collections::HashMap;
use std::sync::Arc;

/// Secrets by name: static (`static_resources.secrets`) and dynamic (SDS) ones are apart, as in Envoy.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    pub statics: HashMap<String, Arc<Secret>>,
    pub dynamic: HashMap<String, Arc<Secret>>,
}

impl Secrets {
    /// The snapshot's static secrets and the dynamic ones given.
    pub fn new(snapshot: &Snapshot, dynamic: HashMap<String, Arc<Secret>>) -> Self {
        Self {
            statics: snapshot
                .secrets
                .iter()
                .map(|s| (s.name.clone(), Arc::new(s.clone())))
                .collect(),
            dynamic,
        }
    }

    fn find(&self, reference: &SecretRef) -> Option<&Secret> {
        match reference.source {
            SecretSource::Static => self.statics.get(&reference.name),
            SecretSource::Ads { .. } => self.dynamic.get(&reference.name),
        }
        .map(Arc::as_ref)
    }

    /// The SDS secrets `common` names that have not arrived.
    pub fn missing<'a>(&self, common: &'a CommonTls) -> Vec<&'a str> {
        common
            .secrets()
            .filter(|r| matches!(r.source, SecretSource::Ads { .. }) && self.find(r).is_none())
            .map(|r| r.name.as_str())
            .collect()
    }

    /// `common` with the certificate and validation context of the secrets it names in place; `None` while
    /// an SDS secret has not arrived. A static secret that is missing, or a secret of the wrong kind, is an
    /// error (Envoy: "Unknown static secret"; a resource naming it is refused).
    pub fn resolve(&self, common: &CommonTls) -> Result<Option<CommonTls>, String> {
        let mut resolved = common.clone();
        if let Some(reference) = &common.certificate_secret {
            match self.find(reference).map(|s| &s.kind) {
                Some(SecretKind::TlsCertificate(certificate)) => {
                    resolved.certificates = vec![certificate.clone()];
                }
                Some(SecretKind::ValidationContext(_)) => {
                    return Err(wrong_kind(reference, "tls_certificate"));
                }
                None => return absent(reference),
            }
        }
        if let Some(reference) = &common.validation_secret {
            match self.find(reference).map(|s| &s.kind) {
                Some(SecretKind::ValidationContext(validation)) => {
                    resolved.validation = Some(validation.clone());
                }
                Some(SecretKind::TlsCertificate(_)) => {
                    return Err(wrong_kind(reference, "validation_context"));
                }
                None => return absent(reference),
            }
        }
        Ok(Some(resolved))
    }
}

fn wrong_kind(reference: &SecretRef, wanted: &str) -> String {
    format!(
        "secret {:?} does not hold a {wanted}, which this TLS context takes from it",
        reference.name
    )
}

fn absent(reference: &SecretRef) -> Result<Option<CommonTls>, String> {
    match reference.source {
        SecretSource::Static => Err(format!(
            "unknown static secret {:?}; define it in static_resources.secrets",
            reference.name
        )),
        SecretSource::Ads { .. } => Ok(None),
    }
}
