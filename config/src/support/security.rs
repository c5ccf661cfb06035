//! The support table's security section: network RBAC and TLS contexts.

use super::{MessageSupport, msg};

pub(super) const MESSAGES: &[MessageSupport] = &[
    // Network RBAC.
    msg(
        "envoy.extensions.filters.network.rbac.v3.RBAC",
        "rules stat_prefix",
    ),
    msg("envoy.config.rbac.v3.RBAC", "action policies"),
    msg("envoy.config.rbac.v3.Policy", "permissions principals"),
    msg(
        "envoy.config.rbac.v3.Permission",
        "any and_rules or_rules not_rule destination_ip destination_port destination_port_range \
         requested_server_name header url_path",
    ),
    msg("envoy.config.rbac.v3.Permission.Set", "rules"),
    msg(
        "envoy.config.rbac.v3.Principal",
        "any and_ids or_ids not_id authenticated direct_remote_ip remote_ip header url_path",
    ),
    msg("envoy.config.rbac.v3.Principal.Set", "ids"),
    msg(
        "envoy.config.rbac.v3.Principal.Authenticated",
        "principal_name",
    ),
    msg("envoy.type.v3.Int32Range", "start end"),
    // HTTP RBAC (the same matchers; `header` and `url_path` refused by the network filter's converter).
    msg(
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules shadow_rules",
    ),
    msg("envoy.extensions.filters.http.rbac.v3.RBACPerRoute", "rbac"),
    msg("envoy.type.matcher.v3.PathMatcher", "path"),
    // TLS.
    msg(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context sni",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context require_client_certificate",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
        "tls_params tls_certificates validation_context alpn_protocols \
         tls_certificate_sds_secret_configs validation_context_sds_secret_config \
         combined_validation_context",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext",
        "default_validation_context validation_context_sds_secret_config",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
        "name sds_config",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        "name tls_certificate validation_context",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters",
        "tls_minimum_protocol_version tls_maximum_protocol_version",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        "certificate_chain private_key",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "trusted_ca match_typed_subject_alt_names",
    ),
    msg(
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher",
        "san_type matcher",
    ),
];
