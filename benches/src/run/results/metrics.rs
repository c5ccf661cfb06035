//! What is measured, scenario by scenario, and the tables they are shown in.

/// What is measured, and how it is shown.
#[derive(Debug)]
pub struct Metric {
    pub scenario: &'static str,
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub decimals: usize,
}

macro_rules! metric {
    ($name:ident, $scenario:literal, $key:literal, $label:literal, $unit:literal, $decimals:literal) => {
        pub const $name: Metric = Metric {
            scenario: $scenario,
            key: $key,
            label: $label,
            unit: $unit,
            decimals: $decimals,
        };
    };
}

metric!(
    H1_RPS,
    "a",
    "h1_rps",
    "(a) HTTP/1.1 keep-alive, 32 conns, 1 KiB: throughput",
    "req/s",
    0
);
metric!(
    H1_P50,
    "b",
    "h1_fixed_p50",
    "(b) HTTP/1.1 at 1000 req/s: p50",
    "ms",
    3
);
metric!(
    H1_P90,
    "b",
    "h1_fixed_p90",
    "(b) HTTP/1.1 at 1000 req/s: p90",
    "ms",
    3
);
metric!(
    H1_P99,
    "b",
    "h1_fixed_p99",
    "(b) HTTP/1.1 at 1000 req/s: p99",
    "ms",
    3
);
metric!(
    H1_P999,
    "b",
    "h1_fixed_p999",
    "(b) HTTP/1.1 at 1000 req/s: p99.9",
    "ms",
    3
);
metric!(
    H2_RPS,
    "d",
    "h2c_rps",
    "(d) h2c, 4 conns x 8 streams: throughput",
    "req/s",
    0
);
metric!(
    GRPC_RPS,
    "d",
    "grpc_rps",
    "(d) gRPC unary, 4 conns x 8 streams: throughput",
    "req/s",
    0
);
metric!(
    TCP_MIBS,
    "e",
    "tcp_mib_s",
    "(e) opaque TCP echo, 8 conns: throughput",
    "MiB/s",
    0
);
metric!(
    CPU_PER_1K,
    "f",
    "cpu_s_per_1000_req",
    "(f) CPU time per 1000 requests (during a)",
    "s",
    4
);
metric!(
    PEAK_RSS,
    "f",
    "peak_rss",
    "(f) peak RSS (VmHWM after a)",
    "MiB",
    1
);
metric!(
    IDLE_RSS,
    "f",
    "idle_rss",
    "(f) idle RSS after ready",
    "MiB",
    1
);
metric!(
    START,
    "f",
    "start_to_ready",
    "(f) start to first proxied 200",
    "ms",
    1
);
metric!(
    RESILIENT_RPS,
    "g",
    "h1_resilient_rps",
    "(g) = (a) + retries, circuit breakers, outlier detection, local rate limit: throughput",
    "req/s",
    0
);
metric!(
    RESILIENT_OVER_PLAIN,
    "g",
    "h1_resilient_over_plain",
    "(g)/(a) throughput, each (g) run over the (a) run just before it",
    "ratio",
    3
);
metric!(
    PAIRED_H1_RPS,
    "g",
    "h1_paired_rps",
    "(a) again, right before each (g) and (i) run: throughput",
    "req/s",
    0
);
metric!(
    PAIRED_CPU_PER_1K,
    "g",
    "paired_cpu_s_per_1000_req",
    "(a) again, right before each (g) and (i) run: CPU time per 1000 requests",
    "s",
    4
);
metric!(
    RESILIENT_CPU_PER_1K,
    "g",
    "resilient_cpu_s_per_1000_req",
    "(g) CPU time per 1000 requests (during g)",
    "s",
    4
);
metric!(
    MESH_P50,
    "c",
    "mesh_p50",
    "(c) two sidecars, mTLS, 1000 req/s: p50",
    "ms",
    3
);
metric!(
    MESH_P99,
    "c",
    "mesh_p99",
    "(c) two sidecars, mTLS, 1000 req/s: p99",
    "ms",
    3
);
metric!(
    MESH_P999,
    "c",
    "mesh_p999",
    "(c) two sidecars, mTLS, 1000 req/s: p99.9",
    "ms",
    3
);
metric!(
    MESH_ADDED_P50,
    "c",
    "mesh_added_p50",
    "(c) added over direct: p50",
    "ms",
    3
);
metric!(
    MESH_ADDED_P99,
    "c",
    "mesh_added_p99",
    "(c) added over direct: p99",
    "ms",
    3
);

metric!(
    XDS_ACK,
    "h",
    "xds_push_to_ack_s",
    "(h) push of 5,000 EDS clusters and routes: time to ACK",
    "s",
    2
);
metric!(
    XDS_RSS,
    "h",
    "xds_rss_mib",
    "(h) RSS with the 5,000 clusters applied",
    "MiB",
    1
);
metric!(
    XDS_P99,
    "h",
    "xds_load_p99",
    "(h) 1000 req/s through the push: p99",
    "ms",
    3
);
metric!(
    XDS_FAILED,
    "h",
    "xds_load_failed",
    "(h) 1000 req/s through the push: failed requests",
    "requests",
    0
);

metric!(
    TRACED_1_RPS,
    "i",
    "h1_traced_1_rps",
    "(i) = (a) + tracing at 1 % + a file access log: throughput",
    "req/s",
    0
);
metric!(
    TRACED_1_OVER_PLAIN,
    "i",
    "h1_traced_1_over_plain",
    "(i) 1 %/(a) throughput, each over the (a) run just before it",
    "ratio",
    3
);
metric!(
    TRACED_100_RPS,
    "i",
    "h1_traced_100_rps",
    "(i) at 100 % sampling: throughput",
    "req/s",
    0
);
metric!(
    TRACED_100_OVER_PLAIN,
    "i",
    "h1_traced_100_over_plain",
    "(i) 100 %/(a) throughput, each over the (a) run just before it",
    "ratio",
    3
);
metric!(
    TRACED_CPU_PER_1K,
    "i",
    "traced_cpu_s_per_1000_req",
    "(i) CPU time per 1000 requests (1 % and 100 % runs)",
    "s",
    4
);

/// The table of scenarios (a), (b), (d), (e), (f), in order, with (g) and (i) beside the figures of (a) it compares with.
pub const MAIN: [&Metric; 22] = [
    &H1_RPS,
    &RESILIENT_RPS,
    &PAIRED_H1_RPS,
    &RESILIENT_OVER_PLAIN,
    &TRACED_1_RPS,
    &TRACED_1_OVER_PLAIN,
    &TRACED_100_RPS,
    &TRACED_100_OVER_PLAIN,
    &H1_P50,
    &H1_P90,
    &H1_P99,
    &H1_P999,
    &H2_RPS,
    &GRPC_RPS,
    &TCP_MIBS,
    &CPU_PER_1K,
    &RESILIENT_CPU_PER_1K,
    &TRACED_CPU_PER_1K,
    &PAIRED_CPU_PER_1K,
    &PEAK_RSS,
    &IDLE_RSS,
    &START,
];
pub const XDS: [&Metric; 4] = [&XDS_ACK, &XDS_RSS, &XDS_P99, &XDS_FAILED];
pub const MESH: [&Metric; 5] = [
    &MESH_P50,
    &MESH_P99,
    &MESH_P999,
    &MESH_ADDED_P50,
    &MESH_ADDED_P99,
];

metric!(
    IDLE_P99_ALONE,
    "j",
    "idle_p99_alone",
    "(j) HTTP/1.1 at 1000 req/s: p99 alone",
    "ms",
    3
);
metric!(
    IDLE_P99_BESIDE,
    "j",
    "idle_p99_beside",
    "(j) the same beside 10,000 idle connections: p99",
    "ms",
    3
);
metric!(
    IDLE_P99_RATIO,
    "j",
    "idle_p99_ratio",
    "(j) p99 beside the idle connections over p99 alone",
    "x",
    2
);
metric!(
    IDLE_RSS_PER_CONNECTION,
    "j",
    "idle_rss_per_connection",
    "(j) RSS per idle connection",
    "KiB",
    1
);

/// Scenario (j): a normal load beside 10,000 idle keep-alive connections (issue 14).
pub const IDLE: [&Metric; 4] = [
    &IDLE_P99_ALONE,
    &IDLE_P99_BESIDE,
    &IDLE_P99_RATIO,
    &IDLE_RSS_PER_CONNECTION,
];
