//! `envoy.filters.http.rbac`: each request is allowed or denied by the same matchers as the network filter
//! (`crate::rbac`), which here also see the request's headers and path. As in Envoy 1.40 (checked with real
//! Envoy, `tests/envoy_auth_filters.rs`):
//! - `shadow_rules` are evaluated first and only counted (`shadow_allowed`/`shadow_denied`); `rules` then
//!   decide (`allowed`/`denied`); a filter without `rules` counts nothing for them and allows everything;
//! - a denied request gets 403 `RBAC: access denied` (text/plain) and never reaches the upstream;
//! - a route's `RBACPerRoute` under the filter's name replaces both rule sets on that route (an empty one
//!   enforces nothing), while the statistics stay the filter's;
//! - `remote_ip` is the client the connection manager trusts (`x-forwarded-for` per `use_remote_address` and
//!   `xff_num_trusted_hops`), `direct_remote_ip` the peer, `authenticated` the verified client certificate.
//!
//! - `matcher`/`shadow_matcher` (`rbac_matcher.rs`) replace `rules`/`shadow_rules` when both are set, with
//!   the same statistics and reply; a request no matcher gives an action to is denied.
//!
//! Dynamic metadata (`shadow_effective_policy_id`, ...) is not written: nothing in Outrigger reads it.

use super::connection_manager::Matched;
use super::local_reply::{ResponseBody, text};
use crate::metrics::Metrics;
use crate::rbac::{Decision, Subject, decide_rules};
use http::{HeaderValue, Response, StatusCode};
use outrigger_config::model::rbac::{HttpRbac, HttpRbacEngine};
use outrigger_config::model::route::PerFilterConfig;
use prometheus_client::metrics::counter::Counter;

/// One HTTP RBAC filter config at run time, with its statistics.
pub struct Enforcer {
    config: HttpRbac,
    allowed: Counter,
    denied: Counter,
    shadow_allowed: Counter,
    shadow_denied: Counter,
}

impl Enforcer {
    pub fn new(config: &HttpRbac, metrics: &Metrics, stat_prefix: &str) -> Self {
        let labels = crate::metrics::connection_manager(stat_prefix);
        let f = &metrics.http_rbac;
        Self {
            config: config.clone(),
            allowed: f.allowed.get_or_create(&labels).clone(),
            denied: f.denied.get_or_create(&labels).clone(),
            shadow_allowed: f.shadow_allowed.get_or_create(&labels).clone(),
            shadow_denied: f.shadow_denied.get_or_create(&labels).clone(),
        }
    }

    /// Whether the request may go on; counts the shadow and enforced decisions.
    pub fn allows(&self, subject: &Subject<'_>, matched: Option<&Matched>) -> bool {
        let route = matched.and_then(Matched::route).map(|(_, _, r)| r);
        let (rules, shadow) = match route.and_then(|r| r.per_filter(&self.config.name)) {
            Some(PerFilterConfig::Rbac(own)) => (own.rules.as_ref(), own.shadow_rules.as_ref()),
            _ => (
                self.config.rules.as_ref(),
                self.config.shadow_rules.as_ref(),
            ),
        };
        if let Some(shadow) = shadow {
            count(shadow, subject, &self.shadow_allowed, &self.shadow_denied);
        }
        match rules {
            Some(rules) => count(rules, subject, &self.allowed, &self.denied),
            None => true,
        }
    }
}

fn count(
    engine: &HttpRbacEngine,
    subject: &Subject<'_>,
    allowed: &Counter,
    denied: &Counter,
) -> bool {
    let rules = match engine {
        HttpRbacEngine::Rules(rules) => rules,
        HttpRbacEngine::Matcher(matcher) => {
            let (allows, action) = super::rbac_matcher::decide(matcher, subject);
            if allows {
                allowed.inc();
            } else {
                denied.inc();
                tracing::debug!(
                    action = action.map_or("no action matched", |a| a.name.as_str()),
                    "RBAC denied the request"
                );
            }
            return allows;
        }
    };
    match decide_rules(rules, subject) {
        Decision::Allowed(_) => {
            allowed.inc();
            true
        }
        Decision::Denied(policy) => {
            denied.inc();
            tracing::debug!(
                policy = policy.as_deref().unwrap_or("no ALLOW policy matched"),
                "RBAC denied the request"
            );
            false
        }
    }
}

/// Envoy's reply to a denied request.
pub fn denied() -> Response<ResponseBody> {
    let mut response = Response::new(text("RBAC: access denied"));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}
