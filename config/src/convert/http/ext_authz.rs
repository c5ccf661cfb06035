//! `envoy.filters.http.ext_authz` with an `http_service`. A gRPC service, request bodies and the other fields
//! are refused by the support table, naming them.

use super::super::{Out, duration, string_matcher};
use crate::diagnostic::Path;
use crate::model::core::StringMatcher;
use crate::model::ext_authz::{ExtAuthz, ExtAuthzPerRoute};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3 as pb;
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;

pub fn ext_authz(f: &pb::ExtAuthz, name: &str, at: &Path, out: &mut Out) -> Option<ExtAuthz> {
    use pb::ext_authz::Services;
    let Some(Services::HttpService(service)) = &f.services else {
        out.error(
            at,
            "set `http_service` (a gRPC authorization service is not supported yet)",
        );
        return None;
    };
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
    let status_on_error = f.status_on_error.as_ref().map_or(403, |s| s.code);
    let Ok(status_on_error) = u16::try_from(status_on_error) else {
        out.error(&at.field("status_on_error"), "not an HTTP status code");
        return None;
    };
    Some(ExtAuthz {
        name: name.to_string(),
        cluster: cluster.clone(),
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
        status_on_error,
    })
}

pub fn per_route(r: &pb::ExtAuthzPerRoute, at: &Path, out: &mut Out) -> Option<ExtAuthzPerRoute> {
    use pb::ext_authz_per_route::Override;
    match &r.r#override {
        Some(Override::Disabled(disabled)) => Some(ExtAuthzPerRoute {
            disabled: *disabled,
        }),
        _ => {
            out.error(at, "only `disabled` is supported in ExtAuthzPerRoute");
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
