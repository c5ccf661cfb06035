//! `envoy.filters.http.ext_authz` with an `http_service` or a `grpc_service` (`envoy_grpc`). The fields we
//! do not act on are refused by the support table, naming them.

use super::super::{Out, duration, string_matcher};
use crate::diagnostic::Path;
use crate::model::core::StringMatcher;
use crate::model::ext_authz::{BufferSettings, ExtAuthz, ExtAuthzPerRoute};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3 as pb;
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;
use std::time::Duration;

/// Envoy's check timeout when `grpc_service.timeout` is absent.
const GRPC_DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

pub fn ext_authz(f: &pb::ExtAuthz, name: &str, at: &Path, out: &mut Out) -> Option<ExtAuthz> {
    use pb::ext_authz::Services;
    let status_on_error = f.status_on_error.as_ref().map_or(403, |s| s.code);
    let Ok(status_on_error) = u16::try_from(status_on_error) else {
        out.error(&at.field("status_on_error"), "not an HTTP status code");
        return None;
    };
    let with_request_body = f.with_request_body.as_ref().map(|b| BufferSettings {
        max_request_bytes: b.max_request_bytes,
        allow_partial_message: b.allow_partial_message,
        pack_as_bytes: b.pack_as_bytes,
    });
    let service = match &f.services {
        Some(Services::HttpService(service)) => service,
        Some(Services::GrpcService(grpc)) => {
            return grpc_service(grpc, &at.field("grpc_service"), out).map(|(cluster, timeout)| {
                ExtAuthz {
                    name: name.to_string(),
                    cluster,
                    grpc: true,
                    timeout,
                    path_prefix: String::new(),
                    allowed_headers: Vec::new(),
                    allowed_upstream_headers: Vec::new(),
                    allowed_client_headers: None,
                    failure_mode_allow: f.failure_mode_allow,
                    failure_mode_allow_header_add: f.failure_mode_allow_header_add,
                    status_on_error,
                    with_request_body,
                }
            });
        }
        None => {
            out.error(
                at,
                "set `grpc_service` or `http_service`: the authorization service to ask",
            );
            return None;
        }
    };
    if with_request_body.is_some() {
        out.error(
            &at.field("with_request_body"),
            "request bodies are sent only to a `grpc_service` in Outrigger; remove it or use a gRPC service",
        );
        return None;
    }
    let at_service = at.field("http_service");
    let Some(uri) = &service.server_uri else {
        out.error(&at_service, "`server_uri` is required");
        return None;
    };
    let at_uri = at_service.field("server_uri");
    let Some(timeout) = &uri.timeout else {
        out.error(&at_uri.field("timeout"), "is required (as in Envoy)");
        return None;
    };
    use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
    let Some(HttpUpstreamType::Cluster(cluster)) = &uri.http_upstream_type else {
        out.error(
            &at_uri.field("cluster"),
            "name the cluster of the authorization service",
        );
        return None;
    };
    let request = service.authorization_request.as_ref();
    let response = service.authorization_response.as_ref();
    Some(ExtAuthz {
        name: name.to_string(),
        cluster: cluster.clone(),
        grpc: false,
        timeout: duration(timeout),
        path_prefix: service.path_prefix.clone(),
        allowed_headers: list(
            request.and_then(|r| r.allowed_headers.as_ref()),
            &at_service
                .field("authorization_request")
                .field("allowed_headers"),
            out,
        )
        .unwrap_or_default(),
        allowed_upstream_headers: list(
            response.and_then(|r| r.allowed_upstream_headers.as_ref()),
            &at_service
                .field("authorization_response")
                .field("allowed_upstream_headers"),
            out,
        )
        .unwrap_or_default(),
        allowed_client_headers: list(
            response.and_then(|r| r.allowed_client_headers.as_ref()),
            &at_service
                .field("authorization_response")
                .field("allowed_client_headers"),
            out,
        ),
        failure_mode_allow: f.failure_mode_allow,
        failure_mode_allow_header_add: f.failure_mode_allow_header_add,
        status_on_error,
        with_request_body: None,
    })
}

/// The cluster and timeout of `grpc_service: {envoy_grpc: {cluster_name}, timeout}`.
fn grpc_service(g: &core::GrpcService, at: &Path, out: &mut Out) -> Option<(String, Duration)> {
    let Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(envoy)) = &g.target_specifier else {
        out.error(
            at,
            "name the authorization service as `envoy_grpc: {cluster_name: ...}` (google_grpc is not \
             supported)",
        );
        return None;
    };
    let timeout = g.timeout.as_ref().map_or(GRPC_DEFAULT_TIMEOUT, duration);
    Some((envoy.cluster_name.clone(), timeout))
}

pub fn per_route(r: &pb::ExtAuthzPerRoute, at: &Path, out: &mut Out) -> Option<ExtAuthzPerRoute> {
    use pb::ext_authz_per_route::Override;
    match &r.r#override {
        Some(Override::Disabled(disabled)) => Some(ExtAuthzPerRoute {
            disabled: *disabled,
            context_extensions: Default::default(),
        }),
        Some(Override::CheckSettings(settings)) => Some(ExtAuthzPerRoute {
            disabled: false,
            context_extensions: settings
                .context_extensions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        None => {
            out.error(at, "set `disabled` or `check_settings`");
            None
        }
    }
}

fn list(l: Option<&ListStringMatcher>, at: &Path, out: &mut Out) -> Option<Vec<StringMatcher>> {
    let l = l?;
    Some(
        l.patterns
            .iter()
            .enumerate()
            .filter_map(|(i, m)| string_matcher(m, &at.field("patterns").index(i), out))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use crate::model::http::HttpFilter;
    use crate::model::listener::NetworkFilter;
    use crate::model::route::PerFilterConfig;
    use crate::{Format, load_bytes};

    const DEFAULTS: &str =
        include_str!("../../../../tests/configs/valid/62-http-ext-authz-grpc-defaults.yaml");

    fn problems(yaml: &str) -> String {
        match load_bytes(yaml.as_bytes(), Format::Yaml) {
            Ok(_) => String::new(),
            Err(problems) => format!("{problems:?}"),
        }
    }

    /// A gRPC service's cluster, Envoy's 200 ms default and a set timeout, and a route's context extensions
    /// reach the model.
    #[test]
    fn grpc_service_settings_reach_the_model() {
        let snapshot = match load_bytes(DEFAULTS.as_bytes(), Format::Yaml) {
            Ok(loaded) => loaded.snapshot,
            Err(problems) => panic!("refused: {problems:#?}"),
        };
        let NetworkFilter::HttpConnectionManager(hcm) =
            &snapshot.listeners[0].filter_chains[0].filters[0]
        else {
            panic!("the first filter is the connection manager");
        };
        let checks: Vec<_> = hcm
            .http_filters
            .iter()
            .filter_map(|f| match f {
                HttpFilter::ExtAuthz(e) => {
                    Some((e.name.as_str(), e.cluster.as_str(), e.grpc, e.timeout))
                }
                _ => None,
            })
            .collect();
        use std::time::Duration;
        assert_eq!(
            checks,
            [
                (
                    "envoy.filters.http.ext_authz",
                    "authz",
                    true,
                    Duration::from_millis(200)
                ),
                ("tenant-authz", "authz", true, Duration::from_secs(1)),
            ]
        );
        let crate::model::http::RouteSource::Static(table) = &hcm.routes else {
            panic!("an inline route table");
        };
        let route = &table.virtual_hosts[0].routes[0];
        let Some(PerFilterConfig::ExtAuthz(per_route)) = route.per_filter("tenant-authz") else {
            panic!("the route's ExtAuthzPerRoute");
        };
        assert!(!per_route.disabled);
        assert_eq!(
            per_route
                .context_extensions
                .get("tenant")
                .map(String::as_str),
            Some("a")
        );
    }

    /// Request bodies go only to a gRPC service; `google_grpc` is refused by the support table.
    #[test]
    fn a_body_for_an_http_service_and_google_grpc_are_refused() {
        let http = DEFAULTS.replacen(
            "grpc_service: {envoy_grpc: {cluster_name: authz}}",
            "with_request_body: {max_request_bytes: 10}\n              http_service: {server_uri: {uri: \
             \"http://a\", cluster: authz, timeout: 1s}}",
            1,
        );
        let refused = problems(&http);
        assert!(refused.contains("with_request_body"), "{refused}");
        let google = DEFAULTS.replacen(
            "grpc_service: {envoy_grpc: {cluster_name: authz}}",
            "grpc_service: {google_grpc: {target_uri: \"127.0.0.1:9000\", stat_prefix: a}}",
            1,
        );
        let refused = problems(&google);
        assert!(refused.contains("grpc_service.google_grpc"), "{refused}");
    }
}
