//! Route tables at request time: virtual host by domain, then the first route whose match holds.

use http::request::Parts;
use outrigger_config::model::route::{
    HeaderMatcher, HeaderRule, PathMatch, QueryParameterMatcher, Route, RouteConfig, RouteMatch,
    VirtualHost,
};

/// Envoy's order: exact domain, longest `*.suffix`, longest `prefix.*`, then `*`.
pub fn virtual_host<'a>(config: &'a RouteConfig, host: &str) -> Option<&'a VirtualHost> {
    virtual_host_index(config, host).and_then(|i| config.virtual_hosts.get(i))
}

/// The position of the virtual host for `host` in the table.
pub fn virtual_host_index(config: &RouteConfig, host: &str) -> Option<usize> {
    // Domains are lower case; the host is compared to them without case, in place (no copy per request).
    let host = host.as_bytes();
    let mut best: Option<(u8, usize, usize)> = None;
    for (index, vhost) in config.virtual_hosts.iter().enumerate() {
        for domain in &vhost.domains {
            let rank = if domain.as_bytes().eq_ignore_ascii_case(host) {
                Some((3, domain.len()))
            } else if domain == "*" {
                Some((0, 0))
            } else if let Some(suffix) = domain.strip_prefix('*') {
                (host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes()))
                .then_some((2, suffix.len()))
            } else if let Some(prefix) = domain.strip_suffix('*') {
                (host.len() > prefix.len()
                    && host[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
                .then_some((1, prefix.len()))
            } else {
                None
            };
            if let Some((kind, len)) = rank
                && best.is_none_or(|(k, l, _)| (kind, len) > (k, l))
            {
                best = Some((kind, len, index));
            }
        }
    }
    best.map(|(_, _, index)| index)
}

pub fn route<'a>(vhost: &'a VirtualHost, request: &Parts) -> Option<&'a Route> {
    route_index(vhost, request).and_then(|i| vhost.routes.get(i))
}

/// The position of the first route of `vhost` whose match holds.
pub fn route_index(vhost: &VirtualHost, request: &Parts) -> Option<usize> {
    vhost
        .routes
        .iter()
        .position(|route| matches(&route.matcher, request))
}

/// Whether a route's match holds for the request (path, headers, query parameters, gRPC).
pub(crate) fn matches(m: &RouteMatch, request: &Parts) -> bool {
    let path = request.uri.path();
    // Compared in place: no per-route allocation on the hot path.
    let case = m.case_sensitive;
    let path_ok = match &m.path {
        PathMatch::Prefix(prefix) => starts_with(path, prefix, case),
        PathMatch::Path(exact) => same(path.as_bytes(), exact.as_bytes(), case),
        PathMatch::SafeRegex(pattern) => pattern.matches(path),
        PathMatch::PathSeparatedPrefix(prefix) => {
            starts_with(path, prefix, case)
                && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
        }
    };
    path_ok
        && m.headers.iter().all(|h| header_matches(h, request))
        && m.query_parameters
            .iter()
            .all(|q| query_matches(q, request.uri.query().unwrap_or("")))
        && (!m.grpc || is_grpc(request))
}

fn same(a: &[u8], b: &[u8], case_sensitive: bool) -> bool {
    if case_sensitive {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

fn starts_with(text: &str, prefix: &str, case_sensitive: bool) -> bool {
    text.len() >= prefix.len()
        && same(
            &text.as_bytes()[..prefix.len()],
            prefix.as_bytes(),
            case_sensitive,
        )
}

pub fn is_grpc(request: &Parts) -> bool {
    request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn header_matches(m: &HeaderMatcher, request: &Parts) -> bool {
    headers_match(m, &request.headers)
}

/// Whether a header map satisfies a header matcher (Envoy's rules: several values are joined by commas).
pub fn headers_match(m: &HeaderMatcher, headers: &http::HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(m.name.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = (!values.is_empty()).then(|| values.join(","));
    header_value_matches(m, joined)
}

/// A header matcher against a request, with the pseudo-headers Envoy's filters see (`:method`, `:path` with the
/// query, `:authority`, `:scheme`).
pub fn request_header_matches(m: &HeaderMatcher, request: &Parts) -> bool {
    let pseudo = match m.name.as_str() {
        ":method" => Some(request.method.as_str().to_string()),
        ":path" => Some(
            request
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        ),
        ":authority" => super::headers::authority(request).map(str::to_string),
        ":scheme" => Some(request.uri.scheme_str().unwrap_or("http").to_string()),
        _ => return headers_match(m, &request.headers),
    };
    header_value_matches(m, pseudo)
}

/// Whether a header's value (`None`: absent) satisfies a header matcher.
pub fn header_value_matches(m: &HeaderMatcher, value: Option<String>) -> bool {
    let value = value.or_else(|| m.treat_missing_header_as_empty.then(String::new));
    let result = match (&m.rule, value) {
        (HeaderRule::Present(want), value) => value.is_some() == *want,
        (HeaderRule::Matches(matcher), Some(value)) => matcher.matches(&value),
        // A value rule never matches an absent header, inverted or not (as in Envoy).
        (HeaderRule::Matches(_), None) => return false,
    };
    result != m.invert_match
}

fn query_matches(m: &QueryParameterMatcher, query: &str) -> bool {
    let value = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == m.name).then_some(value)
    });
    match (&m.string_match, value) {
        (None, value) => value.is_some(),
        (Some(matcher), Some(value)) => matcher.matches(value),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_compare_in_place_with_or_without_case() {
        assert!(starts_with("/API/v1", "/api", false));
        assert!(!starts_with("/API/v1", "/api", true));
        assert!(starts_with("/api", "/api", true));
        assert!(!starts_with("/ap", "/api", true));
        // Multi-byte text is compared as bytes, never sliced inside a character.
        assert!(!starts_with("/é", "/e", false));
        assert!(same(b"/Path", b"/path", false) && !same(b"/Path", b"/path", true));
    }
}
