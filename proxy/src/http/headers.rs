//! Header work around the router: hop-by-hop removal, request id, forwarding headers, mutations, redirects.

use super::Connection;
use super::local_reply::{self, ResponseBody};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use outrigger_config::model::core::{AppendAction, HeaderMutations, HeaderToAdd};
use outrigger_config::model::route::{Forward, PathMatch, Redirect, RedirectPath, Route};

/// Headers that describe one hop, never forwarded (RFC 9110 section 7.6.1). Parsed names: a `&str` would be
/// parsed again for every request.
static HOP_BY_HOP: [HeaderName; 6] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::PROXY_AUTHENTICATE,
];

/// `x-request-id`, parsed once.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// The request's host, from the URI (h2 `:authority`) or the `Host` header.
pub fn authority(parts: &Parts) -> Option<&str> {
    authority_in(&parts.uri, &parts.headers)
}

/// The same, from a request's URI and headers.
pub fn authority_in<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// A version 4 UUID from the thread's fast generator: a request id needs to be unique, not unguessable, and the
/// system's secure source would cost a `getrandom` system call per request.
fn request_id() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// A new request id as a header value whose copies share its bytes: an access log's record keeps a copy, and
/// a value made from a `Vec` would allocate again on its first copy.
fn request_id_value(id: uuid::Uuid) -> Option<HeaderValue> {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text)).ok()
}

/// The connection manager's changes to a request before routing. Returns the `x-request-id` it generated, if
/// it did: the tracer's decision reads it from there instead of parsing the header back.
pub fn prepare_request(parts: &mut Parts, connection: &Connection) -> Option<uuid::Uuid> {
    remove_hop_by_hop(&mut parts.headers);
    let hcm = &connection.hcm;
    let mut generated = None;
    if hcm.generate_request_id && !parts.headers.contains_key(X_REQUEST_ID) {
        let id = request_id();
        if let Some(value) = request_id_value(id) {
            parts.headers.insert(X_REQUEST_ID, value);
            generated = Some(id);
        }
    }
    super::client_cert::apply(
        &mut parts.headers,
        hcm.forward_client_cert_details,
        hcm.set_current_client_cert_details,
        connection.tls.as_ref(),
    );
    let client = super::forwarded::apply(
        &mut parts.headers,
        hcm,
        connection.peer.ip(),
        connection.tls.is_some(),
    );
    parts.extensions.insert(TrustedClient(client));
    if hcm.add_user_agent {
        add_user_agent(
            &mut parts.headers,
            &connection.inputs.generation().snapshot.node,
        );
    }
    generated
}

/// `add_user_agent`, after the edge clean-up removed what a client sent of these headers (as Envoy orders it).
fn add_user_agent(headers: &mut HeaderMap, node: &outrigger_config::model::Node) {
    let Ok(cluster) = HeaderValue::from_str(&node.cluster) else {
        return;
    };
    headers.insert("x-envoy-downstream-service-cluster", cluster.clone());
    if headers
        .get(http::header::USER_AGENT)
        .is_none_or(|v| v.is_empty())
    {
        headers.insert(http::header::USER_AGENT, cluster);
    }
    if !node.id.is_empty()
        && let Ok(id) = HeaderValue::from_str(&node.id)
    {
        headers.insert("x-envoy-downstream-service-node", id);
    }
}

/// The client's address as the connection manager trusts it (from `x-forwarded-for` or the peer).
#[derive(Clone, Copy, Debug)]
pub struct TrustedClient(pub std::net::IpAddr);

/// The lower-cased `Upgrade` of a request whose `Connection` asks for an upgrade.
pub fn upgrade_type(headers: &HeaderMap) -> Option<String> {
    let asks = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let kind = headers
        .get(http::header::UPGRADE)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    asks.then_some(kind)
}

pub fn restore_upgrade(headers: &mut HeaderMap, kind: &str) {
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    if let Ok(value) = HeaderValue::from_str(kind) {
        headers.insert(http::header::UPGRADE, value);
    }
}

pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    if headers.contains_key(http::header::CONNECTION) {
        let named: Vec<String> = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
            .collect();
        for name in &named {
            headers.remove(name.as_str());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    // `TE` may only say `trailers` (gRPC needs that).
    let keep_te = headers
        .get(http::header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("trailers"));
    headers.remove(http::header::TE);
    if keep_te {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

pub fn mutate_request(headers: &mut HeaderMap, mutations: &HeaderMutations) {
    for name in &mutations.request_headers_to_remove {
        headers.remove(name.as_str());
    }
    add(headers, &mutations.request_headers_to_add);
}

pub fn mutate_response(headers: &mut HeaderMap, mutations: &HeaderMutations) {
    for name in &mutations.response_headers_to_remove {
        headers.remove(name.as_str());
    }
    add(headers, &mutations.response_headers_to_add);
}

pub fn add(headers: &mut HeaderMap, list: &[HeaderToAdd]) {
    for header in list {
        if header.value.is_empty() && !header.keep_empty_value {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_str(&header.value),
        ) else {
            continue;
        };
        match header.append_action {
            AppendAction::AppendIfExistsOrAdd => {
                headers.append(name, value);
            }
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => {
                headers.insert(name, value);
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// The path a forwarding route sends: after its `prefix_rewrite` or `regex_rewrite`; `None` when it has
/// neither (the request's own path goes as it is).
pub fn forwarded_path(path_and_query: &str, route: &Route, forward: &Forward) -> Option<String> {
    if forward.prefix_rewrite.is_none() && forward.regex_rewrite.is_none() {
        return None;
    }
    Some(rewrite_path(
        path_and_query,
        route,
        forward.prefix_rewrite.as_deref(),
        forward
            .regex_rewrite
            .as_ref()
            .map(|r| (&r.pattern, r.substitution.as_str())),
    ))
}

/// The path after `prefix_rewrite` or `regex_rewrite`, query kept.
pub fn rewrite_path(
    path_and_query: &str,
    route: &Route,
    prefix: Option<&str>,
    regex: Option<(&outrigger_config::model::core::Pattern, &str)>,
) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut new_path = path.to_string();
    if let Some(replacement) = prefix {
        // The matched prefix is replaced; with an exact `path` match, the whole path is.
        let matched_len = match &route.matcher.path {
            PathMatch::Prefix(p) | PathMatch::PathSeparatedPrefix(p) => p.len().min(path.len()),
            PathMatch::Path(_) => path.len(),
            PathMatch::SafeRegex(_) => 0,
        };
        new_path = format!("{replacement}{}", &path[matched_len..]);
    } else if let Some((pattern, substitution)) = regex {
        new_path = pattern.replace_all(path, substitution);
    }
    match query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    }
}

pub fn redirect(parts: &Parts, redirect: &Redirect, route: &Route) -> Response<ResponseBody> {
    let current_host = authority(parts).unwrap_or_default();
    let (current_name, current_port) = match current_host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => {
            (name.to_string(), Some(port.to_string()))
        }
        _ => (current_host.to_string(), None),
    };
    let request_scheme = parts.uri.scheme_str().unwrap_or("http");
    let scheme = redirect.scheme.as_deref().unwrap_or(request_scheme);
    // Envoy's rules: `host_redirect` replaces the host with its port. The request's port is kept unless
    // `port_redirect` replaces it, or the scheme changes and the port is the old scheme's default.
    let host = match (&redirect.host, current_port) {
        (Some(host), _) => host.clone(),
        (None, Some(port)) => {
            let default_port = matches!(
                (request_scheme, port.as_str()),
                ("http", "80") | ("https", "443")
            );
            if redirect.port.is_some() || (scheme != request_scheme && default_port) {
                current_name
            } else {
                format!("{current_name}:{port}")
            }
        }
        (None, None) => current_name,
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut path = match &redirect.path {
        RedirectPath::Keep => path_and_query.to_string(),
        RedirectPath::Path(p) => match path_and_query.split_once('?') {
            Some((_, q)) if !p.contains('?') => format!("{p}?{q}"),
            _ => p.clone(),
        },
        RedirectPath::PrefixRewrite(p) => rewrite_path(path_and_query, route, Some(p), None),
        RedirectPath::RegexRewrite(r) => rewrite_path(
            path_and_query,
            route,
            None,
            Some((&r.pattern, &r.substitution)),
        ),
    };
    if redirect.strip_query
        && let Some((p, _)) = path.split_once('?')
    {
        path = p.to_string();
    }
    let location = match redirect.port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut response = Response::new(local_reply::empty());
    *response.status_mut() =
        StatusCode::from_u16(redirect.response_code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.to_string().len(), 36);
    }
}
