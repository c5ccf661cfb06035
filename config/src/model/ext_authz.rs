//! `envoy.filters.http.ext_authz` with an HTTP authorization service.

use super::core::{StringMatcher, duration};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct ExtAuthz {
    /// The filter's `name`, for routes' `ExtAuthzPerRoute`.
    pub name: String,
    /// `http_service.server_uri.cluster`: where the check goes.
    pub cluster: String,
    /// `http_service.server_uri.timeout` (required, as in Envoy).
    #[serde(serialize_with = "duration")]
    pub timeout: Duration,
    /// Put before the request's path (with its query) in the check request. Envoy's default: none.
    pub path_prefix: String,
    /// Request headers sent along besides `host`, `authorization` and the method and path Envoy always sends.
    pub allowed_headers: Vec<StringMatcher>,
    /// Headers of an OK check set on the upstream request. Envoy's default: none.
    pub allowed_upstream_headers: Vec<StringMatcher>,
    /// Headers of a denial passed to the client. Envoy's default (absent): all of them.
    pub allowed_client_headers: Option<Vec<StringMatcher>>,
    /// Envoy's default: false. When the service fails, let the request through.
    pub failure_mode_allow: bool,
    /// Envoy's default: 403. The status when the service fails (and failure_mode_allow is off).
    pub status_on_error: u16,
}

/// `ExtAuthzPerRoute`.
#[derive(Clone, Debug, Serialize)]
pub struct ExtAuthzPerRoute {
    /// No check for the route's requests.
    pub disabled: bool,
}
