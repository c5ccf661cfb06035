//! A listener for proxyless gRPC clients: `api_listener.api_listener` holds an HttpConnectionManager, converted
//! and checked exactly like a proxy's (routes inline or by RDS, the router filter last), plus what gRPC clients
//! need of it: nothing but the router among the HTTP filters.

use super::{Out, decode_any, http, type_name};
use crate::diagnostic::Path;
use crate::model::http::HttpFilter;
use crate::model::listener::ApiListener;
use envoy_types::pb::envoy::config::listener::v3 as pb;

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

pub fn api_listener(l: &pb::Listener, at: &Path, out: &mut Out) -> Option<ApiListener> {
    let at_api = at.field("api_listener").field("api_listener");
    let Some(any) = l
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
    else {
        out.error(
            &at_api,
            format!("required: proxyless gRPC clients read the listener's {HCM} from here"),
        );
        return None;
    };
    if type_name(any) != HCM {
        out.error(
            &at_api,
            format!(
                "{} is not read by proxyless gRPC clients; write an {HCM}",
                type_name(any)
            ),
        );
        return None;
    }
    let connection_manager =
        http::connection_manager(&decode_any(any, &at_api, out)?, &at_api, out)?;
    let at_filters = at_api.field("http_filters");
    if connection_manager.http_filters.is_empty() {
        out.error(
            &at_filters,
            "gRPC clients need the router filter: write [{name: envoy.filters.http.router, typed_config: \
             {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]",
        );
    }
    for (i, filter) in connection_manager.http_filters.iter().enumerate() {
        if !matches!(filter, HttpFilter::Router(_)) {
            out.error(
                &at_filters.index(i),
                "proxyless gRPC clients run only the router filter here (they refuse the whole listener \
                 otherwise); remove this filter",
            );
        }
    }
    Some(ApiListener {
        name: l.name.clone(),
        connection_manager,
    })
}
