//! Access logs: the loggers, their formats and their filters.
//!
//! `proofs.rs` says what an entry means. The differential test writes the same lines as Envoy 1.40 for the same
//! configuration and requests; the loader test reads each field into the model; the filter test decides as
//! Envoy's filters do.

use super::Proof::{self, Tests};
use super::cited::*;

pub(super) const PROOFS: &[(&str, Proof)] = &[
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.access_log",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.access_log",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.config.listener.v3.Listener.access_log",
        Tests(&[AL_LISTENER]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLog.name",
        Tests(&[AL_LOADER]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLog.filter",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLog.typed_config",
        Tests(&[AL_ENVOY, AL_STREAMS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.status_code_filter",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.duration_filter",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.not_health_check_filter",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.runtime_filter",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.and_filter",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.or_filter",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AccessLogFilter.response_flag_filter",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.StatusCodeFilter.comparison",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.DurationFilter.comparison",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.ComparisonFilter.op",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.ComparisonFilter.value",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    // With no runtime layers the key always yields `default_value`, in Envoy as here: the tests set both.
    (
        "envoy.config.core.v3.RuntimeUInt32.default_value",
        Tests(&[AL_ENVOY, AL_LOADER]),
    ),
    (
        "envoy.config.core.v3.RuntimeUInt32.runtime_key",
        Tests(&[AL_ENVOY, AL_LOADER]),
    ),
    (
        "envoy.config.accesslog.v3.RuntimeFilter.runtime_key",
        Tests(&[AL_LOADER]),
    ),
    (
        "envoy.config.accesslog.v3.RuntimeFilter.percent_sampled",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.RuntimeFilter.use_independent_randomness",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.AndFilter.filters",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.OrFilter.filters",
        Tests(&[AL_LOADER, AL_FILTERS]),
    ),
    (
        "envoy.config.accesslog.v3.ResponseFlagFilter.flags",
        Tests(&[AL_ENVOY, AL_FILTERS]),
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog.path",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog.log_format",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog.format",
        Tests(&[AL_LOADER]),
    ),
    (
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog.log_format",
        Tests(&[AL_STREAMS]),
    ),
    (
        "envoy.extensions.access_loggers.stream.v3.StderrAccessLog.log_format",
        Tests(&[AL_STREAMS]),
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString.text_format_source",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString.json_format",
        Tests(&[AL_ENVOY]),
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString.text_format",
        Tests(&[AL_LOADER]),
    ),
];
