//! The HTTP RBAC filter's `matcher`/`shadow_matcher`: Envoy's unified matcher (`xds.type.matcher.v3.Matcher`)
//! whose actions are `envoy.config.rbac.v3.Action`s.

use super::core::StringMatcher;
use super::listener::Cidr;
use super::rbac::RbacAction;
use serde::Serialize;

/// A matcher: its list or tree, then `on_no_match` when nothing in it matched.
#[derive(Clone, Debug, Serialize)]
pub struct Matcher {
    pub kind: MatcherKind,
    pub on_no_match: Option<Box<OnMatch>>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatcherKind {
    /// `matcher_list`: the first matcher whose predicate holds (and whose `on_match` gives an action) wins.
    List(Vec<FieldMatcher>),
    /// `matcher_tree.exact_match_map`: the entry equal to the input's value.
    Exact {
        input: Input,
        map: Vec<(String, OnMatch)>,
    },
    /// `matcher_tree.prefix_match_map`: the entries that prefix the value, longest first, until one gives an action.
    Prefix {
        input: Input,
        map: Vec<(String, OnMatch)>,
    },
    /// Neither: only `on_no_match` applies.
    Empty,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldMatcher {
    pub predicate: Predicate,
    pub on_match: OnMatch,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMatch {
    Action(MatchAction),
    /// A nested matcher: when it gives no action, the outer matcher goes on as if this entry had not matched.
    Matcher(Box<Matcher>),
}

/// `envoy.config.rbac.v3.Action`.
#[derive(Clone, Debug, Serialize)]
pub struct MatchAction {
    pub name: String,
    pub action: RbacAction,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    Single { input: Input, value: ValueMatch },
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMatch {
    /// `value_match`.
    String(StringMatcher),
    /// `custom_match` with `envoy.extensions.matching.input_matchers.ip.v3.Ip`: the value is an IP in a range.
    Ip(Vec<Cidr>),
}

/// What a predicate or tree looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// `HttpRequestHeaderMatchInput` (lower-cased name; several values joined by `,`).
    RequestHeader(String),
    /// The client the connection manager trusts (as `remote_ip`).
    SourceIp,
    SourcePort,
    /// The peer of the connection.
    DirectSourceIp,
    DestinationIp,
    DestinationPort,
    /// The verified client certificate's URI SANs, joined by `,`.
    UriSan,
    /// The verified client certificate's DNS SANs, joined by `,`.
    DnsSan,
}
