//! `envoy.filters.network.rbac`: which connections a filter chain serves, by the peer's identity and address;
//! `envoy.filters.http.rbac`: which requests are served, by the same matchers and the request's headers and path.

use super::core::StringMatcher;
use super::listener::Cidr;
use super::route::HeaderMatcher;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Rbac {
    pub stat_prefix: String,
    /// Absent: every connection is allowed (Envoy's behaviour without `rules`).
    pub rules: Option<RbacRules>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RbacRules {
    pub action: RbacAction,
    /// By name, in name order.
    pub policies: Vec<(String, Policy)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RbacAction {
    /// Only connections some policy matches are served.
    Allow,
    /// Connections some policy matches are closed.
    Deny,
    /// Every connection is served; matches are only logged.
    Log,
}

/// A policy matches when one of its permissions and one of its principals match.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// What the connection asks for.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Any,
    AndRules(Vec<Permission>),
    OrRules(Vec<Permission>),
    NotRule(Box<Permission>),
    DestinationIp(Cidr),
    DestinationPort(u16),
    /// Inclusive start, exclusive end, as Envoy's `Int32Range`.
    DestinationPortRange(u16, u32),
    RequestedServerName(StringMatcher),
    /// HTTP only: a request header or pseudo-header (`:method`, `:path`, `:authority`, `:scheme`).
    Header(HeaderMatcher),
    /// HTTP only: the path without its query string.
    UrlPath(StringMatcher),
}

/// Who the connection comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Any,
    AndIds(Vec<Principal>),
    OrIds(Vec<Principal>),
    NotId(Box<Principal>),
    /// A TLS peer with a verified certificate; with a matcher, its URI SANs, else its DNS SANs, else its subject
    /// must match.
    Authenticated(Option<StringMatcher>),
    DirectRemoteIp(Cidr),
    /// The client as the connection manager trusts it: for HTTP, from `x-forwarded-for` per
    /// `use_remote_address` and `xff_num_trusted_hops`; for a connection, the peer.
    RemoteIp(Cidr),
    /// HTTP only: a request header or pseudo-header.
    Header(HeaderMatcher),
    /// HTTP only: the path without its query string.
    UrlPath(StringMatcher),
}

/// `envoy.filters.http.rbac`: `rules` decide; `shadow_rules` are only counted (`shadow_allowed`/`shadow_denied`).
#[derive(Clone, Debug, Serialize)]
pub struct HttpRbac {
    /// The filter's `name`: a route's `typed_per_filter_config` entry of that name replaces the rules.
    pub name: String,
    /// Absent: every request is allowed and nothing is counted (Envoy's behaviour).
    pub rules: Option<HttpRbacEngine>,
    pub shadow_rules: Option<HttpRbacEngine>,
}

/// What decides an HTTP request: `rules`, or `matcher` (which wins when both are set, as in Envoy).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpRbacEngine {
    Rules(RbacRules),
    Matcher(super::rbac_matcher::Matcher),
}

/// `RBACPerRoute`: the route's own rules, replacing the filter's (absent `rbac` or `rules`: not enforced).
#[derive(Clone, Debug, Serialize)]
pub struct RbacPerRoute {
    pub rules: Option<HttpRbacEngine>,
    pub shadow_rules: Option<HttpRbacEngine>,
}
