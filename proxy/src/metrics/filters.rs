//! The statistics of the compressor, decompressor, health check and CORS HTTP filters, in Envoy 1.40's names:
//! `http.<prefix>.compressor.<library name>.<gzip|brotli|zstd>.[request.|response.]<stat>`,
//! `http.<prefix>.decompressor.<library name>.<gzip|brotli|zstd>.<request|response|decompressor_library>.<stat>`,
//! `http.<prefix>.health_check.<stat>`, `http.<prefix>.cors.<stat>` and `http.<prefix>.csrf.<stat>`. In Prometheus each is a family
//! `envoy_http_compressor_<stat>` (labels: the connection manager's prefix and `envoy_compressor_scope`,
//! `<name>.<library>[.request|.response]`), `envoy_http_decompressor_<stat>` (`envoy_decompressor_scope`),
//! `envoy_http_health_check_<stat>`, `envoy_http_cors_<stat>` or `envoy_http_csrf_<stat>`.

use super::Labels;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The compressor's statistics of one direction (`request.` or the response's, `response.` when
/// `response_direction_config` is set).
pub const DIRECTION_STATS: &[&str] = &[
    "compressed",
    "not_compressed",
    "total_uncompressed_bytes",
    "total_compressed_bytes",
    "content_length_too_small",
];

/// The compressor's response statistics kept at the library's own scope.
pub const RESPONSE_STATS: &[&str] = &[
    "no_accept_header",
    "header_identity",
    "header_compressor_used",
    "header_compressor_overshadowed",
    "header_wildcard",
    "header_not_valid",
    "not_compressed_etag",
];

/// The decompressor's statistics of one direction, `http.<prefix>.decompressor.<name>.<library>.<request|response>.*`.
pub const DECOMPRESSOR_STATS: &[&str] = &[
    "decompressed",
    "not_decompressed",
    "total_uncompressed_bytes",
    "total_compressed_bytes",
];

/// The decompressor libraries' own statistics, `http.<prefix>.decompressor.<name>.<library>.decompressor_library.*`
/// (Envoy creates them with a stream's first decoder).
pub const DECOMPRESSOR_LIBRARY_STATS: &[&str] = &[
    "zlib_errno",
    "zlib_stream_error",
    "zlib_data_error",
    "zlib_mem_error",
    "zlib_buf_error",
    "zlib_version_error",
    "brotli_error",
    "brotli_output_overflow",
    "brotli_redundant_input",
    "zstd_generic_error",
    "zstd_dictionary_error",
    "zstd_checksum_wrong_error",
    "zstd_memory_error",
];

pub const HEALTH_CHECK_STATS: &[&str] = &[
    "request_total",
    "ok",
    "failed",
    "cached_response",
    "degraded",
    "failed_cluster_empty",
    "failed_cluster_not_found",
    "failed_cluster_unhealthy",
];

/// `http.<prefix>.cors.<stat>`.
pub const CORS_STATS: &[&str] = &["origin_invalid", "origin_valid"];

/// `http.<prefix>.csrf.<stat>`.
pub const CSRF_STATS: &[&str] = &["missing_source_origin", "request_invalid", "request_valid"];

#[derive(Clone, Default)]
pub struct Families {
    /// By statistic name, in the order of `DIRECTION_STATS` then `RESPONSE_STATS`.
    pub compressor: Vec<(&'static str, Family<Labels, Counter>)>,
    pub health_check: Vec<(&'static str, Family<Labels, Counter>)>,
    pub cors: Vec<(&'static str, Family<Labels, Counter>)>,
    pub csrf: Vec<(&'static str, Family<Labels, Counter>)>,
    /// `DECOMPRESSOR_STATS` then `DECOMPRESSOR_LIBRARY_STATS`.
    pub decompressor: Vec<(&'static str, Family<Labels, Counter>)>,
}

impl Families {
    pub fn register(registry: &mut Registry) -> Self {
        let mut f = Families::default();
        for name in DIRECTION_STATS.iter().chain(RESPONSE_STATS) {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_compressor_{name}"),
                format!("The compressor filter's {name}"),
                family.clone(),
            );
            f.compressor.push((name, family));
        }
        for name in DECOMPRESSOR_STATS.iter().chain(DECOMPRESSOR_LIBRARY_STATS) {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_decompressor_{name}"),
                format!("The decompressor filter's {name}"),
                family.clone(),
            );
            f.decompressor.push((name, family));
        }
        for name in HEALTH_CHECK_STATS {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_health_check_{name}"),
                format!("The health check filter's {name}"),
                family.clone(),
            );
            f.health_check.push((name, family));
        }
        for name in CORS_STATS {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_cors_{name}"),
                format!("The CORS filter's {name}"),
                family.clone(),
            );
            f.cors.push((name, family));
        }
        for name in CSRF_STATS {
            let family = Family::<Labels, Counter>::default();
            registry.register(
                format!("envoy_http_csrf_{name}"),
                format!("The CSRF filter's {name}"),
                family.clone(),
            );
            f.csrf.push((name, family));
        }
        f
    }

    /// The counter `name` of one compressor scope, created at 0 (Envoy shows its filters' statistics from the
    /// start).
    pub fn compressor_counter(&self, prefix: &str, scope: &str, name: &str) -> Counter {
        counter(
            &self.compressor,
            name,
            &[
                ("envoy_http_conn_manager_prefix", prefix.to_string()),
                ("envoy_compressor_scope", scope.to_string()),
            ],
        )
    }

    /// The counter `name` of one decompressor scope (`<name>.<library>.request`, `.response` or
    /// `.decompressor_library`).
    pub fn decompressor_counter(&self, prefix: &str, scope: &str, name: &str) -> Counter {
        counter(
            &self.decompressor,
            name,
            &[
                ("envoy_http_conn_manager_prefix", prefix.to_string()),
                ("envoy_decompressor_scope", scope.to_string()),
            ],
        )
    }

    pub fn health_check_counter(&self, prefix: &str, name: &str) -> Counter {
        counter(
            &self.health_check,
            name,
            &[("envoy_http_conn_manager_prefix", prefix.to_string())],
        )
    }
}

impl Families {
    /// The counter `name` of one connection manager's CORS filters, created at 0.
    pub fn cors_counter(&self, prefix: &str, name: &str) -> Counter {
        counter(
            &self.cors,
            name,
            &[("envoy_http_conn_manager_prefix", prefix.to_string())],
        )
    }

    /// The counter `name` of one connection manager's CSRF filters, created at 0.
    pub fn csrf_counter(&self, prefix: &str, name: &str) -> Counter {
        counter(
            &self.csrf,
            name,
            &[("envoy_http_conn_manager_prefix", prefix.to_string())],
        )
    }
}

fn counter(
    families: &[(&'static str, Family<Labels, Counter>)],
    name: &str,
    labels: &[(&'static str, String)],
) -> Counter {
    families
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, family)| family.get_or_create(&labels.to_vec()).clone())
        .unwrap_or_default()
}

/// `/stats`' line for a sample of these families, or `None` when `name` is not one of them.
pub fn envoy_stat(
    name: &str,
    label: &dyn Fn(&str) -> Option<String>,
    value: &str,
) -> Option<Option<String>> {
    let rest = name.strip_suffix("_total").unwrap_or(name);
    if let Some(stat) = rest.strip_prefix("envoy_http_compressor_") {
        let line = (|| {
            let prefix = label("envoy_http_conn_manager_prefix")?;
            let scope = label("envoy_compressor_scope")?;
            Some(format!("http.{prefix}.compressor.{scope}.{stat}: {value}"))
        })();
        return Some(line);
    }
    if let Some(stat) = rest.strip_prefix("envoy_http_cors_") {
        let line = label("envoy_http_conn_manager_prefix")
            .map(|prefix| format!("http.{prefix}.cors.{stat}: {value}"));
        return Some(line);
    }
    if let Some(stat) = rest.strip_prefix("envoy_http_csrf_") {
        let line = label("envoy_http_conn_manager_prefix")
            .map(|prefix| format!("http.{prefix}.csrf.{stat}: {value}"));
        return Some(line);
    }
    if let Some(stat) = rest.strip_prefix("envoy_http_decompressor_") {
        let line = (|| {
            let prefix = label("envoy_http_conn_manager_prefix")?;
            let scope = label("envoy_decompressor_scope")?;
            Some(format!(
                "http.{prefix}.decompressor.{scope}.{stat}: {value}"
            ))
        })();
        return Some(line);
    }
    if let Some(stat) = rest.strip_prefix("envoy_http_health_check_") {
        let line = label("envoy_http_conn_manager_prefix")
            .map(|prefix| format!("http.{prefix}.health_check.{stat}: {value}"));
        return Some(line);
    }
    None
}
