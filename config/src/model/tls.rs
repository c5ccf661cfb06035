//! TLS contexts, upstream and downstream.

use super::core::{DataSource, StringMatcher};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpstreamTls {
    pub common: CommonTls,
    /// Server name sent in the ClientHello.
    pub sni: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownstreamTls {
    pub common: CommonTls,
    /// Envoy's default: false.
    pub require_client_certificate: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommonTls {
    /// Envoy's default: TLS 1.2.
    pub min_version: TlsVersion,
    /// Envoy's default: TLS 1.3 for a server (downstream), TLS 1.2 for a client (upstream).
    pub max_version: TlsVersion,
    pub certificates: Vec<CertificateSource>,
    /// `tls_certificate_sds_secret_configs[0]`: the certificate comes from this secret instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_secret: Option<SecretRef>,
    pub validation: Option<Validation>,
    /// `validation_context_sds_secret_config`: the validation context comes from this secret instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_secret: Option<SecretRef>,
    pub alpn_protocols: Vec<String>,
}

impl CommonTls {
    /// True when this side presents a certificate (inline, from files or from a secret).
    pub fn has_certificate(&self) -> bool {
        !self.certificates.is_empty() || self.certificate_secret.is_some()
    }

    /// The secrets this context names.
    pub fn secrets(&self) -> impl Iterator<Item = &SecretRef> {
        self.certificate_secret
            .iter()
            .chain(self.validation_secret.iter())
    }
}

/// A secret a TLS context names (`SdsSecretConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub name: String,
    pub source: SecretSource,
}

/// Where a named secret comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// No `sds_config`: `static_resources.secrets` must hold it (Envoy: "Unknown static secret").
    Static,
    /// `sds_config: {ads: {}}`: SDS over the aggregated stream. Until it arrives, the listener warms (is not
    /// served) and a cluster's handshakes fail.
    Ads {
        /// Envoy's default: 15s.
        #[serde(serialize_with = "super::core::optional_duration")]
        initial_fetch_timeout: Option<Duration>,
    },
    /// `sds_config: {api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name}}]}}`: a
    /// SecretDiscoveryService stream of its own to a static cluster (one per distinct source), otherwise as
    /// `Ads`.
    Grpc {
        source: super::AdsConfig,
        /// Envoy's default: 15s.
        #[serde(serialize_with = "super::core::optional_duration")]
        initial_fetch_timeout: Option<Duration>,
    },
}

impl SecretSource {
    /// Delivered by a control plane (ADS or an SDS stream), not `static_resources.secrets`.
    pub fn is_dynamic(&self) -> bool {
        !matches!(self, SecretSource::Static)
    }
}

/// A `Secret`: from `static_resources.secrets` or from SDS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub name: String,
    pub kind: SecretKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    TlsCertificate(CertificateSource),
    ValidationContext(Validation),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1_2")]
    #[default]
    V1_2,
    #[serde(rename = "TLSv1_3")]
    V1_3,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateSource {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Validation {
    /// Trust bundle. Absent: the peer's certificate is not verified (only with no SAN rules).
    pub trusted_ca: Option<DataSource>,
    /// The peer must present a SAN that one of these matches (any of them).
    pub match_typed_subject_alt_names: Vec<SanMatcher>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SanType {
    Email,
    Dns,
    Uri,
    IpAddress,
    OtherName,
}
