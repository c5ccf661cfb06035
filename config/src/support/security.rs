//! The support table's security section: network RBAC and TLS contexts.

use super::{MessageSupport, msg, msg_ignoring};

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
        "rules shadow_rules matcher shadow_matcher",
    ),
    // The HTTP RBAC filter's `matcher` (`convert/rbac_matcher.rs`): the unified matcher with RBAC actions.
    msg(
        "xds.type.matcher.v3.Matcher",
        "matcher_list matcher_tree on_no_match",
    ),
    msg("xds.type.matcher.v3.Matcher.OnMatch", "matcher action"),
    msg("xds.type.matcher.v3.Matcher.MatcherList", "matchers"),
    msg(
        "xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher",
        "predicate on_match",
    ),
    msg(
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate",
        "single_predicate or_matcher and_matcher not_matcher",
    ),
    msg(
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate",
        "input value_match custom_match",
    ),
    msg(
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList",
        "predicate",
    ),
    msg(
        "xds.type.matcher.v3.Matcher.MatcherTree",
        "input exact_match_map prefix_match_map",
    ),
    msg("xds.type.matcher.v3.Matcher.MatcherTree.MatchMap", "map"),
    msg("xds.core.v3.TypedExtensionConfig", "name typed_config"),
    msg(
        "xds.type.matcher.v3.StringMatcher",
        "exact prefix suffix safe_regex contains ignore_case",
    ),
    msg_ignoring(
        "xds.type.matcher.v3.RegexMatcher",
        "regex",
        &[("google_re2", "RE2 is the only regex engine")],
    ),
    msg("envoy.config.rbac.v3.Action", "name action"),
    msg(
        "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
        "header_name",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.network.v3.SourceIPInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.network.v3.SourcePortInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.ssl.v3.UriSanInput",
        "",
    ),
    msg(
        "envoy.extensions.matching.common_inputs.ssl.v3.DnsSanInput",
        "",
    ),
    msg_ignoring(
        "envoy.extensions.matching.input_matchers.ip.v3.Ip",
        "cidr_ranges",
        &[(
            "stat_prefix",
            "names only the ip_parsing_failed statistic, which Outrigger does not keep; traffic is unaffected",
        )],
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
