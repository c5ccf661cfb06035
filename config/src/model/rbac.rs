//! `envoy.filters.network.rbac`: which connections a filter chain serves, by the peer's identity and address.

use super::core::StringMatcher;
use super::listener::Cidr;
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
    RemoteIp(Cidr),
}
