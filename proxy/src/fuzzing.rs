//! What the fuzz targets (`tests/fuzz/`) call and no public API offers: the HTTP header logic the connection
//! manager and router apply to every request, and the access-log line writer. Each function is the one the
//! data path calls, unchanged. Not an API: it may change with the targets.

use crate::access_log::record::Record;
use crate::http::fault::Injector;
use crate::http::path_normalization::InvalidPath;
use crate::tls::Session;
use http::{HeaderMap, StatusCode};
use outrigger_config::model::access_log::Format;
use outrigger_config::model::core::Pattern;
use outrigger_config::model::http::{
    ClientCertDetails, Fault, ForwardClientCertDetails, HttpConnectionManager,
};
use outrigger_config::model::route::{Forward, Route};
use std::net::IpAddr;
use std::time::Duration;

/// `x-forwarded-for`, `x-forwarded-proto`, `x-envoy-external-address` and the removal of the internal-only
/// `x-envoy-*` headers, as the connection manager applies them to a request from `peer`.
pub fn forwarded(headers: &mut HeaderMap, hcm: &HttpConnectionManager, peer: IpAddr, tls: bool) {
    crate::http::forwarded::apply(headers, hcm, peer, tls);
}

/// `x-forwarded-client-cert` as `forward_client_cert_details` sets it for a client of `session`.
pub fn client_cert(
    headers: &mut HeaderMap,
    mode: ForwardClientCertDetails,
    details: ClientCertDetails,
    session: Option<&Session>,
) {
    crate::http::client_cert::apply(headers, mode, details, session);
}

/// `normalize_path` and `merge_slashes` on a request's path and query: the new one, `None` when unchanged,
/// `Err` when Envoy answers 400.
pub fn normalize_path(
    path_and_query: &str,
    normalize: bool,
    merge_slashes: bool,
) -> Result<Option<String>, InvalidPath> {
    crate::http::path_normalization::normalize(path_and_query, normalize, merge_slashes)
}

/// The path a matched `route` forwards with `prefix_rewrite` or `regex_rewrite`.
pub fn rewrite_path(
    path_and_query: &str,
    route: &Route,
    prefix: Option<&str>,
    regex: Option<(&Pattern, &str)>,
) -> String {
    crate::http::headers::rewrite_path(path_and_query, route, prefix, regex)
}

/// The path a forwarding `route` sends (`None`: its own, no rewrite configured).
pub fn forwarded_path(path_and_query: &str, route: &Route, forward: &Forward) -> Option<String> {
    crate::http::headers::forwarded_path(path_and_query, route, forward)
}

/// A fault filter's decisions on a request: whether its `headers` match, then the delay and the abort status
/// the `x-envoy-fault-*` headers ask for (within the configured percentages).
pub struct FaultHeaders(Injector);

impl FaultHeaders {
    pub fn new(config: &Fault) -> Self {
        Self(Injector::new(
            config,
            &crate::metrics::Metrics::new(),
            "fuzz",
        ))
    }

    pub fn decide(&self, headers: &HeaderMap) -> (bool, Option<Duration>, Option<StatusCode>) {
        (
            self.0.matches(headers),
            self.0.delay(headers),
            self.0.abort(headers),
        )
    }
}

/// One access-log line of `record` in `format`.
pub fn access_log_line(format: &Format, record: &Record) -> Vec<u8> {
    crate::access_log::format::line(format, record)
}
