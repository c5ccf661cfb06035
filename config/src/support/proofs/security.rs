//! Network and HTTP RBAC, and TLS.
//!
//! `proofs.rs` says what an entry means.

use super::Proof::{self, Tests};
use super::cited::*;

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
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.or_rules",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.not_rule",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_ip",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_port",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.destination_port_range",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.requested_server_name",
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.Set.rules",
        Tests(&[ENVOY_RBAC]),
    ),
    ("envoy.config.rbac.v3.Principal.any", Tests(&[ENVOY_RBAC])),
    (
        "envoy.config.rbac.v3.Principal.and_ids",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.or_ids",
        Tests(&[ENVOY_RBAC]),
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
        Tests(&[ENVOY_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Principal.Set.ids",
        Tests(&[RBAC_COMBINATORS]),
    ),
    (
        "envoy.config.rbac.v3.Principal.Authenticated.principal_name",
        Tests(&[MTLS_IN, RBAC_SPIFFE]),
    ),
    ("envoy.type.v3.Int32Range.start", Tests(&[ENVOY_RBAC])),
    ("envoy.type.v3.Int32Range.end", Tests(&[ENVOY_RBAC])),
    // HTTP RBAC `matcher` (s8-rbacmatcher).
    (
        "envoy.extensions.filters.http.rbac.v3.RBAC.matcher",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "envoy.extensions.filters.http.rbac.v3.RBAC.shadow_matcher",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.matcher_list",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.matcher_tree",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.on_no_match",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_TREES]),
    ),
    (
        "xds.type.matcher.v3.Matcher.OnMatch.matcher",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_TREES]),
    ),
    (
        "xds.type.matcher.v3.Matcher.OnMatch.action",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.matchers",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher.predicate",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher.on_match",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.single_predicate",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.or_matcher",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.and_matcher",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.not_matcher",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate.input",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate.value_match",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList.predicate",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherTree.input",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherTree.exact_match_map",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_TREES]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherTree.prefix_match_map",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherTree.MatchMap.map",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.core.v3.TypedExtensionConfig.name",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.core.v3.TypedExtensionConfig.typed_config",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.exact",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.prefix",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.safe_regex",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.RegexMatcher.regex",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "envoy.config.rbac.v3.Action.name",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "envoy.config.rbac.v3.Action.action",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "envoy.type.matcher.v3.HttpRequestHeaderMatchInput.header_name",
        Tests(&[ENVOY_RBAC_MATCHER]),
    ),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate.custom_match",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_INPUTS]),
    ),
    (
        "envoy.extensions.matching.input_matchers.ip.v3.Ip.cidr_ranges",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_INPUTS]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.suffix",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_INPUTS]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.contains",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_INPUTS]),
    ),
    (
        "xds.type.matcher.v3.StringMatcher.ignore_case",
        Tests(&[ENVOY_RBAC_MATCHER, RBAC_MATCHER_INPUTS]),
    ),
    // HTTP RBAC.
    (
        "envoy.extensions.filters.http.rbac.v3.RBAC.rules",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.extensions.filters.http.rbac.v3.RBAC.shadow_rules",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.extensions.filters.http.rbac.v3.RBACPerRoute.rbac",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.header",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Permission.url_path",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Principal.header",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.config.rbac.v3.Principal.url_path",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    (
        "envoy.type.matcher.v3.PathMatcher.path",
        Tests(&[ENVOY_HTTP_RBAC]),
    ),
    // TLS.
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.common_tls_context",
        Tests(&[MTLS_OUT]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.sni",
        Tests(&[ENVOY_TLS]),
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
        Tests(&[ENVOY_TLS]),
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
        Tests(&[ENVOY_TLS]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters.tls_maximum_protocol_version",
        Tests(&[ENVOY_TLS]),
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
    // A DNS SAN matched as DNS passes, the same name expected as a URI SAN fails.
    (
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.san_type",
        Tests(&[ENVOY_TLS]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.matcher",
        Tests(&[MTLS_OUT]),
    ),
    // SDS: the certificate and the validation context from secrets, over ADS and static.
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.tls_certificate_sds_secret_configs",
        Tests(&[SDS_ADS, SDS_STATIC, SDS_ISSUED]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.validation_context_sds_secret_config",
        Tests(&[SDS_ADS, SDS_STATIC, SDS_ISSUED]),
    ),
    // Istio's shape: the trust bundle from a secret, the peer's SAN from the context itself.
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.combined_validation_context",
        Tests(&[MESH_ADS]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext.default_validation_context",
        Tests(&[MESH_ADS]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext.validation_context_sds_secret_config",
        Tests(&[MESH_ADS]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig.name",
        Tests(&[SDS_ADS, SDS_STATIC]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig.sds_config",
        Tests(&[SDS_ADS, SDS_LOADER, SDS_GRPC, SDS_GRPC_DYNAMIC, SDS_WARMING]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.Secret.name",
        Tests(&[SDS_ADS, SDS_STATIC]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.Secret.tls_certificate",
        Tests(&[SDS_ADS, SDS_STATIC]),
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.Secret.validation_context",
        Tests(&[SDS_ADS, SDS_STATIC]),
    ),
];
