//! What Envoy 1.40's CORS filter decides for one request, apart from the machinery that answers it: the
//! policies that apply (a route's before its virtual host's), each field taken from the first policy that sets
//! it, and the decision on the request's head.

use super::super::connection_manager::Matched;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use outrigger_config::model::core::{Fraction, StringMatcher};
use outrigger_config::model::cors::CorsPolicy;
use outrigger_config::model::route::{PerFilterConfig, RouteAction};

/// The policies for one request, most specific first.
pub struct Policies<'a>(Vec<&'a CorsPolicy>);

impl<'a> Policies<'a> {
    /// The filter named `name` reads its `typed_per_filter_config` policies (route, then virtual host); only
    /// when there are none, the deprecated `cors` fields of the route action and the virtual host. `None`:
    /// no route, or a route without a route action (redirects, direct responses), which the filter leaves alone.
    pub fn for_request(name: &str, matched: Option<&'a Matched>) -> Option<Self> {
        let (_, host, route) = matched?.route()?;
        let RouteAction::Route(forward) = &route.action else {
            return None;
        };
        let typed = |c: Option<&'a PerFilterConfig>| match c {
            Some(PerFilterConfig::Cors(p)) => Some(p),
            _ => None,
        };
        let mut policies: Vec<&CorsPolicy> = typed(route.per_filter(name))
            .into_iter()
            .chain(typed(host.per_filter(name)))
            .collect();
        if policies.is_empty() {
            policies.extend(forward.cors.as_ref());
            policies.extend(host.cors.as_ref());
        }
        Some(Policies(policies))
    }

    #[cfg(test)]
    pub fn new(policies: Vec<&'a CorsPolicy>) -> Self {
        Policies(policies)
    }

    fn first<T>(&self, field: impl Fn(&'a CorsPolicy) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(|p| field(p))
    }

    fn text(&self, field: impl Fn(&'a CorsPolicy) -> &'a str) -> &'a str {
        self.first(|p| Some(field(p)).filter(|s| !s.is_empty()))
            .unwrap_or_default()
    }

    fn origins(&self) -> &'a [StringMatcher] {
        self.first(|p| Some(p.allow_origin.as_slice()).filter(|o| !o.is_empty()))
            .unwrap_or_default()
    }

    /// A matcher that matches `*` lets every origin in, as in Envoy.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins()
            .iter()
            .any(|m| m.matches("*") || m.matches(origin))
    }

    pub fn allow_credentials(&self) -> bool {
        self.first(|p| p.allow_credentials).unwrap_or(false)
    }

    fn allow_private_network_access(&self) -> bool {
        self.first(|p| p.allow_private_network_access)
            .unwrap_or(false)
    }

    fn forward_not_matching_preflights(&self) -> bool {
        self.first(|p| p.forward_not_matching_preflights)
            .unwrap_or(true)
    }

    pub fn expose_headers(&self) -> &'a str {
        self.text(|p| &p.expose_headers)
    }

    /// Only the most specific policy says whether the filter is on; each call draws anew, as Envoy's runtime
    /// does for every `featureEnabled`.
    fn enabled(&self) -> bool {
        self.0
            .first()
            .is_some_and(|p| p.filter_enabled.is_none_or(roll))
    }

    fn shadow_enabled(&self) -> bool {
        self.0
            .first()
            .is_some_and(|p| p.shadow_enabled.is_some_and(roll))
    }
}

/// True with the fraction's probability.
fn roll(fraction: Fraction) -> bool {
    fraction.0 >= 1.0 || (fraction.0 > 0.0 && fastrand::f64() < fraction.0)
}

/// What the filter does with a request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Not a CORS request the filter acts on: nothing is counted or changed (no origin, or the filter is off).
    Ignore,
    /// Counted (origin valid or invalid), then passed on; with `decorate` when the response gets the CORS
    /// headers (an allowed origin, the filter enabled rather than shadowing).
    Pass {
        valid: bool,
        decorate: Option<Decorate>,
    },
    /// A preflight the proxy answers itself: 200 with these headers and no body (then decorated like any
    /// response, as Envoy passes its own reply through the filter's encoder).
    Answer {
        valid: bool,
        headers: HeaderMap,
        decorate: Option<Decorate>,
    },
}

/// The headers every response to an allowed CORS request gets.
#[derive(Debug, PartialEq, Clone)]
pub struct Decorate {
    pub origin: HeaderValue,
    pub credentials: bool,
    pub expose_headers: Option<HeaderValue>,
}

impl Decorate {
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("access-control-allow-origin", self.origin.clone());
        if self.credentials {
            headers.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert("access-control-expose-headers", expose.clone());
        }
    }
}

/// Envoy's decision on a request's head.
pub fn decide(policies: &Policies<'_>, request: &Parts) -> Decision {
    if !policies.enabled() && !policies.shadow_enabled() {
        return Decision::Ignore;
    }
    let headers = &request.headers;
    let Some(origin) = headers.get("origin").filter(|o| !o.is_empty()) else {
        return Decision::Ignore;
    };
    let valid = policies.origin_allowed(&String::from_utf8_lossy(origin.as_bytes()));
    if policies.shadow_enabled() && !policies.enabled() {
        return Decision::Pass {
            valid,
            decorate: None,
        };
    }
    let decorate = valid.then(|| Decorate {
        origin: origin.clone(),
        credentials: policies.allow_credentials(),
        expose_headers: value(policies.expose_headers()),
    });
    let requested_method = headers
        .get("access-control-request-method")
        .filter(|m| !m.is_empty());
    let (true, Some(requested_method)) = (request.method == Method::OPTIONS, requested_method)
    else {
        return Decision::Pass { valid, decorate };
    };
    if !valid && policies.forward_not_matching_preflights() {
        return Decision::Pass { valid, decorate };
    }
    Decision::Answer {
        valid,
        headers: preflight(policies, headers, valid.then_some(origin), requested_method),
        decorate,
    }
}

/// The headers of the proxy's answer to a preflight, in Envoy's order.
fn preflight(
    policies: &Policies<'_>,
    request: &HeaderMap,
    origin: Option<&HeaderValue>,
    requested_method: &HeaderValue,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(origin) = origin {
        out.insert("access-control-allow-origin", origin.clone());
    }
    if policies.allow_credentials() {
        out.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    // `*` answers with what the request asked for (an absent header as an empty value, as Envoy sets it).
    let requested = |name: &str| {
        request
            .get(name)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""))
    };
    match policies.text(|p| &p.allow_methods) {
        "" => {}
        "*" => {
            out.insert("access-control-allow-methods", requested_method.clone());
        }
        methods => {
            if let Some(v) = value(methods) {
                out.insert("access-control-allow-methods", v);
            }
        }
    }
    match policies.text(|p| &p.allow_headers) {
        "" => {}
        "*" => {
            out.insert(
                "access-control-allow-headers",
                requested("access-control-request-headers"),
            );
        }
        allowed => {
            if let Some(v) = value(allowed) {
                out.insert("access-control-allow-headers", v);
            }
        }
    }
    if let Some(max_age) = value(policies.text(|p| &p.max_age)) {
        out.insert("access-control-max-age", max_age);
    }
    if policies.allow_private_network_access()
        && request
            .get("access-control-request-private-network")
            .is_some_and(|v| v == "true")
    {
        out.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    out
}

/// A configured value as a header value (`None` when empty or not a valid header value).
fn value(text: &str) -> Option<HeaderValue> {
    (!text.is_empty())
        .then(|| HeaderValue::from_str(text).ok())
        .flatten()
}
