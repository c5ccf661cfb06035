//! The network and HTTP RBAC filters: one set of matchers; `header` and `url_path` only in the HTTP filter.

use super::listener::cidr;
use super::route::header_matcher;
use super::{Out, string_matcher};
use crate::diagnostic::Path;
use crate::model::rbac::{
    HttpRbac, HttpRbacEngine, Permission, Policy, Principal, Rbac, RbacAction, RbacPerRoute,
    RbacRules,
};
use envoy_types::pb::envoy::config::rbac::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3 as http_filter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3 as filter;

/// Which filter the matchers are for: a connection has no headers or path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    Network,
    Http,
}

pub fn network(f: &filter::Rbac, at: &Path, out: &mut Out) -> Option<Rbac> {
    let rules = match &f.rules {
        Some(rules) => Some(self::rules(rules, Layer::Network, &at.field("rules"), out)?),
        None => None,
    };
    Some(Rbac {
        stat_prefix: f.stat_prefix.clone(),
        rules,
    })
}

/// `envoy.filters.http.rbac` named `name`.
pub fn http(f: &http_filter::Rbac, name: &str, at: &Path, out: &mut Out) -> Option<HttpRbac> {
    let (rules, shadow_rules) = http_rules(f, at, out)?;
    Some(HttpRbac {
        name: name.to_string(),
        rules,
        shadow_rules,
    })
}

/// `RBACPerRoute`: its `rbac` replaces the filter's rules on the route (absent: nothing enforced).
pub fn per_route(r: &http_filter::RbacPerRoute, at: &Path, out: &mut Out) -> Option<RbacPerRoute> {
    let (rules, shadow_rules) = match &r.rbac {
        Some(f) => http_rules(f, &at.field("rbac"), out)?,
        None => (None, None),
    };
    Some(RbacPerRoute {
        rules,
        shadow_rules,
    })
}

type Both = (Option<HttpRbacEngine>, Option<HttpRbacEngine>);

fn http_rules(f: &http_filter::Rbac, at: &Path, out: &mut Out) -> Option<Both> {
    let rules = engine(&f.rules, &f.matcher, ("rules", "matcher"), at, out)?;
    let shadow_rules = engine(
        &f.shadow_rules,
        &f.shadow_matcher,
        ("shadow_rules", "shadow_matcher"),
        at,
        out,
    )?;
    Some((rules, shadow_rules))
}

/// `rules` or `matcher` (`Some(None)`: neither). With both, Envoy 1.40 logs "RBAC rules are ignored when
/// matcher is configured" and uses the matcher; so do we, with a warning.
fn engine(
    rules: &Option<pb::Rbac>,
    matcher: &Option<envoy_types::pb::xds::r#type::matcher::v3::Matcher>,
    (rules_field, matcher_field): (&str, &str),
    at: &Path,
    out: &mut Out,
) -> Option<Option<HttpRbacEngine>> {
    Some(match (rules, matcher) {
        (_, Some(m)) => {
            if rules.is_some() {
                out.warning(
                    &at.field(rules_field),
                    format!("ignored because `{matcher_field}` is set (as Envoy does)"),
                );
            }
            Some(HttpRbacEngine::Matcher(super::rbac_matcher::matcher(
                m,
                &at.field(matcher_field),
                out,
            )?))
        }
        (Some(r), None) => Some(HttpRbacEngine::Rules(self::rules(
            r,
            Layer::Http,
            &at.field(rules_field),
            out,
        )?)),
        (None, None) => None,
    })
}

fn rules(r: &pb::Rbac, layer: Layer, at: &Path, out: &mut Out) -> Option<RbacRules> {
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
            .map(|(i, p)| permission(p, layer, &at.field("permissions").index(i), out))
            .collect::<Option<Vec<_>>>()?;
        let principals = policy
            .principals
            .iter()
            .enumerate()
            .map(|(i, p)| principal(p, layer, &at.field("principals").index(i), out))
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

/// A `header` or `url_path` matcher in the network filter: refused, naming the field.
fn http_only(layer: Layer, at: &Path, out: &mut Out) -> Option<()> {
    if layer == Layer::Network {
        out.error(
            at,
            "matches HTTP requests; use it in envoy.filters.http.rbac, not in the network RBAC filter",
        );
        return None;
    }
    Some(())
}

/// `url_path`'s `PathMatcher`: its string matcher, compared with the path without the query.
fn path_matcher(
    m: &envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher,
    at: &Path,
    out: &mut Out,
) -> Option<crate::model::core::StringMatcher> {
    use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule;
    match &m.rule {
        Some(Rule::Path(s)) => string_matcher(s, &at.field("path"), out),
        None => {
            out.error(at, "a path matcher needs `path`");
            None
        }
    }
}

fn permission(p: &pb::Permission, layer: Layer, at: &Path, out: &mut Out) -> Option<Permission> {
    use pb::permission::Rule as R;
    let set = |rules: &[pb::Permission], at: &Path, out: &mut Out| {
        rules
            .iter()
            .enumerate()
            .map(|(i, p)| permission(p, layer, &at.field("rules").index(i), out))
            .collect::<Option<Vec<_>>>()
    };
    Some(match &p.rule {
        Some(R::Any(true)) => Permission::Any,
        Some(R::AndRules(s)) => Permission::AndRules(set(&s.rules, &at.field("and_rules"), out)?),
        Some(R::OrRules(s)) => Permission::OrRules(set(&s.rules, &at.field("or_rules"), out)?),
        Some(R::NotRule(inner)) => Permission::NotRule(Box::new(permission(
            inner,
            layer,
            &at.field("not_rule"),
            out,
        )?)),
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
        Some(R::RequestedServerName(_)) if layer == Layer::Http => {
            out.error(
                &at.field("requested_server_name"),
                "is not supported in envoy.filters.http.rbac yet (only in the network RBAC filter)",
            );
            return None;
        }
        Some(R::RequestedServerName(m)) => Permission::RequestedServerName(string_matcher(
            m,
            &at.field("requested_server_name"),
            out,
        )?),
        Some(R::Header(h)) => {
            http_only(layer, &at.field("header"), out)?;
            Permission::Header(header_matcher(h, &at.field("header"), out)?)
        }
        Some(R::UrlPath(m)) => {
            http_only(layer, &at.field("url_path"), out)?;
            Permission::UrlPath(path_matcher(m, &at.field("url_path"), out)?)
        }
        _ => {
            out.error(
                at,
                "set one rule: any: true, and_rules, or_rules, not_rule, destination_ip, destination_port, \
                 destination_port_range, requested_server_name, header or url_path",
            );
            return None;
        }
    })
}

fn principal(p: &pb::Principal, layer: Layer, at: &Path, out: &mut Out) -> Option<Principal> {
    use pb::principal::Identifier as I;
    let set = |ids: &[pb::Principal], at: &Path, out: &mut Out| {
        ids.iter()
            .enumerate()
            .map(|(i, p)| principal(p, layer, &at.field("ids").index(i), out))
            .collect::<Option<Vec<_>>>()
    };
    Some(match &p.identifier {
        Some(I::Any(true)) => Principal::Any,
        Some(I::AndIds(s)) => Principal::AndIds(set(&s.ids, &at.field("and_ids"), out)?),
        Some(I::OrIds(s)) => Principal::OrIds(set(&s.ids, &at.field("or_ids"), out)?),
        Some(I::NotId(inner)) => {
            Principal::NotId(Box::new(principal(inner, layer, &at.field("not_id"), out)?))
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
        Some(I::Header(h)) => {
            http_only(layer, &at.field("header"), out)?;
            Principal::Header(header_matcher(h, &at.field("header"), out)?)
        }
        Some(I::UrlPath(m)) => {
            http_only(layer, &at.field("url_path"), out)?;
            Principal::UrlPath(path_matcher(m, &at.field("url_path"), out)?)
        }
        _ => {
            out.error(
                at,
                "set one identifier: any: true, and_ids, or_ids, not_id, authenticated, \
                 direct_remote_ip, remote_ip, header or url_path",
            );
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::{Format, load_bytes};

    /// A listener whose chain has `filter` (a network filter's YAML) before an HTTP connection manager whose
    /// filters are `http_filters` then the router.
    fn listener(filter: &str, http_filters: &str) -> String {
        format!(
            r#"
static_resources:
  listeners:
  - name: l
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
{filter}
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, direct_response: {{status: 200}}}}]}}]}}
          http_filters:
{http_filters}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
        )
    }

    fn problems(yaml: &str) -> String {
        match load_bytes(yaml.as_bytes(), Format::Yaml) {
            Ok(_) => String::new(),
            Err(problems) => format!("{problems:?}"),
        }
    }

    const HEADER_POLICY: &str = "{policies: {p: {permissions: [{header: {name: x, present_match: true}}], \
                                 principals: [{any: true}]}}}";

    #[test]
    fn http_matchers_are_refused_in_the_network_filter_and_sni_in_the_http_filter() {
        let network = format!(
            "      - name: envoy.filters.network.rbac\n        typed_config: {{\"@type\": \
             type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC, stat_prefix: r, \
             rules: {HEADER_POLICY}}}"
        );
        let refused = problems(&listener(&network, ""));
        assert!(
            refused.contains("permissions[0].header")
                && refused.contains("envoy.filters.http.rbac"),
            "{refused}"
        );
        let http = "          - name: authz\n            typed_config: {\"@type\": \
                    type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: {policies: {p: \
                    {permissions: [{requested_server_name: {exact: a}}], principals: [{any: true}]}}}}";
        let refused = problems(&listener("", http));
        assert!(refused.contains("requested_server_name"), "{refused}");
        let allowed = format!(
            "          - name: authz\n            typed_config: {{\"@type\": \
             type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: {HEADER_POLICY}}}"
        );
        assert_eq!(problems(&listener("", &allowed)), "");
    }

    #[test]
    fn a_fault_filter_after_an_authorization_filter_is_refused() {
        let filters = "          - name: authz\n            typed_config: {\"@type\": \
                       type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC}\n          - name: f\n            \
                       typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}";
        let refused = problems(&listener("", filters));
        assert!(refused.contains("put them first"), "{refused}");
    }

    /// Inputs, input matchers and tree kinds the HTTP RBAC `matcher` does not evaluate are refused by name.
    #[test]
    fn unsupported_matcher_parts_are_refused_by_name() {
        let filter = |matcher: &str| {
            format!(
                "          - name: authz\n            typed_config: {{\"@type\": \
                 type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, matcher: {matcher}}}"
            )
        };
        let action = "{action: {name: a, typed_config: {\"@type\": \
                      type.googleapis.com/envoy.config.rbac.v3.Action, name: a, action: ALLOW}}}";
        let input =
            |t: &str| format!("{{name: i, typed_config: {{\"@type\": type.googleapis.com/{t}}}}}");
        let header = "{name: h, typed_config: {\"@type\": \
                      type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: x}}";
        let cases = [
            (
                format!(
                    "{{matcher_list: {{matchers: [{{predicate: {{single_predicate: {{input: {}, \
                     value_match: {{exact: a}}}}}}, on_match: {action}}}]}}}}",
                    input("envoy.extensions.matching.common_inputs.network.v3.ServerNameInput")
                ),
                "ServerNameInput",
            ),
            (
                format!(
                    "{{matcher_list: {{matchers: [{{predicate: {{single_predicate: {{input: {header}, \
                     custom_match: {}}}}}, on_match: {action}}}]}}}}",
                    input(
                        "envoy.extensions.matching.input_matchers.consistent_hashing.v3.ConsistentHashing"
                    )
                ),
                "ConsistentHashing",
            ),
            (
                format!(
                    "{{matcher_tree: {{input: {header}, custom_match: {}}}}}",
                    input("envoy.extensions.matching.input_matchers.ip.v3.Ip")
                ),
                "matcher_tree.custom_match",
            ),
            (
                format!(
                    "{{matcher_list: {{matchers: [{{predicate: {{single_predicate: {{input: {header}, \
                     value_match: {{exact: a}}}}}}, on_match: {{keep_matching: true, action: {}}}}}]}}}}",
                    &action[9..action.len() - 1]
                ),
                "keep_matching",
            ),
        ];
        for (matcher, name) in cases {
            let refused = problems(&listener("", &filter(&matcher)));
            assert!(refused.contains(name), "{name}: {refused}");
        }
        let allowed = format!(
            "{{matcher_list: {{matchers: [{{predicate: {{single_predicate: {{input: {header}, \
             value_match: {{exact: a}}}}}}, on_match: {action}}}]}}}}"
        );
        assert_eq!(problems(&listener("", &filter(&allowed))), "");
    }
}
