//! `envoy.filters.http.ext_authz` with an HTTP or a gRPC authorization service.

use super::core::{StringMatcher, duration};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct ExtAuthz {
    /// The filter's `name`, for routes' `ExtAuthzPerRoute`.
    pub name: String,
    /// `http_service.server_uri.cluster` or `grpc_service.envoy_grpc.cluster_name`: where the check goes.
    pub cluster: String,
    /// `grpc_service`: the check is `envoy.service.auth.v3.Authorization/Check` (the HTTP-only fields below
    /// keep their defaults).
    pub grpc: bool,
    /// `http_service.server_uri.timeout` (required, as in Envoy) or `grpc_service.timeout` (Envoy's default
    /// for ext_authz: 200 ms).
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
    /// Envoy's default: false. A request let through by `failure_mode_allow` carries
    /// `x-envoy-auth-failure-mode-allowed: true` upstream.
    pub failure_mode_allow_header_add: bool,
    /// Envoy's default: 403. The status when the service fails (and failure_mode_allow is off).
    pub status_on_error: u16,
    /// `with_request_body`: the request's body is buffered and sent along (gRPC service only). Absent: no body.
    pub with_request_body: Option<BufferSettings>,
}

/// `BufferSettings`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BufferSettings {
    /// The most bytes held; past it, 413 unless `allow_partial_message`.
    pub max_request_bytes: u32,
    /// Check with the first `max_request_bytes` bytes instead of refusing a larger body.
    pub allow_partial_message: bool,
    /// The body goes in `raw_body` (bytes) instead of `body` (a UTF-8 string).
    pub pack_as_bytes: bool,
}

/// `ExtAuthzPerRoute`.
#[derive(Clone, Debug, Serialize)]
pub struct ExtAuthzPerRoute {
    /// No check for the route's requests.
    pub disabled: bool,
    /// `check_settings.context_extensions`: sent in the CheckRequest's `context_extensions` (gRPC service).
    pub context_extensions: BTreeMap<String, String>,
}
