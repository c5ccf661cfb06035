//! Route configurations: virtual hosts, matches, actions (retry policies in `route/retry.rs`).

use super::{
    Out, decode_any, header_mutations, http, pattern, regex_matcher, string_matcher, timeout_or,
    type_name, u32_or,
};
use crate::diagnostic::Path;
use crate::model::rate_limit::RateLimit;
use crate::model::route::{
    BufferLimit, ClusterTarget, DirectResponse, Forward, HashInput, HashPolicy, HeaderMatcher,
    HeaderRule, HostRewrite, MirrorTarget, PathMatch, PerFilterConfig, QueryParameterMatcher,
    Redirect, RedirectPath, RegexRewrite, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch,
    VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::config::route::v3 as pb;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use std::time::Duration;

mod mirror;
mod retry;
use retry::retry_policy;

/// `inline`: part of a listener (not from RDS), which changes the default of `validate_clusters`.
pub fn route_config(
    r: &pb::RouteConfiguration,
    inline: bool,
    at: &Path,
    out: &mut Out,
) -> Option<RouteConfig> {
    let virtual_hosts = r
        .virtual_hosts
        .iter()
        .enumerate()
        .filter_map(|(i, v)| virtual_host(v, &at.field("virtual_hosts").index(i), out))
        .collect::<Vec<_>>();
    check_domains(&virtual_hosts, &at.field("virtual_hosts"), out);
    Some(RouteConfig {
        name: r.name.clone(),
        validate_clusters: super::bool_or(&r.validate_clusters, inline),
        virtual_hosts,
        headers: header_mutations(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
            at,
        ),
    })
}

/// Envoy refuses a domain served by two virtual hosts, and a second `*`.
fn check_domains(hosts: &[VirtualHost], at: &Path, out: &mut Out) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        for (j, domain) in host.domains.iter().enumerate() {
            if let Some((_, other)) = seen.iter().find(|(d, _)| d == domain) {
                out.error(
                    &at.index(i).field("domains").index(j),
                    format!("domain {domain:?} is also served by virtual host {other:?}; each domain may appear once"),
                );
            } else {
                seen.push((domain, &host.name));
            }
        }
    }
}

fn virtual_host(v: &pb::VirtualHost, at: &Path, out: &mut Out) -> Option<VirtualHost> {
    let domains: Vec<String> = v.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    for (i, domain) in domains.iter().enumerate() {
        let wildcards = domain.matches('*').count();
        let well_placed = domain == "*" || domain.starts_with('*') || domain.ends_with('*');
        if wildcards > 1 || (wildcards == 1 && !well_placed) {
            out.error(
                &at.field("domains").index(i),
                format!("{domain:?}: a wildcard may only stand alone, first (`*.example.com`) or last (`example.*`)"),
            );
        }
    }
    let retry_policy = v
        .retry_policy
        .as_ref()
        .and_then(|r| retry_policy(r, &at.field("retry_policy"), out));
    let host_hedge = v.hedge_policy.as_ref().map(|h| h.hedge_on_per_try_timeout);
    let host_limit = buffer_limit(
        v.request_body_buffer_limit.as_ref().map(|v| v.value),
        v.per_request_buffer_limit_bytes.as_ref().map(|v| v.value),
    );
    let rate_limits = super::rate_limit::rate_limits(&v.rate_limits, &at.field("rate_limits"), out);
    let routes: Vec<Route> = v
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            route(
                r,
                retry_policy.as_ref(),
                host_hedge,
                host_limit,
                &at.field("routes").index(i),
                out,
            )
        })
        .collect();
    check_destination_cluster(&routes, &rate_limits, at, out);
    Some(VirtualHost {
        name: v.name.clone(),
        domains,
        routes,
        headers: header_mutations(
            &v.request_headers_to_add,
            &v.request_headers_to_remove,
            &v.response_headers_to_add,
            &v.response_headers_to_remove,
            at,
        ),
        retry_policy,
        include_request_attempt_count: v.include_request_attempt_count,
        include_attempt_count_in_response: v.include_attempt_count_in_response,
        rate_limits,
        per_filter: host_per_filter(v, at, out),
        cors: v
            .cors
            .as_ref()
            .and_then(|c| http::cors::legacy(c, &at.field("cors"), out)),
    })
}

/// A virtual host's `typed_per_filter_config`: CORS and CSRF policies; any other filter's is refused by its type.
fn host_per_filter(
    v: &pb::VirtualHost,
    at: &Path,
    out: &mut Out,
) -> Vec<(String, PerFilterConfig)> {
    let mut per_filter = Vec::new();
    for (name, any) in &v.typed_per_filter_config {
        let at = at.field("typed_per_filter_config").key(name);
        if type_name(any) == http::cors::POLICY {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| http::cors::policy(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::Cors(c)));
            }
        } else if type_name(any) == http::csrf::POLICY {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| http::csrf::policy(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::Csrf(c)));
            }
        } else {
            out.error(
                &at,
                format!(
                    "per-virtual-host config of {} is not supported (only {} and {}); set it on the routes",
                    type_name(any),
                    http::cors::POLICY,
                    http::csrf::POLICY
                ),
            );
        }
    }
    per_filter
}

/// A `destination_cluster` rate limit action may not reach a route with weighted clusters: Outrigger picks the
/// cluster after the rate limit filter has run, so the descriptor could not name Envoy's pick.
fn check_destination_cluster(routes: &[Route], host: &[RateLimit], at: &Path, out: &mut Out) {
    use super::rate_limit::names_destination_cluster;
    for (i, route) in routes.iter().enumerate() {
        let RouteAction::Route(forward) = &route.action else {
            continue;
        };
        if !matches!(forward.target, ClusterTarget::WeightedClusters(_)) {
            continue;
        }
        if names_destination_cluster(&forward.rate_limits) {
            out.error(
                &at.field("routes")
                    .index(i)
                    .field("route")
                    .field("rate_limits"),
                "a destination_cluster action is not supported on a route with weighted_clusters",
            );
        } else if names_destination_cluster(host) {
            out.error(
                &at.field("rate_limits"),
                format!("a destination_cluster action is not supported here: route {i} has weighted_clusters"),
            );
        }
    }
}

/// `request_body_buffer_limit`, else the deprecated `per_request_buffer_limit_bytes`. Envoy's documentation says
/// only one may be set; Envoy 1.40 accepts both, and `request_body_buffer_limit` wins.
fn buffer_limit(
    request_body_buffer_limit: Option<u64>,
    per_request_buffer_limit_bytes: Option<u32>,
) -> Option<BufferLimit> {
    request_body_buffer_limit
        .map(BufferLimit::RequestBody)
        .or(per_request_buffer_limit_bytes.map(BufferLimit::PerRequest))
}

fn route(
    r: &pb::Route,
    host_retry: Option<&RetryPolicy>,
    host_hedge: Option<bool>,
    host_limit: Option<BufferLimit>,
    at: &Path,
    out: &mut Out,
) -> Option<Route> {
    use pb::route::Action;
    let matcher = route_match(r.r#match.as_ref()?, &at.field("match"), out)?;
    let action = match &r.action {
        Some(Action::Route(a)) => RouteAction::Route(Box::new(forward(
            a,
            host_retry,
            host_hedge,
            &at.field("route"),
            out,
        )?)),
        Some(Action::Redirect(a)) => {
            RouteAction::Redirect(redirect(a, &at.field("redirect"), out)?)
        }
        Some(Action::DirectResponse(a)) => {
            RouteAction::DirectResponse(direct_response(a, &at.field("direct_response"), out)?)
        }
        _ => {
            out.error(
                at,
                "a route needs an action: `route`, `redirect` or `direct_response`",
            );
            return None;
        }
    };
    let mut local_rate_limit = None;
    let mut per_filter = Vec::new();
    let mut compressors = Vec::new();
    for (name, any) in &r.typed_per_filter_config {
        let at = at.field("typed_per_filter_config").key(name);
        if type_name(any) == http::compressor::PER_ROUTE {
            compressors.extend(
                decode_any(any, &at, out)
                    .and_then(|c| http::compressor::per_route(&c, name, &at, out)),
            );
        } else if type_name(any) == http::LOCAL_RATE_LIMIT {
            local_rate_limit =
                decode_any(any, &at, out).and_then(|c| http::local_rate_limit(&c, &at, out));
            if local_rate_limit
                .as_ref()
                .is_some_and(|l| l.token_bucket.is_none())
            {
                out.error(
                    &at.field("token_bucket"),
                    "a per-route local rate limit needs its own token_bucket (as in Envoy)",
                );
            }
        } else if type_name(any) == http::RBAC_PER_ROUTE {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| super::rbac::per_route(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::Rbac(c)));
            }
        } else if type_name(any) == http::cors::POLICY {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| http::cors::policy(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::Cors(c)));
            }
        } else if type_name(any) == http::csrf::POLICY {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| http::csrf::policy(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::Csrf(c)));
            }
        } else if type_name(any) == http::EXT_AUTHZ_PER_ROUTE {
            if let Some(c) =
                decode_any(any, &at, out).and_then(|c| http::ext_authz::per_route(&c, &at, out))
            {
                per_filter.push((name.clone(), PerFilterConfig::ExtAuthz(c)));
            }
        } else {
            out.error(
                &at,
                format!("per-route config of {} is not supported", type_name(any)),
            );
        }
    }
    Some(Route {
        name: r.name.clone(),
        matcher,
        action,
        headers: header_mutations(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
            at,
        ),
        local_rate_limit,
        per_filter,
        compressors,
        buffer_limit: buffer_limit(
            r.request_body_buffer_limit.as_ref().map(|v| v.value),
            r.per_request_buffer_limit_bytes.as_ref().map(|v| v.value),
        )
        .or(host_limit),
        decorator: decorator(r.decorator.as_ref(), &at.field("decorator"), out),
    })
}

/// A route's `decorator`; Envoy refuses an empty `operation`.
fn decorator(
    d: Option<&pb::Decorator>,
    at: &Path,
    out: &mut Out,
) -> Option<crate::model::route::Decorator> {
    let d = d?;
    if d.operation.is_empty() {
        out.error(
            &at.field("operation"),
            "a decorator needs a non-empty operation (Envoy refuses an empty one)",
        );
        return None;
    }
    Some(crate::model::route::Decorator {
        operation: d.operation.clone(),
        propagate: d.propagate.is_none_or(|p| p.value),
    })
}

fn route_match(m: &pb::RouteMatch, at: &Path, out: &mut Out) -> Option<RouteMatch> {
    use pb::route_match::PathSpecifier as P;
    let path = match &m.path_specifier {
        Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(P::Path(p)) => PathMatch::Path(p.clone()),
        Some(P::SafeRegex(r)) => PathMatch::SafeRegex(pattern(
            &r.regex,
            &at.field("safe_regex").field("regex"),
            out,
        )?),
        Some(P::PathSeparatedPrefix(p)) => {
            if p.contains(['?', '#']) || (p.len() > 1 && p.ends_with('/')) {
                out.error(
                    &at.field("path_separated_prefix"),
                    "must not contain `?` or `#`, nor end with `/`",
                );
            }
            PathMatch::PathSeparatedPrefix(p.clone())
        }
        Some(P::ConnectMatcher(_)) | Some(P::PathMatchPolicy(_)) => {
            out.error(at, "CONNECT matchers and path match policies are not supported; use prefix, path or safe_regex");
            return None;
        }
        None => {
            out.error(
                at,
                "a route match needs one of prefix, path, safe_regex or path_separated_prefix",
            );
            return None;
        }
    };
    let headers = m
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header_matcher(h, &at.field("headers").index(i), out))
        .collect();
    let query_parameters = m
        .query_parameters
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            use pb::query_parameter_matcher::QueryParameterMatchSpecifier as Q;
            let at = at.field("query_parameters").index(i);
            let string_match = match &q.query_parameter_match_specifier {
                Some(Q::StringMatch(s)) => Some(string_matcher(s, &at.field("string_match"), out)?),
                _ => None,
            };
            Some(QueryParameterMatcher {
                name: q.name.clone(),
                string_match,
            })
        })
        .collect();
    Some(RouteMatch {
        path,
        case_sensitive: super::bool_or(&m.case_sensitive, true),
        headers,
        query_parameters,
        grpc: m.grpc.is_some(),
    })
}

pub(super) fn header_matcher(
    h: &pb::HeaderMatcher,
    at: &Path,
    out: &mut Out,
) -> Option<HeaderMatcher> {
    use crate::model::core::{StringMatch, StringMatcher};
    use pb::header_matcher::HeaderMatchSpecifier as H;
    let exact = |pattern| {
        HeaderRule::Matches(StringMatcher {
            pattern,
            ignore_case: false,
        })
    };
    let rule = match &h.header_match_specifier {
        None => HeaderRule::Present(true),
        Some(H::PresentMatch(p)) => HeaderRule::Present(*p),
        Some(H::ExactMatch(s)) => exact(StringMatch::Exact(s.clone())),
        Some(H::PrefixMatch(s)) => exact(StringMatch::Prefix(s.clone())),
        Some(H::SuffixMatch(s)) => exact(StringMatch::Suffix(s.clone())),
        Some(H::ContainsMatch(s)) => exact(StringMatch::Contains(s.clone())),
        Some(H::SafeRegexMatch(r)) => exact(StringMatch::SafeRegex(regex_matcher(
            &Some(r.clone()),
            &at.field("safe_regex_match"),
            out,
        )?)),
        Some(H::StringMatch(s)) => {
            HeaderRule::Matches(string_matcher(s, &at.field("string_match"), out)?)
        }
        Some(H::RangeMatch(_)) => {
            out.error(
                &at.field("range_match"),
                "range matches on headers are not supported",
            );
            return None;
        }
    };
    Some(HeaderMatcher {
        name: h.name.to_ascii_lowercase(),
        rule,
        invert_match: h.invert_match,
        treat_missing_header_as_empty: h.treat_missing_header_as_empty,
    })
}

fn forward(
    a: &pb::RouteAction,
    host_retry: Option<&RetryPolicy>,
    host_hedge: Option<bool>,
    at: &Path,
    out: &mut Out,
) -> Option<Forward> {
    use pb::route_action::{ClusterSpecifier as C, HostRewriteSpecifier as H};
    let target = match &a.cluster_specifier {
        Some(C::Cluster(name)) => ClusterTarget::Cluster(name.as_str().into()),
        Some(C::ClusterHeader(header)) => ClusterTarget::ClusterHeader(header.to_ascii_lowercase()),
        Some(C::WeightedClusters(w)) => {
            let at = at.field("weighted_clusters");
            let clusters: Vec<WeightedCluster> = w
                .clusters
                .iter()
                .enumerate()
                .map(|(i, c)| WeightedCluster {
                    name: c.name.as_str().into(),
                    weight: u32_or(&c.weight, 0),
                    headers: header_mutations(
                        &c.request_headers_to_add,
                        &c.request_headers_to_remove,
                        &c.response_headers_to_add,
                        &c.response_headers_to_remove,
                        &at.field("clusters").index(i),
                    ),
                })
                .collect();
            let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
            if total == 0 {
                out.error(
                    &at.field("clusters"),
                    "the weights add up to 0; give at least one cluster a weight",
                );
            }
            // Envoy 1.40 accepts a deprecated `total_weight` that differs from the sum and draws by the sum.
            if let Some(declared) = &w.total_weight
                && u64::from(declared.value) != total
            {
                out.warning(
                    &at.field("total_weight"),
                    format!(
                        "is {} but the cluster weights add up to {total}; ignored, as in Envoy: the sum is used",
                        declared.value
                    ),
                );
            }
            ClusterTarget::WeightedClusters(clusters)
        }
        _ => {
            out.error(
                at,
                "a route needs `cluster`, `weighted_clusters` or `cluster_header`",
            );
            return None;
        }
    };
    let host_rewrite = match &a.host_rewrite_specifier {
        Some(H::HostRewriteLiteral(host)) => HostRewrite::Literal(host.clone()),
        Some(H::AutoHostRewrite(flag)) if flag.value => HostRewrite::Auto,
        None | Some(H::AutoHostRewrite(_)) => HostRewrite::Keep,
        Some(_) => {
            out.error(
                at,
                "only host_rewrite_literal and auto_host_rewrite are supported for host rewrites",
            );
            return None;
        }
    };
    let prefix_rewrite = Some(a.prefix_rewrite.clone()).filter(|p| !p.is_empty());
    let regex_rewrite = a
        .regex_rewrite
        .as_ref()
        .and_then(|r| regex_rewrite(r, &at.field("regex_rewrite"), out));
    if prefix_rewrite.is_some() && regex_rewrite.is_some() {
        out.error(at, "prefix_rewrite and regex_rewrite cannot both be set");
    }
    let retry_policy = match &a.retry_policy {
        Some(r) => retry_policy(r, &at.field("retry_policy"), out),
        None => host_retry.cloned(),
    };
    Some(Forward {
        target,
        prefix_rewrite,
        regex_rewrite,
        host_rewrite,
        timeout: timeout_or(&a.timeout, Some(Duration::from_secs(15))),
        idle_timeout: timeout_or(&a.idle_timeout, None),
        retry_policy,
        // The route's hedge policy, else its virtual host's.
        hedge_on_per_try_timeout: a
            .hedge_policy
            .as_ref()
            .map(|h| h.hedge_on_per_try_timeout)
            .or(host_hedge)
            .unwrap_or(false),
        rate_limits: super::rate_limit::rate_limits(&a.rate_limits, &at.field("rate_limits"), out),
        include_vh_rate_limits: a.include_vh_rate_limits.as_ref().is_some_and(|b| b.value),
        upgrades: a
            .upgrade_configs
            .iter()
            .map(|u| {
                (
                    u.upgrade_type.to_ascii_lowercase(),
                    super::bool_or(&u.enabled, true),
                )
            })
            .collect(),
        hash_policy: hash_policy(&a.hash_policy),
        mirrors: mirror::mirror_policies(
            &a.request_mirror_policies,
            &at.field("request_mirror_policies"),
            out,
        ),
        cors: a
            .cors
            .as_ref()
            .and_then(|c| http::cors::legacy(c, &at.field("cors"), out)),
    })
}

fn regex_rewrite(r: &RegexMatchAndSubstitute, at: &Path, out: &mut Out) -> Option<RegexRewrite> {
    Some(RegexRewrite {
        pattern: regex_matcher(&r.pattern, &at.field("pattern"), out)?,
        substitution: r.substitution.clone(),
    })
}

fn redirect(r: &pb::RedirectAction, at: &Path, out: &mut Out) -> Option<Redirect> {
    use pb::redirect_action::{
        PathRewriteSpecifier as P, RedirectResponseCode as Code, SchemeRewriteSpecifier as S,
    };
    let scheme = match &r.scheme_rewrite_specifier {
        Some(S::HttpsRedirect(true)) => Some("https".to_string()),
        // Kept as written: Envoy puts it in `Location` unchanged.
        Some(S::SchemeRedirect(s)) => Some(s.clone()),
        _ => None,
    };
    let path = match &r.path_rewrite_specifier {
        None => RedirectPath::Keep,
        Some(P::PathRedirect(p)) => RedirectPath::Path(p.clone()),
        Some(P::PrefixRewrite(p)) => RedirectPath::PrefixRewrite(p.clone()),
        Some(P::RegexRewrite(re)) => {
            RedirectPath::RegexRewrite(regex_rewrite(re, &at.field("regex_rewrite"), out)?)
        }
        Some(P::PathRewrite(_)) => {
            out.error(
                &at.field("path_rewrite"),
                "path_rewrite is not supported; use path_redirect or prefix_rewrite",
            );
            return None;
        }
    };
    let response_code = match Code::try_from(r.response_code) {
        Ok(Code::Found) => 302,
        Ok(Code::SeeOther) => 303,
        Ok(Code::TemporaryRedirect) => 307,
        Ok(Code::PermanentRedirect) => 308,
        _ => 301,
    };
    let port = match u16::try_from(r.port_redirect) {
        Ok(0) => None,
        Ok(port) => Some(port),
        Err(_) => {
            out.error(&at.field("port_redirect"), "must be at most 65535");
            None
        }
    };
    Some(Redirect {
        scheme,
        host: Some(r.host_redirect.clone()).filter(|h| !h.is_empty()),
        port,
        path,
        response_code,
        strip_query: r.strip_query,
    })
}

fn direct_response(
    d: &pb::DirectResponseAction,
    at: &Path,
    out: &mut Out,
) -> Option<DirectResponse> {
    use crate::model::core::DataSource;
    let Ok(status) = u16::try_from(d.status) else {
        out.error(&at.field("status"), "not an HTTP status code");
        return None;
    };
    let body = match d
        .body
        .as_ref()
        .map(|_| super::data_source(&d.body, &at.field("body"), out))
    {
        None => None,
        Some(None) => return None,
        Some(Some(DataSource::InlineString(s))) => Some(s),
        Some(Some(DataSource::InlineBytes(b))) => Some(String::from_utf8_lossy(&b).into_owned()),
        Some(Some(DataSource::Filename(f))) => match std::fs::read_to_string(&f) {
            Ok(s) => Some(s),
            Err(e) => {
                out.error(
                    &at.field("body").field("filename"),
                    format!("cannot read {f}: {e}"),
                );
                return None;
            }
        },
        Some(Some(DataSource::EnvironmentVariable(v))) => match std::env::var(&v) {
            Ok(s) => Some(s),
            Err(_) => {
                out.error(
                    &at.field("body").field("environment_variable"),
                    format!("environment variable {v} is not set"),
                );
                return None;
            }
        },
    };
    Some(DirectResponse { status, body })
}

/// Used by the reference checks: every cluster a route table can name.
pub fn named_clusters<'a>(config: &'a RouteConfig, top: &Path) -> Vec<(Path, &'a str)> {
    let mut names = Vec::new();
    for (i, host) in config.virtual_hosts.iter().enumerate() {
        for (j, route) in host.routes.iter().enumerate() {
            let at = top
                .field("virtual_hosts")
                .index(i)
                .field("routes")
                .index(j)
                .field("route");
            if let RouteAction::Route(forward) = &route.action {
                match &forward.target {
                    ClusterTarget::Cluster(name) => names.push((at.field("cluster"), &**name)),
                    ClusterTarget::WeightedClusters(list) => {
                        for (k, c) in list.iter().enumerate() {
                            names.push((
                                at.field("weighted_clusters")
                                    .field("clusters")
                                    .index(k)
                                    .field("name"),
                                &*c.name,
                            ));
                        }
                    }
                    ClusterTarget::ClusterHeader(_) => {}
                }
                // Envoy refuses an unknown shadow cluster as it does an unknown route cluster.
                for (k, mirror) in forward.mirrors.iter().enumerate() {
                    if let MirrorTarget::Cluster(name) = &mirror.target {
                        names.push((
                            at.field("request_mirror_policies")
                                .index(k)
                                .field("cluster"),
                            name.as_str(),
                        ));
                    }
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests;

/// `RouteAction.hash_policy`. The support table lets through only the forms converted here (`cookie.ttl`,
/// `header.regex_rewrite` and `filter_state` are refused by name before this runs).
fn hash_policy(list: &[pb::route_action::HashPolicy]) -> Vec<HashPolicy> {
    use pb::route_action::hash_policy::PolicySpecifier as P;
    list.iter()
        .filter_map(|h| {
            let input = match h.policy_specifier.as_ref()? {
                P::Header(header) => HashInput::Header(header.header_name.to_ascii_lowercase()),
                P::Cookie(cookie) => HashInput::Cookie(cookie.name.clone()),
                // As Envoy: `source_ip: false` adds no hash method at all.
                P::ConnectionProperties(c) if c.source_ip => HashInput::SourceIp,
                P::QueryParameter(q) => HashInput::QueryParameter(q.name.clone()),
                P::ConnectionProperties(_) | P::FilterState(_) => return None,
            };
            Some(HashPolicy {
                input,
                terminal: h.terminal,
            })
        })
        .collect()
}
