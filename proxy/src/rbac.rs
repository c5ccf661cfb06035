//! The network RBAC filter: allow or deny a connection by its peer's identity and its addresses, once, before
//! the first byte is proxied. The HTTP RBAC filter (`http/rbac.rs`) asks the same matchers about each request.

use crate::tls::Identity;
use outrigger_config::model::Listener;
use outrigger_config::model::listener::NetworkFilter;
use outrigger_config::model::rbac::{Permission, Principal, Rbac, RbacAction, RbacRules};
use std::net::{IpAddr, SocketAddr};

/// What a connection (and, for HTTP, a request) is, for RBAC.
pub struct Subject<'a> {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub server_name: Option<&'a str>,
    /// The verified client certificate of a TLS connection.
    pub peer: Option<&'a Identity>,
    /// Whether the connection is TLS (the HTTP RBAC matcher's SSL inputs are unavailable on plaintext).
    pub tls: bool,
    /// The client the connection manager trusts (`remote_ip`); the peer for a connection.
    pub remote: IpAddr,
    /// The request, for `header` and `url_path` (absent on a connection: they never match).
    pub request: Option<&'a http::request::Parts>,
}

/// The outcome, with the policy that decided it (for the log line).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed(Option<String>),
    Denied(Option<String>),
}

pub fn decide(rbac: &Rbac, subject: &Subject<'_>) -> Decision {
    match &rbac.rules {
        Some(rules) => decide_rules(rules, subject),
        None => Decision::Allowed(None),
    }
}

pub fn decide_rules(rules: &RbacRules, subject: &Subject<'_>) -> Decision {
    let matched = rules
        .policies
        .iter()
        .find(|(_, policy)| {
            policy.permissions.iter().any(|p| permits(p, subject))
                && policy.principals.iter().any(|p| identifies(p, subject))
        })
        .map(|(name, _)| name.clone());
    match (rules.action, matched) {
        (RbacAction::Allow, Some(name)) => Decision::Allowed(Some(name)),
        (RbacAction::Allow, None) => Decision::Denied(None),
        (RbacAction::Deny, Some(name)) => Decision::Denied(Some(name)),
        (RbacAction::Deny, None) | (RbacAction::Log, None) => Decision::Allowed(None),
        (RbacAction::Log, Some(name)) => Decision::Allowed(Some(name)),
    }
}

/// True when an RBAC filter of `listener` matches on the SNI. Envoy's `tls_inspector` reads the ClientHello on
/// every connection, so such a rule sees the name even when no filter chain is chosen by it; the listener must
/// then detect whenever it has the inspector.
pub fn reads_server_name(listener: &Listener) -> bool {
    fn in_permission(p: &Permission) -> bool {
        match p {
            Permission::RequestedServerName(_) => true,
            Permission::AndRules(list) | Permission::OrRules(list) => {
                list.iter().any(in_permission)
            }
            Permission::NotRule(inner) => in_permission(inner),
            Permission::Any
            | Permission::DestinationIp(_)
            | Permission::DestinationPort(_)
            | Permission::DestinationPortRange(..)
            | Permission::Header(_)
            | Permission::UrlPath(_) => false,
        }
    }
    listener
        .filter_chains
        .iter()
        .chain(&listener.default_filter_chain)
        .flat_map(|chain| &chain.filters)
        .filter_map(|filter| match filter {
            NetworkFilter::Rbac(rbac) => rbac.rules.as_ref(),
            _ => None,
        })
        .flat_map(|rules| &rules.policies)
        .any(|(_, policy)| policy.permissions.iter().any(in_permission))
}

fn permits(p: &Permission, s: &Subject<'_>) -> bool {
    match p {
        Permission::Any => true,
        Permission::AndRules(all) => all.iter().all(|p| permits(p, s)),
        Permission::OrRules(any) => any.iter().any(|p| permits(p, s)),
        Permission::NotRule(inner) => !permits(inner, s),
        Permission::DestinationIp(range) => range.contains(s.destination.ip()),
        Permission::DestinationPort(port) => s.destination.port() == *port,
        Permission::DestinationPortRange(start, end) => {
            let port = s.destination.port();
            port >= *start && u32::from(port) < *end
        }
        Permission::RequestedServerName(m) => m.matches(s.server_name.unwrap_or_default()),
        Permission::Header(h) => s
            .request
            .is_some_and(|r| crate::http::route::request_header_matches(h, r)),
        Permission::UrlPath(m) => s.request.is_some_and(|r| m.matches(r.uri.path())),
    }
}

fn identifies(p: &Principal, s: &Subject<'_>) -> bool {
    match p {
        Principal::Any => true,
        Principal::AndIds(all) => all.iter().all(|p| identifies(p, s)),
        Principal::OrIds(any) => any.iter().any(|p| identifies(p, s)),
        Principal::NotId(inner) => !identifies(inner, s),
        Principal::Authenticated(name) => match (s.peer, name) {
            (None, _) => false,
            (Some(_), None) => true,
            // Envoy's order: URI SANs, then DNS SANs, then the subject when the certificate has neither.
            (Some(peer), Some(m)) => {
                if !peer.uris.is_empty() {
                    peer.uris.iter().any(|u| m.matches(u))
                } else if !peer.dns.is_empty() {
                    peer.dns.iter().any(|d| m.matches(d))
                } else {
                    m.matches(&peer.subject)
                }
            }
        },
        // No PROXY protocol or XFF at the connection level: the remote address is the peer's.
        Principal::DirectRemoteIp(range) => range.contains(s.source.ip()),
        Principal::RemoteIp(range) => range.contains(s.remote),
        Principal::Header(h) => s
            .request
            .is_some_and(|r| crate::http::route::request_header_matches(h, r)),
        Principal::UrlPath(m) => s.request.is_some_and(|r| m.matches(r.uri.path())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::model::core::{StringMatch, StringMatcher};
    use outrigger_config::model::rbac::{Policy, RbacRules};

    fn only(action: RbacAction, principal: Principal) -> Rbac {
        Rbac {
            stat_prefix: "test.".into(),
            rules: Some(RbacRules {
                action,
                policies: vec![(
                    "p".into(),
                    Policy {
                        permissions: vec![Permission::Any],
                        principals: vec![principal],
                    },
                )],
            }),
        }
    }

    fn spiffe(sa: &str) -> Identity {
        Identity {
            uris: vec![format!("spiffe://cluster.local/ns/default/sa/{sa}")],
            dns: vec!["ignored.example".into()],
            ..Identity::default()
        }
    }

    fn subject(peer: Option<&Identity>) -> Subject<'_> {
        Subject {
            source: "198.18.0.1:40000".parse().unwrap(),
            destination: "198.18.0.2:8080".parse().unwrap(),
            server_name: None,
            peer,
            tls: peer.is_some(),
            remote: "198.18.0.1".parse().unwrap(),
            request: None,
        }
    }

    fn exact(name: &str) -> Option<StringMatcher> {
        Some(StringMatcher {
            pattern: StringMatch::Exact(name.into()),
            ignore_case: false,
        })
    }

    #[test]
    fn allow_by_spiffe_id() {
        let rbac = only(
            RbacAction::Allow,
            Principal::Authenticated(exact("spiffe://cluster.local/ns/default/sa/a")),
        );
        let (a, b) = (spiffe("a"), spiffe("b"));
        assert_eq!(
            decide(&rbac, &subject(Some(&a))),
            Decision::Allowed(Some("p".into()))
        );
        assert_eq!(decide(&rbac, &subject(Some(&b))), Decision::Denied(None));
        assert_eq!(decide(&rbac, &subject(None)), Decision::Denied(None));
    }

    #[test]
    fn uri_sans_shadow_dns_sans() {
        let rbac = only(
            RbacAction::Allow,
            Principal::Authenticated(exact("ignored.example")),
        );
        let a = spiffe("a");
        assert_eq!(decide(&rbac, &subject(Some(&a))), Decision::Denied(None));
        let dns_only = Identity {
            dns: vec!["ignored.example".into()],
            ..Identity::default()
        };
        assert!(matches!(
            decide(&rbac, &subject(Some(&dns_only))),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn deny_and_combinators() {
        let rbac = only(
            RbacAction::Deny,
            Principal::AndIds(vec![
                Principal::Authenticated(None),
                Principal::NotId(Box::new(Principal::DirectRemoteIp(
                    outrigger_config::model::listener::Cidr {
                        address: "198.18.0.0".parse().unwrap(),
                        prefix_len: 15,
                    },
                ))),
            ]),
        );
        let a = spiffe("a");
        // From inside 198.18.0.0/15: the NOT fails, so the deny policy does not match.
        assert_eq!(decide(&rbac, &subject(Some(&a))), Decision::Allowed(None));
        let mut outside = subject(Some(&a));
        outside.source = "10.0.0.1:1".parse().unwrap();
        outside.remote = outside.source.ip();
        assert_eq!(decide(&rbac, &outside), Decision::Denied(Some("p".into())));
    }

    #[test]
    fn no_rules_allow_everything() {
        let rbac = Rbac {
            stat_prefix: String::new(),
            rules: None,
        };
        assert_eq!(decide(&rbac, &subject(None)), Decision::Allowed(None));
    }
}
