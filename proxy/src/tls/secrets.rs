//! The secrets TLS contexts name: the bootstrap's static ones and those SDS delivered. A context's own
//! configuration with its secrets put in place is what its handshakes are built from.

use outrigger_config::Snapshot;
use outrigger_config::model::tls::{
    CommonTls, Secret, SecretKind, SecretRef, SecretSource, Validation,
};
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
            SecretSource::Ads { .. } | SecretSource::Grpc { .. } => {
                self.dynamic.get(&reference.name)
            }
        }
        .map(Arc::as_ref)
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
                    resolved.validation = Some(merged(common.validation.as_ref(), validation));
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

/// The secret's validation context merged into the context's own (a `combined_validation_context`), as Envoy
/// merges them: the secret's `trusted_ca` when it has one, the SAN matchers of both.
fn merged(default: Option<&Validation>, secret: &Validation) -> Validation {
    let Some(default) = default else {
        return secret.clone();
    };
    Validation {
        trusted_ca: secret
            .trusted_ca
            .clone()
            .or_else(|| default.trusted_ca.clone()),
        match_typed_subject_alt_names: default
            .match_typed_subject_alt_names
            .iter()
            .chain(&secret.match_typed_subject_alt_names)
            .cloned()
            .collect(),
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
        SecretSource::Ads { .. } | SecretSource::Grpc { .. } => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outrigger_config::model::core::{DataSource, StringMatch, StringMatcher};
    use outrigger_config::model::tls::{SanMatcher, SanType};

    fn uri_prefix(prefix: &str) -> SanMatcher {
        SanMatcher {
            san_type: SanType::Uri,
            matcher: StringMatcher {
                pattern: StringMatch::Prefix(prefix.into()),
                ignore_case: false,
            },
        }
    }

    #[test]
    fn a_combined_context_takes_the_secrets_trust_and_keeps_its_own_san_rules() {
        let own = Validation {
            trusted_ca: None,
            match_typed_subject_alt_names: vec![uri_prefix("spiffe://a/")],
        };
        let secret = Validation {
            trusted_ca: Some(DataSource::InlineString("ca".into())),
            match_typed_subject_alt_names: vec![uri_prefix("spiffe://b/")],
        };
        let merged = merged(Some(&own), &secret);
        assert_eq!(merged.trusted_ca, secret.trusted_ca);
        assert_eq!(
            merged.match_typed_subject_alt_names,
            vec![uri_prefix("spiffe://a/"), uri_prefix("spiffe://b/")]
        );
        assert_eq!(super::merged(None, &secret), secret);
    }
}
