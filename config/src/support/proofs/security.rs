//! Network RBAC and TLS.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests, Untested};
use super::cited::*;

const TLS_VERSIONS: &str = "choosing TLS versions with tls_params";

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.network.rbac.v3.RBAC.rules",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.extensions.filters.network.rbac.v3.RBAC.stat_prefix",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.config.rbac.v3.RBAC.action",
        Tests(&[MTLS_IN, RBAC_COMBINATORS]),
    ),
    ("envoy.config.rbac.v3.RBAC.policies", Tests(&[MTLS_IN])),
    ("envoy.config.rbac.v3.Policy.permissions", Tests(&[MTLS_IN])),
    ("envoy.config.rbac.v3.Policy.principals", Tests(&[MTLS_IN])),
    ("envoy.config.rbac.v3.Permission.any", Tests(&[MTLS_IN])),
    (
        "envoy.config.rbac.v3.Permission.and_rules",
        Untested("RBAC matching on and_rules"),
    ),
    (
        "envoy.config.rbac.v3.Permission.or_rules",
        Untested("RBAC matching on or_rules"),
    ),
    (
        "envoy.config.rbac.v3.Permission.not_rule",
        Untested("RBAC matching on not_rule"),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_ip",
        Untested("RBAC matching on destination_ip"),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_port",
        Untested("RBAC matching on destination_port"),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_port_range",
        Untested("RBAC matching on destination_port_range"),
    ),
    (
        "envoy.config.rbac.v3.Permission.requested_server_name",
        Untested("RBAC matching on requested_server_name"),
    ),
    (
        "envoy.config.rbac.v3.Permission.Set.rules",
        Untested("RBAC matching on and_rules and or_rules"),
    ),
    (
        "envoy.config.rbac.v3.Principal.any",
        Untested("RBAC matching any principal"),
    ),
    (
        "envoy.config.rbac.v3.Principal.and_ids",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.or_ids",
        Untested("RBAC matching on or_ids"),
    ),
    (
        "envoy.config.rbac.v3.Principal.not_id",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.authenticated",
        Tests(&[MTLS_IN, RBAC_SPIFFE]),
    ),
    (
        "envoy.config.rbac.v3.Principal.direct_remote_ip",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.remote_ip",
        Untested("RBAC matching on remote_ip"),
    ),
    (
        "envoy.config.rbac.v3.Principal.Set.ids",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.Authenticated.principal_name",
        Tests(&[MTLS_IN, RBAC_SPIFFE]),
    ),
    (
        "envoy.type.v3.Int32Range.start",
        Untested("RBAC matching on destination_port_range"),
    ),
    (
        "envoy.type.v3.Int32Range.end",
        Untested("RBAC matching on destination_port_range"),
    ),
    // TLS.
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.common_tls_context",
        Tests(&[MTLS_OUT]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.sni",
        Untested("sni"),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.common_tls_context",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.require_client_certificate",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_params",
        Untested(TLS_VERSIONS),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificates",
        Tests(&[MTLS_IN, MTLS_ROTATION]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.validation_context",
        Tests(&[MTLS_IN, MTLS_OUT]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.alpn_protocols",
        Tests(&[MTLS_IN, MESH]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters.tls_minimum_protocol_version",
        Untested(TLS_VERSIONS),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters.tls_maximum_protocol_version",
        Untested(TLS_VERSIONS),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.certificate_chain",
        Tests(&[MTLS_ROTATION, CLI_TLS_FILE]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key",
        Tests(&[MTLS_ROTATION, CLI_TLS_FILE]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext.trusted_ca",
        Tests(&[MTLS_IN]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext.match_typed_subject_alt_names",
        Tests(&[MTLS_OUT]),
    ),
    // The mTLS tests compare URI SANs only: they would pass if the type were ignored.
    (
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.san_type",
        Untested("matching SANs of the given san_type only"),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.matcher",
        Tests(&[MTLS_OUT]),
    ),
];
