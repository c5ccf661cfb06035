//! The HTTP RBAC filter's `matcher`/`shadow_matcher` (`xds.type.matcher.v3.Matcher` with
//! `envoy.config.rbac.v3.Action`s). Inputs, input matchers and tree kinds we do not evaluate are refused by
//! name here (the support table refuses their fields and types too).

use super::{Out, decode_any, pattern, type_name};
use crate::diagnostic::Path;
use crate::model::core::{StringMatch, StringMatcher};
use crate::model::rbac::RbacAction;
use crate::model::rbac_matcher::{
    FieldMatcher, Input, MatchAction, Matcher, MatcherKind, OnMatch, Predicate, ValueMatch,
};
use envoy_types::pb::envoy::config::rbac::v3 as rbac;
use envoy_types::pb::envoy::extensions::matching::input_matchers::ip::v3::Ip;
use envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3 as xds;

const ACTION: &str = "envoy.config.rbac.v3.Action";
const HEADER_INPUT: &str = "envoy.type.matcher.v3.HttpRequestHeaderMatchInput";
const NETWORK: &str = "envoy.extensions.matching.common_inputs.network.v3.";
const SSL: &str = "envoy.extensions.matching.common_inputs.ssl.v3.";
const IP_MATCHER: &str = "envoy.extensions.matching.input_matchers.ip.v3.Ip";

pub fn matcher(m: &xds::Matcher, at: &Path, out: &mut Out) -> Option<Matcher> {
    use xds::matcher::MatcherType as T;
    use xds::matcher::matcher_tree::TreeType;
    let kind = match &m.matcher_type {
        None => MatcherKind::Empty,
        Some(T::MatcherList(list)) => {
            let at = at.field("matcher_list").field("matchers");
            let mut matchers = Vec::new();
            for (i, fm) in list.matchers.iter().enumerate() {
                let at = at.index(i);
                let Some(p) = &fm.predicate else {
                    out.error(&at.field("predicate"), "a field matcher needs a predicate");
                    return None;
                };
                let predicate = predicate(p, &at.field("predicate"), out)?;
                let on_match = on_match(fm.on_match.as_ref(), &at.field("on_match"), out)?;
                matchers.push(FieldMatcher {
                    predicate,
                    on_match,
                });
            }
            MatcherKind::List(matchers)
        }
        Some(T::MatcherTree(tree)) => {
            let at = at.field("matcher_tree");
            let input = input(tree.input.as_ref(), &at.field("input"), out)?;
            let (field, map) = match &tree.tree_type {
                Some(TreeType::ExactMatchMap(map)) => ("exact_match_map", map),
                Some(TreeType::PrefixMatchMap(map)) => ("prefix_match_map", map),
                Some(TreeType::CustomMatch(_)) => {
                    out.error(
                        &at.field("custom_match"),
                        "custom tree matchers are not supported in envoy.filters.http.rbac; use \
                         exact_match_map, prefix_match_map or a matcher_list",
                    );
                    return None;
                }
                None => {
                    out.error(&at, "set exact_match_map or prefix_match_map");
                    return None;
                }
            };
            let mut keys: Vec<&String> = map.map.keys().collect();
            keys.sort();
            let mut entries = Vec::new();
            for key in keys {
                let at = at.field(field).field("map").field(key);
                entries.push((key.clone(), on_match(map.map.get(key), &at, out)?));
            }
            if field == "exact_match_map" {
                MatcherKind::Exact {
                    input,
                    map: entries,
                }
            } else {
                MatcherKind::Prefix {
                    input,
                    map: entries,
                }
            }
        }
    };
    let on_no_match = match &m.on_no_match {
        Some(o) => Some(Box::new(on_match(Some(o), &at.field("on_no_match"), out)?)),
        None => None,
    };
    Some(Matcher { kind, on_no_match })
}

fn on_match(o: Option<&xds::matcher::OnMatch>, at: &Path, out: &mut Out) -> Option<OnMatch> {
    use xds::matcher::on_match::OnMatch as O;
    match o.and_then(|o| o.on_match.as_ref()) {
        Some(O::Matcher(m)) => Some(OnMatch::Matcher(Box::new(matcher(
            m,
            &at.field("matcher"),
            out,
        )?))),
        Some(O::Action(a)) => Some(OnMatch::Action(action(a, &at.field("action"), out)?)),
        None => {
            out.error(at, "set an action or a nested matcher");
            None
        }
    }
}

fn action(a: &TypedExtensionConfig, at: &Path, out: &mut Out) -> Option<MatchAction> {
    let at = at.field("typed_config");
    let any = typed(a, &at, out)?;
    if type_name(any) != ACTION {
        out.error(
            &at,
            format!(
                "{} is not an RBAC action; envoy.filters.http.rbac takes {ACTION}",
                type_name(any)
            ),
        );
        return None;
    }
    let a: rbac::Action = decode_any(any, &at, out)?;
    use rbac::rbac::Action as A;
    let action = match A::try_from(a.action) {
        Ok(A::Allow) => RbacAction::Allow,
        Ok(A::Deny) => RbacAction::Deny,
        Ok(A::Log) => RbacAction::Log,
        Err(_) => {
            out.error(&at.field("action"), "use ALLOW, DENY or LOG");
            return None;
        }
    };
    Some(MatchAction {
        name: a.name,
        action,
    })
}

fn typed<'a>(
    c: &'a TypedExtensionConfig,
    at: &Path,
    out: &mut Out,
) -> Option<&'a envoy_types::pb::google::protobuf::Any> {
    let any = c.typed_config.as_ref();
    if any.is_none() {
        out.error(at, "a typed_config is required here");
    }
    any
}

fn input(c: Option<&TypedExtensionConfig>, at: &Path, out: &mut Out) -> Option<Input> {
    let Some(c) = c else {
        out.error(at, "an input is required here");
        return None;
    };
    let at = at.field("typed_config");
    let any = typed(c, &at, out)?;
    let name = type_name(any);
    let input = if name == HEADER_INPUT {
        let h: HttpRequestHeaderMatchInput = decode_any(any, &at, out)?;
        Input::RequestHeader(h.header_name.to_ascii_lowercase())
    } else if let Some(short) = name.strip_prefix(NETWORK) {
        match short {
            "SourceIPInput" => Input::SourceIp,
            "SourcePortInput" => Input::SourcePort,
            "DirectSourceIPInput" => Input::DirectSourceIp,
            "DestinationIPInput" => Input::DestinationIp,
            "DestinationPortInput" => Input::DestinationPort,
            _ => return unsupported_input(name, &at, out),
        }
    } else {
        match name.strip_prefix(SSL) {
            Some("UriSanInput") => Input::UriSan,
            Some("DnsSanInput") => Input::DnsSan,
            _ => return unsupported_input(name, &at, out),
        }
    };
    Some(input)
}

fn unsupported_input(name: &str, at: &Path, out: &mut Out) -> Option<Input> {
    out.error(
        at,
        format!(
            "the matcher input {name} is not supported in envoy.filters.http.rbac; supported: \
             {HEADER_INPUT}, {NETWORK}{{SourceIPInput, SourcePortInput, DirectSourceIPInput, \
             DestinationIPInput, DestinationPortInput}}, {SSL}{{UriSanInput, DnsSanInput}}"
        ),
    );
    None
}

fn predicate(
    p: &xds::matcher::matcher_list::Predicate,
    at: &Path,
    out: &mut Out,
) -> Option<Predicate> {
    use xds::matcher::matcher_list::predicate::MatchType as M;
    use xds::matcher::matcher_list::predicate::single_predicate::Matcher as V;
    let list =
        |l: &xds::matcher::matcher_list::predicate::PredicateList, at: &Path, out: &mut Out| {
            l.predicate
                .iter()
                .enumerate()
                .map(|(i, p)| predicate(p, &at.field("predicate").index(i), out))
                .collect::<Option<Vec<_>>>()
        };
    Some(match &p.match_type {
        Some(M::SinglePredicate(s)) => {
            let at = at.field("single_predicate");
            let input = input(s.input.as_ref(), &at.field("input"), out)?;
            let value = match &s.matcher {
                Some(V::ValueMatch(m)) => {
                    ValueMatch::String(string_matcher(m, &at.field("value_match"), out)?)
                }
                Some(V::CustomMatch(c)) => {
                    let at = at.field("custom_match").field("typed_config");
                    let any = typed(c, &at, out)?;
                    if type_name(any) != IP_MATCHER {
                        out.error(
                            &at,
                            format!(
                                "the input matcher {} is not supported in envoy.filters.http.rbac; use \
                                 value_match or {IP_MATCHER}",
                                type_name(any)
                            ),
                        );
                        return None;
                    }
                    let ip: Ip = decode_any(any, &at, out)?;
                    let ranges = ip
                        .cidr_ranges
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            super::listener::cidr(r, &at.field("cidr_ranges").index(i), out)
                        })
                        .collect::<Option<Vec<_>>>()?;
                    ValueMatch::Ip(ranges)
                }
                None => {
                    out.error(&at, "set value_match or custom_match");
                    return None;
                }
            };
            Predicate::Single { input, value }
        }
        Some(M::AndMatcher(l)) => Predicate::And(list(l, &at.field("and_matcher"), out)?),
        Some(M::OrMatcher(l)) => Predicate::Or(list(l, &at.field("or_matcher"), out)?),
        Some(M::NotMatcher(inner)) => {
            Predicate::Not(Box::new(predicate(inner, &at.field("not_matcher"), out)?))
        }
        None => {
            out.error(
                at,
                "set single_predicate, and_matcher, or_matcher or not_matcher",
            );
            return None;
        }
    })
}

/// The xDS flavour of Envoy's string matcher (the same fields).
fn string_matcher(m: &xds::StringMatcher, at: &Path, out: &mut Out) -> Option<StringMatcher> {
    use xds::string_matcher::MatchPattern as P;
    let pattern = match &m.match_pattern {
        Some(P::Exact(s)) => StringMatch::Exact(s.clone()),
        Some(P::Prefix(s)) => StringMatch::Prefix(s.clone()),
        Some(P::Suffix(s)) => StringMatch::Suffix(s.clone()),
        Some(P::Contains(s)) => StringMatch::Contains(s.clone()),
        Some(P::SafeRegex(r)) => StringMatch::SafeRegex(pattern(
            &r.regex,
            &at.field("safe_regex").field("regex"),
            out,
        )?),
        Some(P::Custom(_)) => {
            out.error(
                &at.field("custom"),
                "custom string matchers are not supported",
            );
            return None;
        }
        None => {
            out.error(at, "set exact, prefix, suffix, contains or safe_regex");
            return None;
        }
    };
    Some(StringMatcher {
        pattern,
        ignore_case: m.ignore_case,
    })
}
