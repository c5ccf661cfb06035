//! The tests the proofs cite, by file: `path/from/the/repository/root.rs::test_fn`.

pub(super) const LOADER_DEFAULTS: &str = "config/tests/loader.rs::defaults_are_envoys";
pub(super) const LOADER_SIDECAR: &str =
    "config/tests/loader.rs::the_embedded_default_is_a_transparent_sidecar";
pub(super) const LABEL_FILTER_BY_NAME: &str = "config/src/support/label_checks.rs::a_listener_filter_without_typed_config_is_found_by_its_name";
pub(super) const LABEL_KEPT: &str =
    "config/src/support/label_checks.rs::labels_are_kept_in_the_effective_configuration";
pub(super) const LABEL_MISPLACED: &str =
    "config/src/support/label_checks.rs::a_misplaced_filter_is_named_in_the_problem";
pub(super) const LABEL_DOMAIN_TWICE: &str =
    "config/src/support/label_checks.rs::a_domain_served_twice_names_the_virtual_host_that_has_it";
pub(super) const LABEL_REQUIRED: &str =
    "config/src/support/label_checks.rs::names_envoy_requires_are_required";
pub(super) const MATCH_IGNORE_CASE: &str =
    "config/src/model/core.rs::string_matchers_honour_ignore_case";
pub(super) const PATTERNS: &str =
    "config/src/model/core.rs::patterns_match_whole_values_and_rewrite_groups";
pub(super) const ADMIN: &str = "tests/admin.rs::admin_endpoints_answer_like_envoy";
pub(super) const ROUTER_HEADERS: &str =
    "tests/envoy_resilience.rs::router_headers_unless_suppressed";
pub(super) const HTTP_ROUTES: &str = "tests/proxy_http.rs::routes_match_and_act_like_envoy";
pub(super) const HTTP_HEADERS: &str =
    "tests/proxy_http.rs::headers_are_mutated_and_request_ids_added";
pub(super) const HTTP_TIMEOUT: &str =
    "tests/proxy_http.rs::local_errors_answer_like_envoy_and_the_proxy_keeps_serving";
pub(super) const HTTP_RETRY: &str =
    "tests/proxy_http.rs::round_robin_alternates_and_retries_skip_dead_endpoints";
pub(super) const HTTP_STATS: &str = "tests/proxy_http.rs::promtool_accepts_the_prometheus_endpoint";
pub(super) const HTTP_WEBSOCKET: &str = "tests/proxy_http.rs::websocket_upgrades_are_tunnelled";
pub(super) const HTTP_CLUSTERS: &str =
    "tests/proxy_http.rs::every_cluster_type_and_balancer_serves";
pub(super) const HTTP_SLOW_HEADERS: &str =
    "tests/proxy_http.rs::an_upstream_reset_is_503_ur_and_slow_headers_are_cut_off";
pub(super) const DIFFERENTIAL: &str =
    "tests/envoy_differential.rs::envoy_and_outrigger_route_alike";
pub(super) const GRPC_H2: &str = "tests/proxy_grpc.rs::grpc_trailers_pass_through_over_h2";
pub(super) const TCP_COPY: &str =
    "tests/proxy_tcp.rs::opaque_bytes_are_copied_both_ways_with_half_close";
pub(super) const TCP_HTTP: &str =
    "tests/proxy_tcp.rs::http_is_detected_and_served_by_the_connection_manager";
pub(super) const TCP_SILENT: &str =
    "tests/proxy_tcp.rs::a_silent_client_falls_back_to_opaque_tcp_after_the_detection_timeout";
pub(super) const TCP_PORT: &str =
    "tests/proxy_tcp.rs::a_port_matched_chain_skips_detection_so_server_first_protocols_never_wait";
pub(super) const TCP_SNI: &str =
    "tests/proxy_tcp.rs::tls_is_routed_by_sni_without_being_terminated";
pub(super) const TCP_IDLE: &str =
    "tests/proxy_tcp.rs::idle_tcp_connections_are_closed_after_idle_timeout";
pub(super) const MTLS_IN: &str = "tests/mtls.rs::inbound_mtls_with_envoy_openssl_and_every_refusal";
pub(super) const MTLS_OUT: &str = "tests/mtls.rs::outbound_mtls_to_envoy";
pub(super) const MTLS_MATCHES: &str =
    "tests/mtls.rs::transport_socket_matches_choose_tls_per_endpoint";
pub(super) const MTLS_ROTATION: &str =
    "tests/mtls.rs::certificates_rotate_under_load_without_a_failed_request";
pub(super) const MESH: &str = "tests/mesh.rs::apps_talk_through_both_sidecars_without_knowing";
pub(super) const MESH_ADS: &str =
    "tests/mesh.rs::the_mesh_runs_on_the_control_plane_with_its_certificates";
pub(super) const ORIGINAL_DST: &str =
    "tests/original_dst.rs::original_destination_passthrough_through_a_real_redirect";
pub(super) const CLI_TLS_FILE: &str =
    "tests/validate_cli.rs::run_and_validate_name_the_tls_file_they_cannot_use";
pub(super) const CHAIN_PORT: &str =
    "proxy/src/chain/tests.rs::port_beats_protocol_and_default_catches_the_rest";
pub(super) const CHAIN_PREFIX_SNI: &str =
    "proxy/src/chain/tests.rs::longest_prefix_and_exact_server_name_win";
pub(super) const ROUTE_CASE: &str =
    "proxy/src/http/route.rs::prefixes_compare_in_place_with_or_without_case";
pub(super) const XFCC_SET: &str =
    "proxy/src/http/client_cert.rs::sanitize_set_writes_the_current_client";
pub(super) const XFCC_APPEND: &str =
    "proxy/src/http/client_cert.rs::append_forward_keeps_earlier_hops";
pub(super) const RETRY_5XX: &str =
    "proxy/src/http/retry/tests.rs::a_503_is_retried_with_the_same_body_and_counted";
pub(super) const RETRY_LIMIT: &str =
    "proxy/src/http/retry/tests.rs::after_num_retries_the_last_response_goes_out_flagged_urx";
pub(super) const RETRY_BREAKER: &str = "proxy/src/http/retry/tests.rs::a_full_retry_breaker_stops_the_retry_without_x_envoy_overloaded";
pub(super) const RETRY_CONDITIONS: &str =
    "proxy/src/http/retry/tests.rs::retry_on_conditions_follow_envoy";
pub(super) const RETRY_BUFFER: &str =
    "proxy/src/http/retry/tests.rs::a_body_past_the_buffer_limit_is_not_retried";
pub(super) const REPLAY_LIMIT: &str =
    "proxy/src/http/replay_body.rs::past_the_limit_the_body_flows_but_cannot_be_retried";
pub(super) const BUCKET_FULL: &str = "proxy/src/token_bucket.rs::starts_full_and_empties";
pub(super) const BUCKET_REFILL: &str =
    "proxy/src/token_bucket.rs::refills_continuously_not_in_steps";
pub(super) const BUCKET_MAX: &str = "proxy/src/token_bucket.rs::never_holds_more_than_max";
pub(super) const BREAKER_REQUESTS: &str =
    "proxy/src/upstream/breaker.rs::requests_are_refused_at_the_limit_and_given_back";
pub(super) const BREAKER_RETRIES: &str =
    "proxy/src/upstream/breaker.rs::max_retries_zero_refuses_every_retry";
pub(super) const BREAKER_BUDGET: &str =
    "proxy/src/upstream/breaker.rs::retry_budget_is_a_share_of_active_requests_with_a_floor";
pub(super) const BREAKER_GAUGES: &str = "proxy/src/upstream/breaker.rs::gauges_follow_the_limits";
pub(super) const BREAKER_CONNECTIONS: &str =
    "proxy/src/upstream/breaker.rs::a_request_waits_for_a_connection_and_pending_ones_overflow";
pub(super) const LB_ROUND_ROBIN: &str =
    "proxy/src/upstream/balancer.rs::round_robin_follows_weights_exactly";
pub(super) const LB_RANDOM: &str = "proxy/src/upstream/balancer.rs::random_follows_weights_roughly";
pub(super) const LB_LEAST_REQUEST: &str =
    "proxy/src/upstream/balancer.rs::least_request_avoids_the_busy_endpoint";
pub(super) const PRIORITY_SPILL: &str = "proxy/src/upstream/priority.rs::a_lower_priority_gets_traffic_only_as_the_higher_one_loses_health";
pub(super) const PRIORITY_PANIC: &str =
    "proxy/src/upstream/priority.rs::unhealthy_hosts_are_skipped_until_the_panic_threshold";
pub(super) const OUTLIER_GATEWAY: &str = "proxy/src/upstream/outlier/tests.rs::gateway_failures_are_detected_but_not_enforced_by_default";
pub(super) const OUTLIER_ZERO: &str =
    "proxy/src/upstream/outlier/tests.rs::other_5xx_reset_only_the_gateway_run_and_zero_disables";
pub(super) const OUTLIER_CAP: &str =
    "proxy/src/upstream/outlier/tests.rs::the_cap_counts_the_host_about_to_be_ejected";
pub(super) const OUTLIER_NO_ENFORCING: &str = "proxy/src/upstream/outlier/tests.rs::enforcement_zero_detects_without_ejecting_and_restarts_the_run";
pub(super) const OUTLIER_ROLL: &str =
    "proxy/src/upstream/outlier/tests.rs::enforcement_between_0_and_100_is_a_roll";
pub(super) const OUTLIER_GROWS: &str =
    "proxy/src/upstream/outlier/tests.rs::ejection_time_grows_with_each_ejection_up_to_the_max";
pub(super) const OUTLIER_MAX_BELOW_BASE: &str =
    "proxy/src/upstream/outlier/tests.rs::a_max_below_the_base_means_the_base";
pub(super) const OUTLIER_SPLIT: &str =
    "proxy/src/upstream/outlier/tests.rs::split_mode_keeps_local_failures_apart";
pub(super) const OUTLIER_SPLIT_RATES: &str =
    "proxy/src/upstream/outlier/tests.rs::split_mode_analyses_local_origin_results_too";
pub(super) const OUTLIER_STDEV: &str =
    "proxy/src/upstream/outlier/tests.rs::the_success_rate_threshold";
pub(super) const OUTLIER_FAILURE_PERCENTAGE: &str =
    "proxy/src/upstream/outlier/tests.rs::failure_percentage_ejects_at_or_above_the_threshold";
pub(super) const RBAC_SPIFFE: &str = "proxy/src/rbac.rs::allow_by_spiffe_id";
pub(super) const RBAC_COMBINATORS: &str = "proxy/src/rbac.rs::deny_and_combinators";
pub(super) const RESILIENCE_RATE_LIMIT: &str =
    "tests/envoy_resilience.rs::local_rate_limit_at_the_listener";
pub(super) const RESILIENCE_ROUTE_RATE_LIMIT: &str =
    "tests/envoy_resilience.rs::local_rate_limit_per_route";
pub(super) const RESILIENCE_RATE_LIMIT_HEADERS: &str =
    "tests/envoy_resilience.rs::local_rate_limit_x_ratelimit_headers";
pub(super) const RESILIENCE_MAX_REQUESTS: &str =
    "tests/envoy_resilience.rs::circuit_breaker_max_requests";
pub(super) const RESILIENCE_PENDING: &str =
    "tests/envoy_resilience.rs::circuit_breaker_pending_queue";
pub(super) const RESILIENCE_NO_RETRIES: &str =
    "tests/envoy_resilience.rs::retry_circuit_breaker_max_retries_0";
pub(super) const RESILIENCE_RETRY_LIMIT: &str =
    "tests/envoy_resilience.rs::retry_limit_exceeded_passes_on_the_last_503";
pub(super) const RESILIENCE_RETRY_4XX: &str =
    "tests/envoy_resilience.rs::retry_retriable_4xx_is_409_only";
pub(super) const RESILIENCE_BUFFER_LIMIT: &str =
    "tests/envoy_resilience.rs::retry_gives_up_on_a_body_over_the_buffer_limit";
pub(super) const RESILIENCE_ATTEMPT_COUNT: &str =
    "tests/envoy_resilience.rs::retry_attempt_count_headers";
pub(super) const RESILIENCE_OUTLIER: &str =
    "tests/envoy_resilience.rs::outlier_detection_consecutive_5xx";
pub(super) const RESILIENCE_NO_HEALTHY: &str =
    "tests/envoy_resilience.rs::outlier_detection_no_healthy_upstream_without_panic";
pub(super) const RESILIENCE_TIMEOUTS: &str =
    "tests/envoy_resilience.rs::timeouts_route_per_try_and_idle";
pub(super) const NETWORK_RATE_LIMIT: &str =
    "tests/envoy_network_limits.rs::new_connections_past_the_bucket_are_closed_like_envoy";
pub(super) const GRPC_RETRY: &str =
    "tests/grpc_retry.rs::tonic_unavailable_is_retried_with_the_message_intact";
pub(super) const HEDGE: &str =
    "proxy/src/http/hedge/tests.rs::a_slow_attempt_is_hedged_and_the_first_good_answer_wins";
pub(super) const IDLE_BODY: &str =
    "proxy/src/http/attempt.rs::a_stalled_body_fails_after_the_idle_timeout";
pub(super) const CORPUS: &str = "tests/envoy_corpus.rs::outrigger_agrees_with_the_labels";
pub(super) const RESILIENCE_FAILURE_PERCENTAGE: &str =
    "tests/envoy_resilience.rs::outlier_detection_failure_percentage_at_the_sweep";
pub(super) const RESILIENCE_PRIORITIES: &str =
    "tests/envoy_resilience.rs::priorities_spill_over_by_health";
pub(super) const RESILIENCE_BUDGET: &str =
    "tests/envoy_resilience.rs::retry_budget_of_zero_allows_no_retry";
pub(super) const TCP_MAX_CONNECTIONS: &str =
    "tests/envoy_network_limits.rs::tcp_proxy_closes_connections_over_max_connections_like_envoy";
pub(super) const HCM_LIMITS: &str =
    "tests/envoy_hcm_limits.rs::envoy_and_outrigger_apply_the_connection_manager_limits_alike";
pub(super) const STREAM_IDLE: &str = "proxy/src/http/stream_timeout/tests.rs::a_received_request_whose_upstream_is_silent_gets_504_stream_timeout";
pub(super) const REQUEST_TIMEOUT: &str = "proxy/src/http/stream_timeout/tests.rs::request_timeout_ends_an_unfinished_request_despite_activity";
pub(super) const ROUTE_IDLE: &str = "proxy/src/http/stream_timeout/tests.rs::a_routes_idle_timeout_replaces_the_connection_managers";
pub(super) const CONNECTION_IDLE: &str =
    "proxy/src/http/connection_timeout/tests.rs::a_silent_connection_is_closed_at_the_idle_timeout";
pub(super) const CONNECTION_DURATION: &str = "proxy/src/http/connection_timeout/tests.rs::max_connection_duration_drains_even_a_busy_connection";
pub(super) const TRUSTED_HOPS: &str =
    "proxy/src/http/forwarded/tests.rs::trusted_hops_pick_the_client_from_the_right_of_xff";
pub(super) const SKIP_XFF: &str =
    "proxy/src/http/forwarded/tests.rs::a_loopback_peer_is_recorded_as_the_proxys_own_address";
pub(super) const PATH_OPTIONS: &str =
    "proxy/src/http/path_normalization/tests.rs::each_option_alone";
pub(super) const OUTLIER_SETTINGS_WIRED: &str =
    "proxy/src/upstream/ejections.rs::every_configured_setting_reaches_the_detector";
pub(super) const OUTLIER_JITTER: &str =
    "proxy/src/upstream/outlier/tests.rs::jitter_lengthens_the_ejection_within_its_bound";
pub(super) const RL_GENERIC_KEY: &str =
    "tests/envoy_resilience.rs::local_rate_limit_descriptor_generic_key";
pub(super) const RL_REQUEST_HEADERS: &str =
    "tests/envoy_resilience.rs::local_rate_limit_descriptor_request_headers";
pub(super) const RL_CONSUME_DEFAULT: &str =
    "tests/envoy_resilience.rs::local_rate_limit_always_consume_default_token_bucket";
pub(super) const RL_WILDCARD: &str =
    "tests/envoy_resilience.rs::local_rate_limit_wildcard_descriptor";
pub(super) const RL_ACTIONS: &str =
    "tests/envoy_resilience.rs::local_rate_limit_descriptor_actions";
// proofs-routes proofs
pub(super) const ROUTE_VALIDATE_CLUSTERS: &str =
    "config/src/convert/route/tests.rs::validate_clusters_false_allows_unknown_clusters";
pub(super) const ROUTE_TOTAL_WEIGHT: &str = "config/src/convert/route/tests.rs::a_total_weight_that_is_not_the_sum_is_accepted_with_a_warning";
pub(super) const ROUTE_HOST_PREDICATE_TYPED: &str =
    "config/src/convert/route/tests.rs::a_retry_host_predicate_needs_its_typed_config";
pub(super) const RESILIENCE_VHOST_RETRY: &str =
    "tests/envoy_resilience.rs::retry_policy_hedging_and_buffer_limits_of_the_virtual_host";
pub(super) const RESILIENCE_RETRY_HEADERS: &str =
    "tests/envoy_resilience.rs::retry_on_response_headers_and_only_for_some_requests";
pub(super) const RESILIENCE_OTHER_HOST: &str =
    "tests/envoy_resilience.rs::retry_goes_to_another_host_with_previous_hosts";
pub(super) const RETRY_BACK_OFF_CONFIGURED: &str = "proxy/src/http/retry/tests.rs::configured_back_off_scales_from_base_interval_up_to_max_interval";
pub(super) const RETRY_RATE_LIMITED: &str =
    "proxy/src/http/retry/tests.rs::rate_limited_back_off_waits_as_the_reset_headers_say";
// proofs-security proofs
pub(super) const ENVOY_RBAC: &str =
    "tests/envoy_rbac_tls_h2.rs::rbac_rules_allow_and_deny_connections_like_envoy";
pub(super) const ENVOY_TLS: &str =
    "tests/envoy_rbac_tls_h2.rs::tls_versions_sni_and_san_types_like_envoy";
pub(super) const ENVOY_H2_SETTINGS: &str =
    "tests/envoy_rbac_tls_h2.rs::http2_protocol_options_are_announced_like_envoy";
pub(super) const HTTP_HEADER_OPTIONS: &str =
    "tests/proxy_http.rs::append_false_replaces_and_keep_empty_value_adds_an_empty_header";
pub(super) const FRACTION_DENOMINATOR: &str =
    "config/src/convert/tests.rs::fractional_percent_denominators_scale_the_numerator";
pub(super) const PERCENT_VALUE: &str =
    "config/src/convert/tests.rs::percent_values_reach_the_model_truncated_like_envoy";
// proofs-upstream proofs
pub(super) const UP_OUTLIER_GATEWAY: &str =
    "tests/envoy_resilience.rs::outlier_detection_gateway_failures_and_unenforced_local_origin";
pub(super) const UP_OUTLIER_ANALYSES: &str =
    "tests/envoy_resilience.rs::outlier_detection_success_rate_and_failure_percentage_thresholds";
pub(super) const UP_BREAKER_PRIORITY: &str =
    "tests/envoy_resilience.rs::circuit_breaker_thresholds_by_priority_and_retry_budget_percent";
pub(super) const UP_CONNECT_TIMEOUT: &str =
    "tests/envoy_resilience.rs::connect_timeout_and_unweighted_localities";
pub(super) const UP_NETWORK_ROUTING: &str = "tests/envoy_network_limits.rs::filter_chains_by_source_weighted_tcp_clusters_connect_attempts_and_shared_buckets";
pub(super) const UP_CHOICE_COUNT: &str =
    "proxy/src/upstream/balancer.rs::choice_count_from_the_config_sets_the_draws";
// proofs-hcm proofs
pub(super) const HCM_OPTIONS: &str =
    "tests/envoy_hcm_limits.rs::envoy_and_outrigger_apply_the_connection_manager_options_alike";
pub(super) const HCM_XFCC: &str =
    "tests/envoy_hcm_limits.rs::envoy_and_outrigger_forward_the_same_client_certificate_details";
pub(super) const XFCC_CERT_CHAIN: &str =
    "proxy/src/http/client_cert.rs::cert_and_chain_carry_the_presented_certificates";
pub(super) const CODEC_GUARD: &str =
    "proxy/src/http/codec_guard.rs::each_codec_serves_only_its_protocol";
pub(super) const RL_PER_CONNECTION: &str =
    "tests/envoy_resilience.rs::local_rate_limit_per_connection_with_response_headers";
pub(super) const RL_STAGES: &str =
    "tests/envoy_resilience.rs::local_rate_limit_stages_disable_key_and_actions";
// Cluster protocol options and DNS refresh
pub(super) const CLUSTER_PROTOCOLS: &str =
    "tests/proxy_http.rs::cluster_protocol_options_choose_the_protocol_and_close_idle_connections";
pub(super) const DNS_REFRESH: &str =
    "tests/envoy_resilience.rs::dns_refresh_rate_sets_how_often_a_dns_cluster_resolves";
// xDS client proofs
pub(super) const XDS_SOTW: &str =
    "tests/xds_client.rs::outrigger_follows_an_independent_sotw_control_plane";
pub(super) const XDS_DELTA: &str =
    "tests/xds_client.rs::outrigger_follows_an_independent_delta_control_plane";
pub(super) const XDS_NODE_FIRST: &str =
    "control-api/tests/ads_client.rs::nacks_name_the_resource_and_keep_the_last_good_version";
pub(super) const XDS_EDS_FOLLOWS: &str = "control-api/tests/ads_client.rs::endpoints_follow_the_clusters_and_a_restarted_server_gets_the_next_version";
pub(super) const XDS_FETCH_TIMEOUT: &str =
    "control-api/src/ads_client/tests.rs::the_initial_fetch_times_out_without_a_server";
pub(super) const LIVE_RDS: &str =
    "tests/live_update.rs::an_rds_route_configuration_reaches_open_connections";
pub(super) const XDS_OPTIONS: &str =
    "control-api/src/ads_client/server/tests.rs::options_come_from_the_bootstrap";
// proxyless proofs
pub(super) const PROXYLESS_GRPCIO: &str =
    "tests/proxyless_grpc.rs::grpcio_follows_an_api_listener_from_the_control_plane";
pub(super) const PROXYLESS_GRPC_JS: &str =
    "tests/proxyless_grpc.rs::grpc_js_follows_an_api_listener_from_the_control_plane";
pub(super) const PROXYLESS_CHECKS: &str = "config/src/resource/documents.rs::a_listener_for_proxyless_clients_is_served_and_checked_as_they_read_it";
// SDS proofs
pub(super) const SDS_ADS: &str = "tests/sds.rs::secrets_over_ads_warm_serve_mtls_and_rotate";
pub(super) const SDS_STATIC: &str =
    "tests/sds.rs::static_secrets_serve_mtls_rotate_and_match_envoy";
pub(super) const SDS_ISSUED: &str =
    "tests/sds.rs::the_control_plane_issues_workload_certificates_to_outrigger_and_envoy";
pub(super) const SDS_LOADER: &str =
    "config/src/convert/tls/secret.rs::secret_references_are_checked_like_envoy";
// xds-tls proofs
pub(super) const XDS_MTLS: &str =
    "tests/xds_client.rs::outrigger_follows_a_control_plane_over_mtls";
pub(super) const CP_MTLS: &str =
    "tests/control_plane.rs::envoy_and_outrigger_take_the_control_plane_over_mtls";
pub(super) const SDS_GRPC: &str =
    "tests/sds.rs::secrets_from_an_sds_grpc_source_warm_serve_and_rotate";
pub(super) const SDS_GRPC_LOADER: &str =
    "config/src/convert/tls/secret.rs::sds_grpc_sources_and_keepalive_are_checked";
pub(super) const XDS_KEEPALIVE: &str =
    "control-api/src/ads_client/server/tests.rs::a_silent_control_plane_is_detected_by_keepalive";
pub(super) const SDS_GRPC_DYNAMIC: &str =
    "tests/sds.rs::a_dynamic_listener_takes_its_secrets_from_an_sds_grpc_source";
// warming proofs
pub(super) const XDS_WARMING: &str = "tests/xds_client.rs::warming_matches_envoy";
pub(super) const SDS_WARMING: &str =
    "tests/sds.rs::a_listener_warms_until_its_secrets_arrive_as_in_envoy";
// access-log proofs
pub(super) const AL_ENVOY: &str = "tests/access_log.rs::access_log_lines_match_envoy";
pub(super) const AL_FILTERS: &str = "proxy/src/access_log/filter.rs::filters_decide_like_envoy";
pub(super) const AL_LOADER: &str =
    "config/src/convert/access_log/tests.rs::formats_and_filters_are_read_like_envoy";
pub(super) const AL_STREAMS: &str = "tests/access_log.rs::stdout_and_stderr_loggers_write_lines";

// bounded-pools proofs
pub(super) const BP_CLEANUP_INTERVAL: &str = "proxy/src/upstream/pool_tests.rs::original_dst_forgets_a_destination_idle_for_cleanup_interval";
// envoy-defects proofs
pub(super) const FAULT_DIFF: &str = "tests/envoy_resilience.rs::fault_delays_and_aborts_like_envoy";
pub(super) const FAULT_DELAY: &str =
    "proxy/src/http/fault/tests.rs::a_fixed_delay_holds_the_request_then_passes_it_on";
pub(super) const FAULT_MAX_ACTIVE: &str =
    "proxy/src/http/fault/tests.rs::past_max_active_faults_a_request_gets_none";
pub(super) const FAULT_HEADERS: &str =
    "proxy/src/http/fault/tests.rs::headers_choose_the_delay_and_status_within_the_percentage";

// limits proofs
pub(super) const LIM_CONNECTION_LIMIT: &str =
    "tests/envoy_network_limits.rs::connection_limits_close_what_envoy_closes";
pub(super) const LIM_LOADER: &str =
    "config/src/convert/tests.rs::connection_limits_are_read_like_envoy";
pub(super) const LIM_HOSTILE: &str =
    "tests/envoy_hcm_limits.rs::envoy_and_outrigger_answer_hostile_and_limited_requests_alike";

// auth proofs
pub(super) const ENVOY_HTTP_RBAC: &str =
    "tests/envoy_auth_filters.rs::http_rbac_allows_and_denies_like_envoy";
pub(super) const ENVOY_EXT_AUTHZ_HTTP: &str =
    "tests/envoy_auth_filters.rs::ext_authz_http_service_like_envoy";

// istio proofs
pub(super) const AL_LISTENER: &str = "tests/access_log.rs::listener_access_log_lines_match_envoy";

// tracing proofs
pub(super) const TR_TAGS: &str =
    "tests/tracing.rs::spans_are_named_tagged_and_parented_like_envoys";
pub(super) const TR_W3C: &str = "tests/tracing.rs::one_w3c_trace_across_envoy_and_outrigger";
pub(super) const TR_B3: &str = "tests/tracing.rs::one_b3_trace_across_envoy_and_outrigger";
pub(super) const TR_SAMPLING: &str = "tests/tracing.rs::sampling_at_zero_traces_what_envoy_traces";
pub(super) const TR_HTTP: &str =
    "tests/tracing.rs::otlp_over_http_with_the_environment_resource_detector";
pub(super) const TR_DECISION: &str =
    "proxy/src/trace/decision.rs::the_reason_is_packed_into_the_request_id_like_envoy";
pub(super) const TR_ZIPKIN: &str =
    "proxy/src/trace/tests.rs::zipkin_settings_shape_the_propagated_context";
pub(super) const TR_LOADER: &str =
    "config/src/convert/tracing/tests.rs::tracing_blocks_are_read_like_envoy";

// clusters proofs
pub(super) const HC_DIFF: &str =
    "tests/envoy_clusters.rs::http_health_checks_follow_thresholds_like_envoy";
pub(super) const HC_TCP_GRPC: &str =
    "tests/envoy_clusters.rs::tcp_and_grpc_health_checks_like_envoy";
pub(super) const HC_LOADER: &str =
    "config/src/convert/health_check.rs::health_check_settings_reach_the_model";
pub(super) const HC_INTERVALS: &str =
    "proxy/src/upstream/health_check.rs::intervals_follow_health_and_traffic";
pub(super) const HC_JITTER: &str =
    "proxy/src/upstream/health_check.rs::jitter_stays_within_its_bounds";
pub(super) const HC_THRESHOLDS: &str =
    "proxy/src/upstream/health_check.rs::thresholds_and_the_first_check";
pub(super) const HC_TCP_MATCH: &str =
    "proxy/src/upstream/health_check/probe.rs::tcp_payloads_match_in_order";
pub(super) const HASH_DIFF: &str =
    "tests/envoy_clusters.rs::consistent_hashing_picks_the_hosts_envoy_picks";
pub(super) const HASH_INPUTS: &str = "proxy/src/http/hash_policy.rs::inputs_and_their_combination";
pub(super) const HASH_RING: &str =
    "proxy/src/upstream/hash_balancer.rs::ring_is_consistent_and_spreads_keys";
pub(super) const HASH_MAGLEV: &str = "proxy/src/upstream/hash_balancer.rs::maglev_fills_its_table_evenly_and_moves_only_the_removed_hosts_keys_mostly";
pub(super) const LB_TYPED_LOADER: &str =
    "config/src/convert/load_balancing.rs::typed_policies_map_to_the_balancers";

// filters proofs
pub(super) const FILTERS_COMPRESSOR: &str = "tests/envoy_http_filters.rs::compressor_like_envoy";
pub(super) const FILTERS_COMPRESSOR_RESPONSE: &str =
    "tests/envoy_http_filters.rs::compressor_response_direction_like_envoy";
pub(super) const FILTERS_ENCODER: &str =
    "proxy/src/http/compressor/tests.rs::gzip_level_and_brotli_quality_reach_the_encoder";
pub(super) const FILTERS_HEALTH_CHECK: &str =
    "tests/envoy_http_filters.rs::health_check_like_envoy";
pub(super) const FILTERS_BUFFER: &str = "tests/envoy_http_filters.rs::buffer_like_envoy";
pub(super) const FILTERS_COMPRESSOR_ROUTE: &str =
    "tests/envoy_http_filters.rs::compressor_per_route_like_envoy";

// s8-mirror proofs
pub(super) const MIRROR_DIFF: &str = "tests/envoy_clusters.rs::request_mirroring_like_envoy";
pub(super) const MIRROR_LOADER: &str =
    "config/src/convert/route/tests.rs::mirror_policies_read_and_refused_like_envoy";
pub(super) const MIRROR_BOUND: &str =
    "proxy/src/http/mirror.rs::a_mirror_that_falls_behind_is_reset_and_the_main_body_flows";
pub(super) const LOCALITY_DIFF: &str = "tests/envoy_clusters.rs::locality_weights_split_like_envoy";
pub(super) const LOCALITY_WEIGHTS: &str =
    "proxy/src/upstream/locality.rs::weights_scaled_by_health_with_overprovisioning";
pub(super) const LOCALITY_UNWEIGHTED: &str =
    "proxy/src/upstream/locality.rs::a_locality_without_weight_gets_nothing_unless_none_has_any";
pub(super) const LOCALITY_LOADER: &str =
    "config/src/convert/tests.rs::locality_weighted_lb_config_reaches_the_model";
pub(super) const PRIORITY_FACTOR: &str =
    "proxy/src/upstream/priority.rs::the_overprovisioning_factor_sets_when_load_spills";

// s8-cors proofs
pub(super) const CORS_DIFF: &str = "tests/envoy_http_filters.rs::cors_like_envoy";
pub(super) const CORS_LEGACY: &str =
    "tests/envoy_http_filters.rs::cors_deprecated_route_fields_like_envoy";
pub(super) const CORS_ORIGINS: &str =
    "proxy/src/http/cors/tests.rs::origins_match_as_envoy_matches_them";

// s8-extauthz proofs
pub(super) const ENVOY_EXT_AUTHZ_GRPC: &str =
    "tests/envoy_auth_filters.rs::ext_authz_grpc_service_like_envoy";
pub(super) const ENVOY_EXT_AUTHZ_GRPC_BODY: &str =
    "tests/envoy_auth_filters.rs::ext_authz_grpc_request_body_like_envoy";

// s8-decomp proofs
pub(super) const DECOMP: &str =
    "tests/envoy_http_filters/decompression.rs::decompressor_like_envoy";
pub(super) const DECOMP_OPTIONS: &str =
    "tests/envoy_http_filters/decompression.rs::decompressor_options_like_envoy";
pub(super) const DECOMP_ZSTD: &str = "tests/envoy_http_filters/decompression.rs::zstd_like_envoy";
pub(super) const DECOMP_ZSTD_ENCODER: &str =
    "proxy/src/http/compressor/tests.rs::zstd_level_checksum_and_strategy_reach_the_encoder";
pub(super) const DECOMP_LIBRARY: &str =
    "proxy/src/http/decompressor/tests.rs::chunk_size_and_inflate_ratio_bound_the_output";
pub(super) const DECOMP_BRIDGE: &str =
    "tests/envoy_http_filters/decompression.rs::grpc_http1_bridge_like_envoy";
pub(super) const DECOMP_USER_AGENT: &str =
    "tests/envoy_http_filters/decompression.rs::add_user_agent_like_envoy";

// s8-csrf proofs
pub(super) const CSRF_DIFF: &str = "tests/envoy_http_filters.rs::csrf_like_envoy";
pub(super) const CSRF_ORIGINS: &str =
    "proxy/src/http/csrf/tests.rs::origins_are_read_as_envoy_reads_them";

// s8-rbacmatcher proofs
pub(super) const ENVOY_RBAC_MATCHER: &str =
    "tests/envoy_auth_filters.rs::http_rbac_matcher_like_envoy";
pub(super) const RBAC_MATCHER_INPUTS: &str = "proxy/src/http/rbac_matcher.rs::inputs_and_ip_ranges";
pub(super) const RBAC_MATCHER_TREES: &str =
    "proxy/src/http/rbac_matcher.rs::trees_nested_matchers_and_unavailable_inputs";

// s8-spans proofs
pub(super) const TR_ATTEMPT_SPANS: &str =
    "tests/tracing.rs::each_upstream_attempt_has_its_span_like_envoys";
pub(super) const TR_DECORATOR: &str = "tests/tracing.rs::route_decorators_act_like_envoys";
pub(super) const TR_DECORATOR_LOADER: &str =
    "config/src/convert/tracing/tests.rs::route_decorator_is_read_and_an_empty_operation_refused";

// s9-cache proofs
pub(super) const CACHE_DIFF: &str = "tests/envoy_http_filters/cache.rs::cache_like_envoy";
pub(super) const CACHE_VARY: &str =
    "proxy/src/http/cache/tests.rs::variants_are_stored_per_allowed_request_header";

// s9-datadog proofs
pub(super) const DD_DIFF: &str = "tests/tracing/datadog.rs::datadog_tracer_like_envoy";
pub(super) const DD_LOADER: &str =
    "config/src/convert/tracing/tests.rs::datadog_config_is_read_and_remote_config_refused";

// s9-udp proofs
pub(super) const UDP_DIFF: &str = "tests/udp_proxy.rs::datagrams_sessions_and_stats_like_envoy";
pub(super) const UDP_IDLE: &str = "tests/udp_proxy.rs::idle_sessions_end_and_drain_like_envoy";
pub(super) const UDP_CONVERT: &str =
    "config/src/convert/udp_proxy/tests.rs::udp_listener_and_proxy_are_read_as_envoy_reads_them";
pub(super) const UDP_REFUSED: &str =
    "config/src/convert/udp_proxy/tests.rs::what_is_not_run_like_envoy_is_refused_by_name";

// s9-skywalking proofs
pub(super) const TR_CHILD_SPAN: &str = "tests/tracing.rs::start_child_span_spans_match_envoy";
pub(super) const TR_SKY: &str = "tests/tracing.rs::skywalking_segments_and_sw8_match_envoys";
pub(super) const TR_SKY_CACHE: &str =
    "tests/tracing.rs::skywalking_segments_wait_in_a_bounded_cache_for_the_collector";
pub(super) const TR_SKY_LOADER: &str =
    "config/src/convert/tracing/tests.rs::skywalking_and_start_child_span_are_read_like_envoy";
pub(super) const TR_SW8: &str = "proxy/src/trace/sw8.rs::sw8_is_read_and_written_like_envoys";

// s9-lrs proofs
pub(super) const LRS_DIFF: &str = "tests/load_reporting.rs::load_reports_like_envoy";
pub(super) const LRS_LOADER: &str =
    "config/src/convert/tests.rs::load_stats_config_is_read_and_what_it_cannot_run_refused";
