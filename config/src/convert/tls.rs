//! TLS transport sockets, upstream and downstream.

use super::{Out, data_source, decode_any, string_matcher, type_name};
use crate::diagnostic::Path;
use crate::model::tls::{
    CertificateSource, CommonTls, DownstreamTls, SanMatcher, SanType, Secret, SecretRef,
    TlsVersion, UpstreamTls, Validation,
};
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket::ConfigType};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as pb;

mod secret;

const UPSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

/// A transport socket's `typed_config`, and its path.
fn typed_config<'a>(
    t: &'a TransportSocket,
    at: &Path,
    out: &mut Out,
) -> Option<(&'a envoy_types::pb::google::protobuf::Any, Path)> {
    match &t.config_type {
        Some(ConfigType::TypedConfig(any)) => Some((any, at.field("typed_config"))),
        _ => {
            out.error(at, "a transport socket needs a typed_config");
            None
        }
    }
}

/// `Some(None)` is plaintext (raw_buffer); `None` is an error already reported.
pub fn upstream(t: &TransportSocket, at: &Path, out: &mut Out) -> Option<Option<UpstreamTls>> {
    let (any, at_config) = typed_config(t, at, out)?;
    match type_name(any) {
        RAW_BUFFER => Some(None),
        UPSTREAM => {
            let ctx: pb::UpstreamTlsContext = decode_any(any, &at_config, out)?;
            // Envoy's clients offer TLS 1.2 at most unless told otherwise (checked against Envoy 1.40 in
            // tests/envoy_rbac_tls_h2.rs).
            let common = common(
                ctx.common_tls_context.as_ref(),
                TlsVersion::V1_2,
                &at_config.field("common_tls_context"),
                out,
            )?;
            Some(Some(UpstreamTls {
                common,
                sni: Some(ctx.sni).filter(|s| !s.is_empty()),
            }))
        }
        other => {
            out.error(&at_config, format!("upstream transport socket {other} is not supported; use UpstreamTlsContext or RawBuffer"));
            None
        }
    }
}

pub fn downstream(t: &TransportSocket, at: &Path, out: &mut Out) -> Option<Option<DownstreamTls>> {
    let (any, at_config) = typed_config(t, at, out)?;
    match type_name(any) {
        RAW_BUFFER => Some(None),
        DOWNSTREAM => {
            let ctx: pb::DownstreamTlsContext = decode_any(any, &at_config, out)?;
            let at_common = at_config.field("common_tls_context");
            let common = common(
                ctx.common_tls_context.as_ref(),
                TlsVersion::V1_3,
                &at_common,
                out,
            )?;
            if !common.has_certificate() {
                out.error(
                    &at_common.field("tls_certificates"),
                    "a server-side TLS context needs a certificate (tls_certificates or \
                     tls_certificate_sds_secret_configs)",
                );
            }
            let require_client_certificate = ctx
                .require_client_certificate
                .as_ref()
                .is_some_and(|v| v.value);
            if require_client_certificate
                && common.validation_secret.is_none()
                && common
                    .validation
                    .as_ref()
                    .and_then(|v| v.trusted_ca.as_ref())
                    .is_none()
            {
                out.error(
                    &at_common.field("validation_context"),
                    "require_client_certificate needs a trusted_ca to verify client certificates against",
                );
            }
            Some(Some(DownstreamTls {
                common,
                require_client_certificate,
            }))
        }
        other => {
            out.error(&at_config, format!("downstream transport socket {other} is not supported; use DownstreamTlsContext or RawBuffer"));
            None
        }
    }
}

/// `default_max` is Envoy's maximum version when `tls_params` leaves it unset: TLS 1.3 for servers, 1.2 for
/// clients.
fn common(
    c: Option<&pb::CommonTlsContext>,
    default_max: TlsVersion,
    at: &Path,
    out: &mut Out,
) -> Option<CommonTls> {
    use pb::common_tls_context::ValidationContextType as V;
    use pb::tls_parameters::TlsProtocol as P;
    let Some(c) = c else {
        return Some(CommonTls {
            max_version: default_max,
            ..CommonTls::default()
        });
    };
    let version = |v: i32, default: TlsVersion, at: &Path, out: &mut Out| match P::try_from(v) {
        Ok(P::TlsAuto) => Some(default),
        Ok(P::TlSv12) => Some(TlsVersion::V1_2),
        Ok(P::TlSv13) => Some(TlsVersion::V1_3),
        _ => {
            out.error(
                at,
                "TLS 1.0 and 1.1 are not supported; use TLSv1_2 or TLSv1_3",
            );
            None
        }
    };
    let params = c.tls_params.clone().unwrap_or_default();
    let at_params = at.field("tls_params");
    let min_version = version(
        params.tls_minimum_protocol_version,
        TlsVersion::V1_2,
        &at_params.field("tls_minimum_protocol_version"),
        out,
    )?;
    let max_version = version(
        params.tls_maximum_protocol_version,
        default_max,
        &at_params.field("tls_maximum_protocol_version"),
        out,
    )?;
    // Envoy accepts this and then fails every handshake: no version is left to offer.
    if max_version < min_version {
        out.error(
            &at_params,
            format!(
                "tls_maximum_protocol_version ({}) is below tls_minimum_protocol_version: no TLS version is \
                 left, which is not supported (Envoy would accept it and fail every handshake); set \
                 tls_maximum_protocol_version: TLSv1_3",
                if params.tls_maximum_protocol_version == P::TlsAuto as i32 {
                    "TLSv1_2, a client's default"
                } else {
                    "TLSv1_2"
                }
            ),
        );
    }
    let certificates = c
        .tls_certificates
        .iter()
        .enumerate()
        .filter_map(|(i, cert)| certificate(cert, &at.field("tls_certificates").index(i), out))
        .collect();
    if c.tls_certificates.len() > 1 {
        out.error(
            &at.field("tls_certificates").index(1),
            "several certificates per TLS context are not supported yet (Envoy picks one by the peer's \
             signature algorithms); keep one",
        );
    }
    let certificate_secret = match c.tls_certificate_sds_secret_configs.as_slice() {
        [] => None,
        [one] => secret::reference(
            one,
            &at.field("tls_certificate_sds_secret_configs").index(0),
            out,
        ),
        [_, ..] => {
            out.error(
                &at.field("tls_certificate_sds_secret_configs").index(1),
                "several certificates per TLS context are not supported yet; keep one secret",
            );
            None
        }
    };
    if certificate_secret.is_some() && !c.tls_certificates.is_empty() {
        out.error(
            &at.field("tls_certificate_sds_secret_configs"),
            "set either tls_certificates or tls_certificate_sds_secret_configs, not both",
        );
    }
    let (validation, validation_secret) = match &c.validation_context_type {
        None => (None, None),
        Some(V::ValidationContext(v)) => (
            Some(validation(v, &at.field("validation_context"), out)?),
            None,
        ),
        Some(V::CombinedValidationContext(combined)) => combined_validation(combined, at, out)?,
        Some(V::ValidationContextSdsSecretConfig(config)) => (
            None,
            Some(secret::reference(
                config,
                &at.field("validation_context_sds_secret_config"),
                out,
            )?),
        ),
        Some(_) => {
            out.error(
                at,
                "only `validation_context`, `validation_context_sds_secret_config` or \
                 `combined_validation_context` is supported",
            );
            return None;
        }
    };
    Some(CommonTls {
        min_version,
        max_version,
        certificates,
        certificate_secret,
        validation,
        validation_secret,
        alpn_protocols: c.alpn_protocols.clone(),
    })
}

/// `static_resources.secrets[i]`, or a Secret over SDS.
pub fn secret(s: &pb::Secret, at: &Path, out: &mut Out) -> Option<Secret> {
    secret::secret(s, at, out)
}

/// Checks what the snapshot's TLS contexts name against its static secrets and its ADS source.
pub fn check_secret_references(snapshot: &crate::Snapshot, out: &mut Out) {
    secret::check_references(snapshot, out);
}

pub(super) fn certificate(
    cert: &pb::TlsCertificate,
    at: &Path,
    out: &mut Out,
) -> Option<CertificateSource> {
    Some(CertificateSource {
        certificate_chain: data_source(
            &cert.certificate_chain,
            &at.field("certificate_chain"),
            out,
        )?,
        private_key: data_source(&cert.private_key, &at.field("private_key"), out)?,
    })
}

/// `combined_validation_context`: the default context and the secret whose validation context is merged into
/// it once it arrives (Envoy's `MergeFrom`: the secret's `trusted_ca` wins, SAN matchers of both apply). The
/// default context may match SANs without a `trusted_ca`: the secret brings it (Istio's shape).
fn combined_validation(
    combined: &pb::common_tls_context::CombinedCertificateValidationContext,
    at: &Path,
    out: &mut Out,
) -> Option<(Option<Validation>, Option<SecretRef>)> {
    let at = at.field("combined_validation_context");
    let at_default = at.field("default_validation_context");
    let default = match &combined.default_validation_context {
        Some(v) => validation_fields(v, &at_default, out)?,
        None => {
            out.error(&at_default, "set the default validation context");
            return None;
        }
    };
    let Some(config) = &combined.validation_context_sds_secret_config else {
        out.error(
            &at.field("validation_context_sds_secret_config"),
            "name the secret that holds the validation context",
        );
        return None;
    };
    let reference = secret::reference(
        config,
        &at.field("validation_context_sds_secret_config"),
        out,
    )?;
    Some((Some(default), Some(reference)))
}

pub(super) fn validation(
    v: &pb::CertificateValidationContext,
    at: &Path,
    out: &mut Out,
) -> Option<Validation> {
    let validation = validation_fields(v, at, out)?;
    if validation.trusted_ca.is_none() && !validation.match_typed_subject_alt_names.is_empty() {
        out.error(
            at,
            "matching subject alt names needs a trusted_ca to verify the certificate first",
        );
    }
    Some(validation)
}

fn validation_fields(
    v: &pb::CertificateValidationContext,
    at: &Path,
    out: &mut Out,
) -> Option<Validation> {
    use pb::subject_alt_name_matcher::SanType as S;
    let trusted_ca = match &v.trusted_ca {
        Some(_) => Some(data_source(&v.trusted_ca, &at.field("trusted_ca"), out)?),
        None => None,
    };
    let match_typed_subject_alt_names = v
        .match_typed_subject_alt_names
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let at = at.field("match_typed_subject_alt_names").index(i);
            let san_type = match S::try_from(m.san_type) {
                Ok(S::Email) => SanType::Email,
                Ok(S::Dns) => SanType::Dns,
                Ok(S::Uri) => SanType::Uri,
                Ok(S::IpAddress) => SanType::IpAddress,
                Ok(S::OtherName) => SanType::OtherName,
                _ => {
                    out.error(
                        &at.field("san_type"),
                        "set a SAN type: URI, DNS, EMAIL or IP_ADDRESS",
                    );
                    return None;
                }
            };
            let matcher = string_matcher(m.matcher.as_ref()?, &at.field("matcher"), out)?;
            Some(SanMatcher { san_type, matcher })
        })
        .collect::<Vec<_>>();
    Some(Validation {
        trusted_ca,
        match_typed_subject_alt_names,
    })
}
