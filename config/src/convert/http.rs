//! The HTTP connection manager and its HTTP filters.

use super::{
    Out, bool_or, config_source, decode_any, duration_or, fraction, headers_to_add, rate_limit,
    route, timeout_or, type_name, u32_or,
};
use crate::diagnostic::Path;
use crate::model::http::{
    ClientCertDetails, CodecType, ForwardClientCertDetails, Http2Options, HttpConnectionManager,
    HttpFilter, Keepalive, LocalRateLimit, RouteSource, Router, TokenBucket,
};
use crate::model::rate_limit::VhRateLimits;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3 as ratelimit;
use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as pb;
use std::time::Duration;

pub const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
pub const LOCAL_RATE_LIMIT: &str =
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
pub const FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
pub const RBAC: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub const EXT_AUTHZ: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
pub const EXT_AUTHZ_PER_ROUTE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";
pub const RBAC_PER_ROUTE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

pub(super) mod ext_authz;
pub const COMPRESSOR: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";
pub const HEALTH_CHECK: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";
pub const BUFFER: &str = "envoy.extensions.filters.http.buffer.v3.Buffer";
pub const CORS: &str = "envoy.extensions.filters.http.cors.v3.Cors";
pub const DECOMPRESSOR: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";
pub const GRPC_HTTP1_BRIDGE: &str = "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";

pub mod cache;
pub mod compressor;
pub mod cors;
pub mod csrf;
mod decompressor;
mod fault;
mod health_check;

pub fn connection_manager(
    h: &pb::HttpConnectionManager,
    at: &Path,
    out: &mut Out,
) -> Option<HttpConnectionManager> {
    use pb::http_connection_manager::{
        CodecType as C, ForwardClientCertDetails as F, RouteSpecifier,
    };
    let codec_type = match C::try_from(h.codec_type) {
        Ok(C::Auto) => CodecType::Auto,
        Ok(C::Http1) => CodecType::Http1,
        Ok(C::Http2) => CodecType::Http2,
        _ => {
            out.error(
                &at.field("codec_type"),
                "HTTP/3 is not supported; use AUTO, HTTP1 or HTTP2",
            );
            return None;
        }
    };
    let routes = match &h.route_specifier {
        Some(RouteSpecifier::RouteConfig(config)) => RouteSource::Static(route::route_config(
            config,
            true,
            &at.field("route_config"),
            out,
        )?),
        Some(RouteSpecifier::Rds(rds)) => RouteSource::Rds {
            route_config_name: rds.route_config_name.clone(),
            config_source: config_source(
                &rds.config_source,
                &at.field("rds").field("config_source"),
                out,
            )?,
        },
        _ => {
            out.error(at, "the connection manager needs `route_config` or `rds`");
            return None;
        }
    };
    let http_filters = http_filters(&h.http_filters, &at.field("http_filters"), out);
    if let RouteSource::Static(table) = &routes {
        check_filter_destination_cluster(&http_filters, table, &at.field("http_filters"), out);
    }
    // The router's deprecated `start_child_span` spawns the same per-attempt span as `spawn_upstream_span`
    // (checked with Envoy 1.40), so the tracer carries it.
    let start_child_span = http_filters
        .iter()
        .any(|f| matches!(f, HttpFilter::Router(r) if r.start_child_span));
    let common = h.common_http_protocol_options.unwrap_or_default();
    let request_timeout = timeout_or(&h.request_timeout, None);
    let forward_client_cert_details = match F::try_from(h.forward_client_cert_details) {
        Ok(F::ForwardOnly) => ForwardClientCertDetails::ForwardOnly,
        Ok(F::AppendForward) => ForwardClientCertDetails::AppendForward,
        Ok(F::SanitizeSet) => ForwardClientCertDetails::SanitizeSet,
        Ok(F::AlwaysForwardOnly) => ForwardClientCertDetails::AlwaysForwardOnly,
        _ => ForwardClientCertDetails::Sanitize,
    };
    Some(HttpConnectionManager {
        stat_prefix: h.stat_prefix.clone(),
        codec_type,
        routes,
        http_filters,
        server_name: if h.server_name.is_empty() {
            "outrigger".to_string()
        } else {
            h.server_name.clone()
        },
        stream_idle_timeout: timeout_or(&h.stream_idle_timeout, Some(Duration::from_secs(300))),
        request_timeout,
        request_headers_timeout: timeout_or(&h.request_headers_timeout, None),
        drain_timeout: duration_or(&h.drain_timeout, Duration::from_secs(5)),
        idle_timeout: timeout_or(&common.idle_timeout, Some(Duration::from_secs(3600))),
        max_connection_duration: timeout_or(&common.max_connection_duration, None),
        max_request_headers_kb: u32_or(&h.max_request_headers_kb, 60),
        max_headers_count: u32_or(&common.max_headers_count, 100),
        max_requests_per_connection: common
            .max_requests_per_connection
            .map(|m| m.value)
            .filter(|m| *m > 0),
        generate_request_id: bool_or(&h.generate_request_id, true),
        use_remote_address: bool_or(&h.use_remote_address, false),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        skip_xff_append: h.skip_xff_append,
        add_user_agent: bool_or(&h.add_user_agent, false),
        upgrade_types: h
            .upgrade_configs
            .iter()
            .filter(|u| bool_or(&u.enabled, true))
            .map(|u| u.upgrade_type.to_ascii_lowercase())
            .collect(),
        normalize_path: bool_or(&h.normalize_path, false),
        merge_slashes: h.merge_slashes,
        http2: {
            let http2 = http2_options(h.http2_protocol_options.as_ref());
            if http2.keepalive.is_some() {
                out.error(
                    &at.field("http2_protocol_options").field("connection_keepalive"),
                    "keepalive PINGs to downstream clients are not supported; remove connection_keepalive",
                );
            }
            http2
        },
        forward_client_cert_details,
        set_current_client_cert_details: h
            .set_current_client_cert_details
            .as_ref()
            .map(|d| ClientCertDetails {
                subject: bool_or(&d.subject, false),
                cert: d.cert,
                chain: d.chain,
                dns: d.dns,
                uri: d.uri,
            })
            .unwrap_or_default(),
        access_log: super::access_log::access_logs(&h.access_log, &at.field("access_log"), out),
        tracing: h
            .tracing
            .as_ref()
            .and_then(|t| super::tracing::tracing(t, &at.field("tracing"), out))
            .map(|mut t| {
                t.start_child_span = start_child_span;
                t
            }),
    })
}

/// The filter's own `destination_cluster` action cannot see a weighted cluster pick (Outrigger picks it after
/// the filter has run): refused when a route has weighted clusters.
fn check_filter_destination_cluster(
    filters: &[HttpFilter],
    table: &crate::model::route::RouteConfig,
    at: &Path,
    out: &mut Out,
) {
    use crate::model::route::{ClusterTarget, RouteAction};
    let weighted = table.virtual_hosts.iter().flat_map(|v| &v.routes).any(|r| {
        matches!(&r.action, RouteAction::Route(f) if matches!(f.target, ClusterTarget::WeightedClusters(_)))
    });
    for (i, filter) in filters.iter().enumerate() {
        if let HttpFilter::LocalRateLimit(l) = filter
            && weighted
            && rate_limit::names_destination_cluster(&l.rate_limits)
        {
            out.error(
                &at.index(i).field("typed_config").field("rate_limits"),
                "a destination_cluster action is not supported while a route has weighted_clusters",
            );
        }
    }
}

pub fn http2_options(o: Option<&core::Http2ProtocolOptions>) -> Http2Options {
    let defaults = Http2Options::default();
    let Some(o) = o else { return defaults };
    Http2Options {
        max_concurrent_streams: u32_or(&o.max_concurrent_streams, defaults.max_concurrent_streams),
        initial_stream_window_size: u32_or(
            &o.initial_stream_window_size,
            defaults.initial_stream_window_size,
        ),
        initial_connection_window_size: u32_or(
            &o.initial_connection_window_size,
            defaults.initial_connection_window_size,
        ),
        keepalive: o.connection_keepalive.as_ref().map(|k| Keepalive {
            // Unset: no periodic PING (Envoy's rule); the timeout is required by the field rules.
            interval: k.interval.as_ref().map(super::duration),
            timeout: duration_or(&k.timeout, Duration::ZERO),
        }),
    }
}

fn http_filters(filters: &[pb::HttpFilter], at: &Path, out: &mut Out) -> Vec<HttpFilter> {
    use pb::http_filter::ConfigType;
    let mut result = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let at = at.index(i);
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
            out.error(
                &at,
                format!("HTTP filter {:?} needs a typed_config", f.name),
            );
            continue;
        };
        let at_config = at.field("typed_config");
        let filter = match type_name(any) {
            ROUTER => decode_any::<router::Router>(any, &at_config, out).map(|r| {
                HttpFilter::Router(Router {
                    suppress_envoy_headers: r.suppress_envoy_headers,
                    #[allow(deprecated)]
                    start_child_span: r.start_child_span,
                })
            }),
            LOCAL_RATE_LIMIT => decode_any(any, &at_config, out)
                .and_then(|r| local_rate_limit(&r, &at_config, out))
                .map(HttpFilter::LocalRateLimit),
            FAULT => decode_any(any, &at_config, out)
                .and_then(|f| fault::fault(&f, &at_config, out))
                .map(HttpFilter::Fault),
            RBAC => decode_any(any, &at_config, out)
                .and_then(|r| super::rbac::http(&r, &f.name, &at_config, out))
                .map(HttpFilter::Rbac),
            EXT_AUTHZ => decode_any(any, &at_config, out)
                .and_then(|r| ext_authz::ext_authz(&r, &f.name, &at_config, out))
                .map(HttpFilter::ExtAuthz),
            COMPRESSOR => decode_any(any, &at_config, out)
                .and_then(|c| compressor::compressor(&c, &at_config, out))
                .map(|mut c| {
                    c.filter_name = f.name.clone();
                    HttpFilter::Compressor(c)
                }),
            DECOMPRESSOR => decode_any(any, &at_config, out)
                .and_then(|d| decompressor::decompressor(&d, &at_config, out))
                .map(HttpFilter::Decompressor),
            GRPC_HTTP1_BRIDGE => decode_any(any, &at_config, out)
                .map(|c| HttpFilter::GrpcHttp1Bridge(decompressor::grpc_http1_bridge(&c))),
            HEALTH_CHECK => decode_any(any, &at_config, out)
                .and_then(|h| health_check::health_check(&h, &at_config, out))
                .map(HttpFilter::HealthCheck),
            BUFFER => decode_any(any, &at_config, out)
                .and_then(|b| health_check::buffer(&b, &at_config, out))
                .map(HttpFilter::Buffer),
            CORS => {
                decode_any::<envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors>(
                    any, &at_config, out,
                )
                .map(|_| {
                    HttpFilter::Cors(crate::model::cors::Cors {
                        filter_name: f.name.clone(),
                    })
                })
            }
            cache::CONFIG => decode_any(any, &at_config, out)
                .and_then(|c| cache::cache(&c, &at_config, out))
                .map(HttpFilter::Cache),
            csrf::POLICY => decode_any(any, &at_config, out)
                .and_then(|p| csrf::policy(&p, &at_config, out))
                .map(|policy| {
                    HttpFilter::Csrf(crate::model::csrf::Csrf {
                        filter_name: f.name.clone(),
                        policy,
                    })
                }),
            other => {
                out.error(
                    &at_config,
                    format!(
                        "HTTP filter {other} is not supported; supported: envoy.filters.http.buffer, \
                         envoy.filters.http.cache, envoy.filters.http.compressor, envoy.filters.http.cors, envoy.filters.http.csrf, \
                         envoy.filters.http.decompressor, \
                         envoy.filters.http.ext_authz, envoy.filters.http.fault, envoy.filters.http.grpc_http1_bridge, \
                         envoy.filters.http.health_check, envoy.filters.http.local_ratelimit, envoy.filters.http.rbac, \
                         envoy.filters.http.router"
                    ),
                );
                None
            }
        };
        let is_router = matches!(filter, Some(HttpFilter::Router(_)));
        let is_last = i + 1 == filters.len();
        if is_router && !is_last {
            out.error(
                &at,
                format!(
                    "terminal filter {} must be the last filter in an HTTP filter chain",
                    f.name
                ),
            );
        }
        if !is_router && is_last && filter.is_some() {
            out.error(&at, format!("non-terminal filter {} is the last filter in an HTTP filter chain; end it with envoy.filters.http.router", f.name));
        }
        // The stack runs at most one fault filter, outside the local rate limit (`proxy/src/http.rs`).
        if matches!(filter, Some(HttpFilter::Fault(_))) {
            if result.iter().any(|f| matches!(f, HttpFilter::Fault(_))) {
                out.error(
                    &at,
                    "only one envoy.filters.http.fault filter per chain is supported",
                );
            }
            if result
                .iter()
                .any(|f| matches!(f, HttpFilter::LocalRateLimit(_)))
            {
                out.error(
                    &at,
                    "envoy.filters.http.fault after envoy.filters.http.local_ratelimit is not supported; \
                     put the fault filter first",
                );
            }
        }
        // The stack runs the fault filter and the local rate limit, then the authorization filters in their
        // order (`proxy/src/http.rs`).
        if matches!(
            filter,
            Some(HttpFilter::Fault(_) | HttpFilter::LocalRateLimit(_))
        ) && result.iter().any(|f| matches!(f, HttpFilter::Rbac(_)))
        {
            out.error(
                &at,
                "envoy.filters.http.fault and envoy.filters.http.local_ratelimit after an authorization filter \
                 (rbac, ext_authz) are not supported; put them first",
            );
        }
        // The authorization filters run as one layer at the first one's place (`proxy/src/http/filter_chain.rs`):
        // a CORS or CSRF filter between two of them would run after both.
        if matches!(filter, Some(HttpFilter::Rbac(_) | HttpFilter::ExtAuthz(_)))
            && let Some(first) = result
                .iter()
                .position(|f| matches!(f, HttpFilter::Rbac(_) | HttpFilter::ExtAuthz(_)))
            && let Some(between) = result[first..].iter().find_map(|f| match f {
                HttpFilter::Cors(_) => Some("cors"),
                HttpFilter::Csrf(_) => Some("csrf"),
                _ => None,
            })
        {
            out.error(
                &at,
                format!(
                    "envoy.filters.http.{between} between two authorization filters (rbac, ext_authz) is not \
                     supported; put it before or after both"
                ),
            );
        }
        result.extend(filter);
    }
    result
}

pub fn local_rate_limit(
    r: &ratelimit::LocalRateLimit,
    at: &Path,
    out: &mut Out,
) -> Option<LocalRateLimit> {
    let token_bucket = r.token_bucket.as_ref().map(|b| TokenBucket {
        max_tokens: b.max_tokens,
        tokens_per_fill: u32_or(&b.tokens_per_fill, 1),
        fill_interval: b
            .fill_interval
            .as_ref()
            .map(super::duration)
            .unwrap_or_default(),
    });
    if let Some(bucket) = &token_bucket
        && bucket.fill_interval < Duration::from_millis(50)
    {
        out.error(
            &at.field("token_bucket").field("fill_interval"),
            "must be at least 50ms (as in Envoy)",
        );
    }
    let status = r.status.as_ref().map(|s| s.code).unwrap_or(429);
    let Ok(status) = u16::try_from(status) else {
        out.error(&at.field("status"), "not an HTTP status code");
        return None;
    };
    // Envoy: a status below 400 becomes 429.
    let status = if status < 400 { 429 } else { status };
    Some(LocalRateLimit {
        stat_prefix: r.stat_prefix.clone(),
        token_bucket,
        filter_enabled: fraction(&r.filter_enabled.as_ref().and_then(|f| f.default_value)),
        filter_enforced: fraction(&r.filter_enforced.as_ref().and_then(|f| f.default_value)),
        status,
        response_headers_to_add: headers_to_add(
            &r.response_headers_to_add,
            &at.field("response_headers_to_add"),
        ),
        local_rate_limit_per_downstream_connection: r.local_rate_limit_per_downstream_connection,
        // DRAFT_VERSION_03 is the one version Envoy has (1); OFF is 0.
        x_ratelimit_headers: r.enable_x_ratelimit_headers != 0,
        descriptors: rate_limit::descriptors(&r.descriptors, &at.field("descriptors"), out),
        stage: r.stage,
        vh_rate_limits: vh_rate_limits(r.vh_rate_limits),
        always_consume_default_token_bucket: bool_or(&r.always_consume_default_token_bucket, true),
        max_dynamic_descriptors: u32_or(&r.max_dynamic_descriptors, 20),
        rate_limits: rate_limit::filter_rate_limits(&r.rate_limits, &at.field("rate_limits"), out),
    })
}

/// `vh_rate_limits`: OVERRIDE is 0, INCLUDE 1, IGNORE 2.
fn vh_rate_limits(value: i32) -> VhRateLimits {
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::VhRateLimitsOptions as V;
    match V::try_from(value) {
        Ok(V::Include) => VhRateLimits::Include,
        Ok(V::Ignore) => VhRateLimits::Ignore,
        _ => VhRateLimits::Override,
    }
}
