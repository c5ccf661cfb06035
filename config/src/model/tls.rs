//! TLS contexts, upstream and downstream.

use super::core::{DataSource, StringMatcher};
use serde::Serialize;

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
    pub validation: Option<Validation>,
    pub alpn_protocols: Vec<String>,
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
