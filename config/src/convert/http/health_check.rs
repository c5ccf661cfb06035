//! `envoy.filters.http.health_check` and `envoy.filters.http.buffer`: small filters read whole.

use super::super::{Out, route, u32_or};
use crate::diagnostic::Path;
use crate::model::http::{Buffer, HealthCheck};
use envoy_types::pb::envoy::extensions::filters::http::buffer::v3 as buffer;
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3 as pb;

pub fn health_check(h: &pb::HealthCheck, at: &Path, out: &mut Out) -> Option<HealthCheck> {
    let Some(pass_through_mode) = h.pass_through_mode.as_ref().map(|p| p.value) else {
        out.error(
            &at.field("pass_through_mode"),
            "required (as in Envoy): true or false",
        );
        return None;
    };
    let headers = h
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, m)| route::header_matcher(m, &at.field("headers").index(i), out))
        .collect();
    Some(HealthCheck {
        pass_through_mode,
        headers,
    })
}

pub fn buffer(b: &buffer::Buffer, at: &Path, out: &mut Out) -> Option<Buffer> {
    match u32_or(&b.max_request_bytes, 0) {
        0 => {
            out.error(
                &at.field("max_request_bytes"),
                "required (as in Envoy): the largest request body to accept, in bytes",
            );
            None
        }
        max_request_bytes => Some(Buffer { max_request_bytes }),
    }
}
