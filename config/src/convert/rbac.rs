//! The network RBAC filter.

use super::listener::cidr;
use super::{Out, string_matcher};
use crate::diagnostic::Path;
use crate::model::rbac::{Permission, Policy, Principal, Rbac, RbacAction, RbacRules};
use envoy_types::pb::envoy::config::rbac::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3 as filter;

pub fn network(f: &filter::Rbac, at: &Path, out: &mut Out) -> Option<Rbac> {
    let rules = match &f.rules {
        Some(rules) => Some(self::rules(rules, &at.field("rules"), out)?),
        None => None,
    };
    Some(Rbac {
        stat_prefix: f.stat_prefix.clone(),
        rules,
    })
}

fn rules(r: &pb::Rbac, at: &Path, out: &mut Out) -> Option<RbacRules> {
    use pb::rbac::Action as A;
    let action = match A::try_from(r.action) {
        Ok(A::Allow) => RbacAction::Allow,
        Ok(A::Deny) => RbacAction::Deny,
        Ok(A::Log) => RbacAction::Log,
        Err(_) => {
            out.error(&at.field("action"), "use ALLOW, DENY or LOG");
            return None;
        }
    };
    let mut names: Vec<&String> = r.policies.keys().collect();
    names.sort();
    let mut policies = Vec::new();
    for name in names {
        let at = at.field("policies").field(name);
        let policy = &r.policies[name];
        let permissions = policy
            .permissions
            .iter()
            .enumerate()
            .map(|(i, p)| permission(p, &at.field("permissions").index(i), out))
            .collect::<Option<Vec<_>>>()?;
        let principals = policy
            .principals
            .iter()
            .enumerate()
            .map(|(i, p)| principal(p, &at.field("principals").index(i), out))
            .collect::<Option<Vec<_>>>()?;
        policies.push((
            name.clone(),
            Policy {
                permissions,
                principals,
            },
        ));
    }
    Some(RbacRules { action, policies })
}

fn permission(p: &pb::Permission, at: &Path, out: &mut Out) -> Option<Permission> {
    use pb::permission::Rule as R;
    let set = |rules: &[pb::Permission], at: &Path, out: &mut Out| {
        rules
            .iter()
            .enumerate()
            .map(|(i, p)| permission(p, &at.field("rules").index(i), out))
            .collect::<Option<Vec<_>>>()
    };
    Some(match &p.rule {
        Some(R::Any(true)) => Permission::Any,
        Some(R::AndRules(s)) => Permission::AndRules(set(&s.rules, &at.field("and_rules"), out)?),
        Some(R::OrRules(s)) => Permission::OrRules(set(&s.rules, &at.field("or_rules"), out)?),
        Some(R::NotRule(inner)) => {
            Permission::NotRule(Box::new(permission(inner, &at.field("not_rule"), out)?))
        }
        Some(R::DestinationIp(range)) => {
            Permission::DestinationIp(cidr(range, &at.field("destination_ip"), out)?)
        }
        Some(R::DestinationPort(port)) => match u16::try_from(*port) {
            Ok(port) => Permission::DestinationPort(port),
            Err(_) => {
                out.error(&at.field("destination_port"), "a port is at most 65535");
                return None;
            }
        },
        Some(R::DestinationPortRange(range)) => {
            let (Ok(start), Ok(end)) = (u16::try_from(range.start), u32::try_from(range.end))
            else {
                out.error(
                    &at.field("destination_port_range"),
                    "start and end must be ports (0-65535, end exclusive)",
                );
                return None;
            };
            Permission::DestinationPortRange(start, end)
        }
        Some(R::RequestedServerName(m)) => Permission::RequestedServerName(string_matcher(
            m,
            &at.field("requested_server_name"),
            out,
        )?),
        _ => {
            out.error(
                at,
                "set one rule: any: true, and_rules, or_rules, not_rule, destination_ip, destination_port, \
                 destination_port_range or requested_server_name",
            );
            return None;
        }
    })
}

fn principal(p: &pb::Principal, at: &Path, out: &mut Out) -> Option<Principal> {
    use pb::principal::Identifier as I;
    let set = |ids: &[pb::Principal], at: &Path, out: &mut Out| {
        ids.iter()
            .enumerate()
            .map(|(i, p)| principal(p, &at.field("ids").index(i), out))
            .collect::<Option<Vec<_>>>()
    };
    Some(match &p.identifier {
        Some(I::Any(true)) => Principal::Any,
        Some(I::AndIds(s)) => Principal::AndIds(set(&s.ids, &at.field("and_ids"), out)?),
        Some(I::OrIds(s)) => Principal::OrIds(set(&s.ids, &at.field("or_ids"), out)?),
        Some(I::NotId(inner)) => {
            Principal::NotId(Box::new(principal(inner, &at.field("not_id"), out)?))
        }
        Some(I::Authenticated(a)) => Principal::Authenticated(match &a.principal_name {
            Some(m) => Some(string_matcher(
                m,
                &at.field("authenticated").field("principal_name"),
                out,
            )?),
            None => None,
        }),
        Some(I::DirectRemoteIp(range)) => {
            Principal::DirectRemoteIp(cidr(range, &at.field("direct_remote_ip"), out)?)
        }
        Some(I::RemoteIp(range)) => Principal::RemoteIp(cidr(range, &at.field("remote_ip"), out)?),
        _ => {
            out.error(
                at,
                "set one identifier: any: true, and_ids, or_ids, not_id, authenticated, direct_remote_ip or \
                 remote_ip",
            );
            return None;
        }
    })
}
