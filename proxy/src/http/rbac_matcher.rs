//! The HTTP RBAC filter's `matcher`: Envoy's unified matcher evaluated on a request. As Envoy 1.40 does
//! (checked with real Envoy, `tests/envoy_auth_filters.rs::http_rbac_matcher_like_envoy`):
//! - in a `matcher_list` the first matcher whose predicate holds wins; a nested matcher that gives no action
//!   lets the list go on; then `on_no_match`;
//! - a `prefix_match_map` tries the prefixes of the value longest first, until one gives an action;
//! - an input without a value (an absent header, no client certificate) matches no `single_predicate`, and
//!   its `not_matcher` holds;
//! - an SSL input on a plaintext connection is unavailable: the whole evaluation stops there, so the request
//!   is denied, `on_no_match` included (`and`/`or` stop at their first deciding predicate before reaching it);
//! - no action at all denies the request.

use crate::rbac::Subject;
use outrigger_config::model::rbac::RbacAction;
use outrigger_config::model::rbac_matcher::{
    Input, MatchAction, Matcher, MatcherKind, OnMatch, Predicate, ValueMatch,
};
use std::net::IpAddr;

/// Whether the request goes on, and the action that decided (none: nothing matched, so denied).
pub fn decide<'m>(matcher: &'m Matcher, subject: &Subject<'_>) -> (bool, Option<&'m MatchAction>) {
    match evaluate(matcher, subject) {
        Ok(Some(action)) => (action.action != RbacAction::Deny, Some(action)),
        Ok(None) | Err(Unavailable) => (false, None),
    }
}

/// An input whose data the request cannot have (an SSL input on plaintext): Envoy's "unable to match".
struct Unavailable;

type Found<'m> = Result<Option<&'m MatchAction>, Unavailable>;

fn evaluate<'m>(m: &'m Matcher, s: &Subject<'_>) -> Found<'m> {
    let found = match &m.kind {
        MatcherKind::List(list) => {
            let mut found = None;
            for fm in list {
                if holds(&fm.predicate, s)? {
                    found = on_match(&fm.on_match, s)?;
                    if found.is_some() {
                        break;
                    }
                }
            }
            found
        }
        MatcherKind::Exact { input, map } => match value(input, s)? {
            Some(v) => first(map.iter().filter(|(key, _)| *key == v), s)?,
            None => None,
        },
        MatcherKind::Prefix { input, map } => match value(input, s)? {
            Some(v) => {
                let mut prefixes: Vec<&(String, OnMatch)> = map
                    .iter()
                    .filter(|(key, _)| v.starts_with(key.as_str()))
                    .collect();
                prefixes.sort_by_key(|(key, _)| std::cmp::Reverse(key.len()));
                first(prefixes.into_iter(), s)?
            }
            None => None,
        },
        MatcherKind::Empty => None,
    };
    match (found, m.on_no_match.as_deref()) {
        (Some(action), _) => Ok(Some(action)),
        (None, Some(o)) => on_match(o, s),
        (None, None) => Ok(None),
    }
}

/// The first of `entries` whose `on_match` gives an action.
fn first<'m>(entries: impl Iterator<Item = &'m (String, OnMatch)>, s: &Subject<'_>) -> Found<'m> {
    for (_, o) in entries {
        if let Some(action) = on_match(o, s)? {
            return Ok(Some(action));
        }
    }
    Ok(None)
}

fn on_match<'m>(o: &'m OnMatch, s: &Subject<'_>) -> Found<'m> {
    match o {
        OnMatch::Action(a) => Ok(Some(a)),
        OnMatch::Matcher(m) => evaluate(m, s),
    }
}

fn holds(p: &Predicate, s: &Subject<'_>) -> Result<bool, Unavailable> {
    Ok(match p {
        Predicate::Single { input, value: m } => value(input, s)?.is_some_and(|v| match m {
            ValueMatch::String(m) => m.matches(&v),
            ValueMatch::Ip(ranges) => v
                .parse::<IpAddr>()
                .is_ok_and(|ip| ranges.iter().any(|r| r.contains(ip))),
        }),
        // In order, stopping at the first predicate that decides (as Envoy evaluates them).
        Predicate::And(all) => {
            for p in all {
                if !holds(p, s)? {
                    return Ok(false);
                }
            }
            true
        }
        Predicate::Or(any) => {
            for p in any {
                if holds(p, s)? {
                    return Ok(true);
                }
            }
            false
        }
        Predicate::Not(inner) => !holds(inner, s)?,
    })
}

/// The input's value; `Ok(None)` when it has none (Envoy's empty input, which no value matcher matches).
fn value(input: &Input, s: &Subject<'_>) -> Result<Option<String>, Unavailable> {
    let sans = |list: fn(&crate::tls::Identity) -> &Vec<String>| {
        if !s.tls {
            return Err(Unavailable);
        }
        Ok(s.peer
            .map(list)
            .filter(|l| !l.is_empty())
            .map(|l| l.join(",")))
    };
    Ok(match input {
        Input::RequestHeader(name) => s.request.and_then(|r| header(name, r)),
        Input::SourceIp => Some(s.remote.to_string()),
        Input::SourcePort => Some(s.source.port().to_string()),
        Input::DirectSourceIp => Some(s.source.ip().to_string()),
        Input::DestinationIp => Some(s.destination.ip().to_string()),
        Input::DestinationPort => Some(s.destination.port().to_string()),
        Input::UriSan => sans(|p| &p.uris)?,
        Input::DnsSan => sans(|p| &p.dns)?,
    })
}

/// A header's values joined by `,` (as Envoy reads a header for matching), or a pseudo-header.
fn header(name: &str, r: &http::request::Parts) -> Option<String> {
    match name {
        ":method" => return Some(r.method.as_str().to_string()),
        ":path" => {
            return Some(
                r.uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            );
        }
        ":authority" => return super::headers::authority(r).map(str::to_string),
        ":scheme" => return Some(r.uri.scheme_str().unwrap_or("http").to_string()),
        _ => {}
    }
    let values: Vec<&str> = r
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Identity;
    use outrigger_config::model::core::{StringMatch, StringMatcher};
    use outrigger_config::model::listener::Cidr;
    use outrigger_config::model::rbac_matcher::FieldMatcher;

    fn single(input: Input, value: ValueMatch) -> Predicate {
        Predicate::Single { input, value }
    }

    fn exact(s: &str) -> ValueMatch {
        ValueMatch::String(StringMatcher {
            pattern: StringMatch::Exact(s.into()),
            ignore_case: false,
        })
    }

    fn ip(address: &str, prefix_len: u8) -> ValueMatch {
        ValueMatch::Ip(vec![Cidr {
            address: address.parse().unwrap(),
            prefix_len,
        }])
    }

    #[test]
    fn inputs_and_ip_ranges() {
        let peer = Identity {
            uris: vec!["spiffe://a/x".into(), "spiffe://a/y".into()],
            dns: vec!["a.example".into()],
            ..Identity::default()
        };
        let (request, ()) = http::Request::builder()
            .uri("/p?q=1")
            .header("x-ip", "not-an-ip")
            .body(())
            .unwrap()
            .into_parts();
        let mut subject = Subject {
            source: "[2001:db8::7]:40000".parse().unwrap(),
            destination: "198.18.0.2:8080".parse().unwrap(),
            server_name: None,
            peer: Some(&peer),
            tls: true,
            remote: "10.1.2.3".parse().unwrap(),
            request: Some(&request),
        };
        let holding = [
            single(Input::UriSan, exact("spiffe://a/x,spiffe://a/y")),
            single(Input::DnsSan, exact("a.example")),
            single(Input::SourcePort, exact("40000")),
            single(Input::DestinationIp, ip("198.18.0.0", 15)),
            single(Input::DestinationPort, exact("8080")),
            single(Input::DirectSourceIp, ip("2001:db8::", 32)),
            single(Input::SourceIp, ip("10.0.0.0", 8)),
            single(Input::RequestHeader(":path".into()), exact("/p?q=1")),
            single(
                Input::DnsSan,
                ValueMatch::String(StringMatcher {
                    pattern: StringMatch::Suffix(".EXAMPLE".into()),
                    ignore_case: true,
                }),
            ),
            single(
                Input::UriSan,
                ValueMatch::String(StringMatcher {
                    pattern: StringMatch::Contains("x,spiffe".into()),
                    ignore_case: false,
                }),
            ),
        ];
        for p in &holding {
            assert!(matches!(holds(p, &subject), Ok(true)), "{p:?}");
        }
        let failing = [
            single(Input::DirectSourceIp, ip("2001:db9::", 32)),
            single(Input::SourceIp, ip("10.0.0.0", 16)),
            single(Input::RequestHeader("x-ip".into()), ip("0.0.0.0", 0)),
            single(Input::RequestHeader("x-absent".into()), ip("0.0.0.0", 0)),
        ];
        for p in &failing {
            assert!(matches!(holds(p, &subject), Ok(false)), "{p:?}");
        }
        // TLS without a client certificate: the SSL inputs have no value; no value matcher holds, even for "",
        // and its `not_matcher` does. On plaintext they are unavailable, negated or not.
        subject.peer = None;
        let san = single(Input::UriSan, exact(""));
        let not_san = Predicate::Not(Box::new(san.clone()));
        assert!(matches!(holds(&san, &subject), Ok(false)));
        assert!(matches!(holds(&not_san, &subject), Ok(true)));
        subject.tls = false;
        assert!(holds(&not_san, &subject).is_err());
        let either = Predicate::Or(vec![single(Input::DestinationPort, exact("8080")), not_san]);
        assert!(matches!(holds(&either, &subject), Ok(true)));
    }

    fn act(name: &str, action: RbacAction) -> OnMatch {
        OnMatch::Action(MatchAction {
            name: name.into(),
            action,
        })
    }

    fn header_is(name: &str, v: &str) -> Predicate {
        single(Input::RequestHeader(name.into()), exact(v))
    }

    /// Checked with Envoy 1.40: a nested matcher without an action sends an exact tree to its `on_no_match`;
    /// an unavailable input skips `on_no_match` too; no action at all denies.
    #[test]
    fn trees_nested_matchers_and_unavailable_inputs() {
        let nested = Matcher {
            kind: MatcherKind::List(vec![FieldMatcher {
                predicate: header_is("x-a", "1"),
                on_match: act("nested", RbacAction::Deny),
            }]),
            on_no_match: None,
        };
        let tree = Matcher {
            kind: MatcherKind::Exact {
                input: Input::RequestHeader("x-p".into()),
                map: vec![("k".into(), OnMatch::Matcher(Box::new(nested)))],
            },
            on_no_match: Some(Box::new(act("rest", RbacAction::Allow))),
        };
        let decide_with = |m: &Matcher, headers: &[(&str, &str)], tls: bool| {
            let mut b = http::Request::builder().uri("/");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let (request, ()) = b.body(()).unwrap().into_parts();
            let subject = Subject {
                source: "127.0.0.1:1".parse().unwrap(),
                destination: "127.0.0.1:2".parse().unwrap(),
                server_name: None,
                peer: None,
                tls,
                remote: "127.0.0.1".parse().unwrap(),
                request: Some(&request),
            };
            let (allowed, action) = decide(m, &subject);
            (allowed, action.map(|a| a.name.clone()))
        };
        assert_eq!(
            decide_with(&tree, &[("x-p", "k"), ("x-a", "1")], false),
            (false, Some("nested".into()))
        );
        assert_eq!(
            decide_with(&tree, &[("x-p", "k")], false),
            (true, Some("rest".into()))
        );
        assert_eq!(decide_with(&tree, &[], false), (true, Some("rest".into())));
        let ssl_first = Matcher {
            kind: MatcherKind::List(vec![FieldMatcher {
                predicate: Predicate::Not(Box::new(single(Input::UriSan, exact("x")))),
                on_match: act("no-san", RbacAction::Allow),
            }]),
            on_no_match: Some(Box::new(act("rest", RbacAction::Allow))),
        };
        assert_eq!(decide_with(&ssl_first, &[], false), (false, None));
        assert_eq!(
            decide_with(&ssl_first, &[], true),
            (true, Some("no-san".into()))
        );
        let nothing = Matcher {
            kind: MatcherKind::Empty,
            on_no_match: None,
        };
        assert_eq!(decide_with(&nothing, &[], false), (false, None));
    }
}
