//! Workload certificates for `outrigger control-plane --ca-dir DIR` (a CA made by `outrigger ca init`).
//!
//! A node's SPIFFE identity comes from its metadata: `SPIFFE_ID` (a full ID in the CA's trust domain), or
//! else Istio's `NAMESPACE` and `SERVICE_ACCOUNT`, giving `spiffe://<trust domain>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>`.
//! Such a node is served two secrets, named as Istio's agent names them: `default` (its certificate and key)
//! and `ROOTCA` (the CA bundle). A node with neither gets no certificate.

use envoy_types::pb::envoy::config::core::v3 as core_pb;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use outrigger_config::resource::documents::{SECRET, TypedResource};
use prost::Message;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer as CaKey, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::path::Path;
use std::time::Duration;

/// The secret holding a workload's certificate and key.
pub const WORKLOAD_SECRET: &str = "default";
/// The secret holding the CA bundle.
pub const ROOT_SECRET: &str = "ROOTCA";

/// The CA of a `--ca-dir`, and how long what it issues lives.
pub struct Issuer {
    trust_domain: String,
    ca_pem: String,
    key: CaKey<'static, KeyPair>,
    pub ttl: Duration,
}

/// A workload's secrets, and when to issue them again (at two thirds of their life, as Istio does).
pub struct Issued {
    pub resources: Vec<TypedResource>,
    pub renew_after: Duration,
}

impl Issuer {
    /// Reads `ca.pem`, `ca-key.pem` and `trust-domain` from `dir`.
    pub fn load(dir: &Path, ttl: Duration) -> Result<Self, String> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "--ca-dir: cannot read {}: {e}; make the CA with `outrigger ca init --out {}`",
                    path.display(),
                    dir.display()
                )
            })
        };
        let ca_pem = read("ca.pem")?;
        let trust_domain = read("trust-domain")?.trim().to_string();
        let key = KeyPair::from_pem(&read("ca-key.pem")?)
            .map_err(|e| format!("--ca-dir: {}: {e}", dir.join("ca-key.pem").display()))?;
        let key = CaKey::from_ca_cert_pem(&ca_pem, key)
            .map_err(|e| format!("--ca-dir: {}: {e}", dir.join("ca.pem").display()))?;
        if ttl < Duration::from_secs(10) {
            return Err("--cert-ttl: at least 10s".into());
        }
        Ok(Self {
            trust_domain,
            ca_pem,
            key,
            ttl,
        })
    }

    /// The node's SPIFFE ID by the rule above; `Err` when its metadata names one this CA cannot vouch for.
    pub fn identity(&self, node: &core_pb::Node) -> Result<Option<String>, String> {
        let field = |name: &str| {
            use envoy_types::pb::google::protobuf::value::Kind;
            node.metadata
                .as_ref()
                .and_then(|m| m.fields.get(name))
                .and_then(|v| match &v.kind {
                    Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
        };
        let id = match (
            field("SPIFFE_ID"),
            field("NAMESPACE"),
            field("SERVICE_ACCOUNT"),
        ) {
            (Some(id), _, _) => id,
            (None, Some(ns), Some(sa)) => format!("spiffe://{}/ns/{ns}/sa/{sa}", self.trust_domain),
            _ => return Ok(None),
        };
        let in_domain = id
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(domain, path)| {
                domain == self.trust_domain
                    && path.split('/').all(|s| {
                        !s.is_empty()
                            && s != "."
                            && s != ".."
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                    })
            });
        if !in_domain {
            return Err(format!(
                "node {:?}: {id:?} is not a SPIFFE ID in trust domain {:?}, which this CA vouches for",
                node.id, self.trust_domain
            ));
        }
        Ok(Some(id))
    }

    /// A fresh certificate and key for `spiffe_id` (`default`), and the CA bundle (`ROOTCA`).
    pub fn issue(&self, spiffe_id: &str) -> Result<Issued, String> {
        let fail = |e: rcgen::Error| format!("cannot issue a certificate for {spiffe_id}: {e}");
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        params.distinguished_name.remove(DnType::CommonName);
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.trust_domain.clone());
        params.subject_alt_names = vec![SanType::URI(
            spiffe_id.to_string().try_into().map_err(fail)?,
        )];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        let ttl = time::Duration::try_from(self.ttl).map_err(|_| "--cert-ttl is too long")?;
        // Valid from a minute ago: clocks drift.
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + ttl;
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params.signed_by(&key, &self.key).map_err(fail)?;
        let inline = |pem: String| {
            Some(core_pb::DataSource {
                specifier: Some(core_pb::data_source::Specifier::InlineBytes(
                    pem.into_bytes(),
                )),
                ..Default::default()
            })
        };
        let workload = tls_pb::Secret {
            name: WORKLOAD_SECRET.into(),
            r#type: Some(tls_pb::secret::Type::TlsCertificate(
                tls_pb::TlsCertificate {
                    certificate_chain: inline(cert.pem()),
                    private_key: inline(key.serialize_pem()),
                    ..Default::default()
                },
            )),
        };
        let root = tls_pb::Secret {
            name: ROOT_SECRET.into(),
            r#type: Some(tls_pb::secret::Type::ValidationContext(
                tls_pb::CertificateValidationContext {
                    trusted_ca: inline(self.ca_pem.clone()),
                    ..Default::default()
                },
            )),
        };
        let resources = [workload, root]
            .into_iter()
            .map(|secret| TypedResource {
                type_url: SECRET.into(),
                name: secret.name.clone(),
                value: secret.encode_to_vec(),
            })
            .collect();
        Ok(Issued {
            resources,
            renew_after: self.ttl * 2 / 3,
        })
    }
}
