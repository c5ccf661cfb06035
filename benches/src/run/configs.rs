//! The proxies' configurations, equal in what matters: one worker, no access log, keep-alive to the backend,
//! connect timeout 1 s, request (route) timeout 15 s, idle timeouts 60 s. Outrigger and Envoy read the very same
//! Envoy v3 file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where a proxy listens.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// HTTP/1.1 to the client, HTTP/1.1 to the backend.
    pub h1: u16,
    /// h2c (prior knowledge) and gRPC to the client, h2c to the backend where the proxy can.
    pub h2: u16,
    /// Opaque TCP.
    pub tcp: u16,
    /// Scenario (g): HTTP/1.1 as on `h1`, through a route with a retry policy, a cluster with circuit breakers and
    /// outlier detection, and a local rate limit filter, none of which ever triggers.
    pub resilient: u16,
    /// Scenario (i): HTTP/1.1 as on `h1`, with tracing at 1 % (OTLP/HTTP to the backend) and a file access log.
    pub traced_1: u16,
    /// (i) at 100 % sampling.
    pub traced_100: u16,
    pub admin: u16,
}

impl Ports {
    pub fn at(base: u16) -> Self {
        Self {
            h1: base,
            h2: base + 1,
            tcp: base + 2,
            resilient: base + 3,
            traced_1: base + 4,
            traced_100: base + 5,
            admin: base + 90,
        }
    }
}

/// The backend's two ports.
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    pub http: SocketAddr,
    pub tcp: SocketAddr,
}

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const PROTOCOL_OPTIONS: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn admin(port: u16) -> String {
    format!("admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n")
}

/// An HTTP connection manager (HTTP/1.1 and h2c by detection) routing everything to `cluster`.
fn hcm_filter(name: &str, cluster: &str, indent: &str) -> String {
    hcm(name, cluster, "", "", indent)
}

/// [`hcm_filter`] with `route_extra` added to the route action (`, key: value` in flow style) and `filters` (YAML
/// list items at the `http_filters` level) before the router.
fn hcm(name: &str, cluster: &str, route_extra: &str, filters: &str, indent: &str) -> String {
    let body = format!(
        r#"- name: envoy.filters.network.http_connection_manager
  typed_config:
    "@type": {HCM}
    stat_prefix: {name}
    codec_type: AUTO
    common_http_protocol_options: {{idle_timeout: 60s}}
    route_config:
      name: {name}
      virtual_hosts:
      - name: backend
        domains: ["*"]
        routes:
        - match: {{prefix: "/"}}
          route: {{cluster: {cluster}, timeout: 15s{route_extra}}}
    http_filters:
{filters}    - name: envoy.filters.http.router
      typed_config: {{"@type": {ROUTER}}}
"#
    );
    indented(&body, indent)
}

/// Scenario (g)'s route: retries on 5xx, two at most.
const RETRY_POLICY: &str = ", retry_policy: {retry_on: 5xx, num_retries: 2}";

/// Scenario (g)'s local rate limit, enabled and enforced for every request, with a bucket that cannot run dry at
/// the rates a benchmark reaches (10^8 tokens, refilled every second).
const LOCAL_RATE_LIMIT: &str = r#"    - name: envoy.filters.http.local_ratelimit
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
        stat_prefix: bench_resilient_rate_limit
        token_bucket: {max_tokens: 100000000, tokens_per_fill: 100000000, fill_interval: 1s}
        filter_enabled:
          runtime_key: bench_rate_limit_enabled
          default_value: {numerator: 100, denominator: HUNDRED}
        filter_enforced:
          runtime_key: bench_rate_limit_enforced
          default_value: {numerator: 100, denominator: HUNDRED}
"#;

/// Scenario (g)'s cluster extras: circuit breakers far above what the run needs, and outlier detection on five
/// consecutive 5xx (the backend never answers one).
const RESILIENT_CLUSTER: &str = r#"    circuit_breakers:
      thresholds:
      - priority: DEFAULT
        max_connections: 100000
        max_pending_requests: 100000
        max_requests: 100000
        max_retries: 100000
    outlier_detection:
      consecutive_5xx: 5
      interval: 10s
      max_ejection_percent: 100
"#;

/// Scenario (i)'s connection manager: (a)'s, plus `tracing` at `percent` (OpenTelemetry over OTLP/HTTP to the
/// backend, which answers 200 to the export) and a file access log in Envoy's default format.
fn traced_hcm(name: &str, percent: u32, collector: SocketAddr, access_log: &Path) -> String {
    let plain = hcm_filter(name, "backend_h1", "");
    let extra = format!(
        r#"    tracing:
      random_sampling: {{value: {percent}}}
      provider:
        name: envoy.tracers.opentelemetry
        typed_config:
          "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
          service_name: {name}
          http_service: {{http_uri: {{uri: "http://{collector}/v1/traces", cluster: trace_collector, timeout: 5s}}}}
    access_log:
    - name: envoy.access_loggers.file
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
        path: {}
"#,
        access_log.display()
    );
    let with_extra = plain.replacen(
        "    codec_type: AUTO\n",
        &format!("    codec_type: AUTO\n{extra}"),
        1,
    );
    indented(&with_extra, "      ")
}

fn indented(text: &str, indent: &str) -> String {
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn listener(name: &str, port: u16, filters: &str) -> String {
    format!(
        "  - name: {name}\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n    filter_chains:\n    - filters:\n{filters}"
    )
}

/// A STATIC cluster of one endpoint; `http` is `None` (TCP), `Some(false)` (HTTP/1.1) or `Some(true)` (h2c).
fn cluster(name: &str, endpoint: SocketAddr, http: Option<bool>, extra: &str) -> String {
    let protocol = match http {
        None => String::new(),
        Some(h2) => {
            let explicit = if h2 {
                "http2_protocol_options: {}"
            } else {
                "http_protocol_options: {}"
            };
            format!(
                "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": {PROTOCOL_OPTIONS}\n        common_http_protocol_options: {{idle_timeout: 60s}}\n        explicit_http_config: {{{explicit}}}\n"
            )
        }
    };
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{protocol}{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}\n",
        endpoint.ip(),
        endpoint.port()
    )
}

/// The side-by-side configuration for Outrigger and Envoy: listeners for (a)/(b), (d), (e), (g) and (i);
/// (i)'s access logs go to `work`.
pub fn envoy(ports: Ports, backend: Backend, work: &Path) -> String {
    let tcp_proxy = "      - name: envoy.filters.network.tcp_proxy\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: bench_tcp\n          cluster: backend_tcp\n          idle_timeout: 60s\n";
    let mut out = admin(ports.admin);
    out.push_str("static_resources:\n  listeners:\n");
    out.push_str(&listener(
        "bench_h1",
        ports.h1,
        &hcm_filter("bench_h1", "backend_h1", "      "),
    ));
    out.push_str(&listener(
        "bench_h2",
        ports.h2,
        &hcm_filter("bench_h2", "backend_h2", "      "),
    ));
    out.push_str(&listener("bench_tcp", ports.tcp, tcp_proxy));
    out.push_str(&listener(
        "bench_resilient",
        ports.resilient,
        &hcm(
            "bench_resilient",
            "backend_h1_resilient",
            RETRY_POLICY,
            LOCAL_RATE_LIMIT,
            "      ",
        ),
    ));
    for (name, port, percent) in [
        ("bench_traced_1", ports.traced_1, 1),
        ("bench_traced_100", ports.traced_100, 100),
    ] {
        let log = work.join(format!("{name}-{}.log", ports.h1));
        out.push_str(&listener(
            name,
            port,
            &traced_hcm(name, percent, backend.http, &log),
        ));
    }
    out.push_str("  clusters:\n");
    out.push_str(&cluster("backend_h1", backend.http, Some(false), ""));
    out.push_str(&cluster("trace_collector", backend.http, Some(false), ""));
    out.push_str(&cluster("backend_h2", backend.http, Some(true), ""));
    out.push_str(&cluster("backend_tcp", backend.tcp, None, ""));
    out.push_str(&cluster(
        "backend_h1_resilient",
        backend.http,
        Some(false),
        RESILIENT_CLUSTER,
    ));
    out
}

pub fn haproxy(ports: Ports, backend: Backend) -> String {
    format!(
        r#"# Written by benches/run. One thread, no log, the same timeouts as the other proxies.
global
    nbthread 1
    maxconn 4000

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 15s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always

frontend bench_h1
    bind 127.0.0.1:{h1}
    default_backend backend_h1

frontend bench_h2
    bind 127.0.0.1:{h2} proto h2
    default_backend backend_h2

backend backend_h1
    server backend {http}

backend backend_h2
    server backend {http} proto h2

listen bench_tcp
    mode tcp
    bind 127.0.0.1:{tcp}
    timeout client 60s
    timeout server 60s
    server backend {backend_tcp}
"#,
        h1 = ports.h1,
        h2 = ports.h2,
        tcp = ports.tcp,
        http = backend.http,
        backend_tcp = backend.tcp,
    )
}

/// nginx as one process (`master_process off`), so the PID measured is the one serving. Its `proxy_pass` speaks
/// HTTP/1.1 to the backend even for h2c clients; gRPC goes through `grpc_pass` (h2c).
pub fn nginx(ports: Ports, backend: Backend, work: &Path, stream_module: Option<&Path>) -> String {
    let temp = work.join("nginx-temp");
    let temp = temp.display();
    let load_stream = stream_module
        .map(|m| format!("load_module {};\n", m.display()))
        .unwrap_or_default();
    let stream = if stream_module.is_some() {
        format!(
            "stream {{\n    server {{\n        listen 127.0.0.1:{tcp};\n        proxy_pass {backend_tcp};\n        proxy_connect_timeout 1s;\n        proxy_timeout 60s;\n    }}\n}}\n",
            tcp = ports.tcp,
            backend_tcp = backend.tcp
        )
    } else {
        String::new()
    };
    format!(
        r#"# Written by benches/run. One process, no access log, the same timeouts as the other proxies.
{load_stream}daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log stderr error;
events {{
    worker_connections 10000;
}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    upstream backend_http {{
        server {http};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{h1};
        location / {{
            proxy_pass http://backend_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_send_timeout 15s;
            proxy_read_timeout 15s;
        }}
    }}
    server {{
        listen 127.0.0.1:{h2} http2;
        location / {{
            proxy_pass http://backend_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_send_timeout 15s;
            proxy_read_timeout 15s;
        }}
        location /bench.Echo/ {{
            grpc_pass grpc://backend_http;
            grpc_connect_timeout 1s;
            grpc_send_timeout 15s;
            grpc_read_timeout 15s;
        }}
    }}
}}
{stream}"#,
        pid = work.join("nginx.pid").display(),
        h1 = ports.h1,
        h2 = ports.h2,
        http = backend.http,
    )
}

/// A workload's certificate, key and trust bundle, as `outrigger ca issue` writes them.
#[derive(Clone, Debug)]
pub struct Identity {
    pub dir: PathBuf,
}

impl Identity {
    fn common_tls_context(&self, peer: &str, indent: &str) -> String {
        let d = self.dir.display();
        let text = format!(
            r#"common_tls_context:
  tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}}
  tls_certificates:
  - certificate_chain: {{filename: {d}/cert.pem}}
    private_key: {{filename: {d}/key.pem}}
  validation_context:
    trusted_ca: {{filename: {d}/ca.pem}}
    match_typed_subject_alt_names:
    - san_type: URI
      matcher: {{exact: "{peer}"}}
"#
        );
        indented(&text, indent)
    }
}

/// Sidecar A of the mesh path: plaintext HTTP/1.1 in on `listen`, mutual TLS out to sidecar B at `peer`, whose
/// SPIFFE ID must be `peer_id`.
pub fn mesh_client(
    listen: u16,
    admin_port: u16,
    peer: SocketAddr,
    me: &Identity,
    peer_id: &str,
) -> String {
    let tls = format!(
        "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n{}",
        me.common_tls_context(peer_id, "        ")
    );
    let mut out = admin(admin_port);
    out.push_str("static_resources:\n  listeners:\n");
    out.push_str(&listener(
        "mesh_outbound",
        listen,
        &hcm_filter("mesh_outbound", "sidecar_b", "      "),
    ));
    out.push_str("  clusters:\n");
    out.push_str(&cluster("sidecar_b", peer, Some(false), &tls));
    out
}

/// Sidecar B of the mesh path: mutual TLS in on `listen` (client certificate required, SPIFFE ID `peer_id`),
/// plaintext HTTP/1.1 to the backend.
pub fn mesh_server(
    listen: u16,
    admin_port: u16,
    backend: Backend,
    me: &Identity,
    peer_id: &str,
) -> String {
    let chain = format!(
        "    - transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n          require_client_certificate: true\n{}      filters:\n{}",
        me.common_tls_context(peer_id, "          "),
        hcm_filter("mesh_inbound", "backend_h1", "      ")
    );
    let mut out = admin(admin_port);
    out.push_str(&format!(
        "static_resources:\n  listeners:\n  - name: mesh_inbound\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}\n    filter_chains:\n{chain}"
    ));
    out.push_str("  clusters:\n");
    out.push_str(&cluster("backend_h1", backend.http, Some(false), ""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrigger_config::{Format, load_bytes};

    /// Outrigger takes the side-by-side file, (g)'s retries, circuit breakers, outlier detection and local rate
    /// limit included, with neither an error nor a warning: nothing in it is ignored.
    #[test]
    fn side_by_side_file_loads_without_warnings() {
        let backend = Backend {
            http: SocketAddr::from(([127, 0, 0, 1], 21000)),
            tcp: SocketAddr::from(([127, 0, 0, 1], 21001)),
        };
        let yaml = envoy(Ports::at(21100), backend, Path::new("/tmp"));
        match load_bytes(yaml.as_bytes(), Format::Yaml) {
            Ok(loaded) => {
                let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
                assert!(warnings.is_empty(), "{warnings:#?}\n{yaml}");
            }
            Err(d) => {
                let all: Vec<String> = d.iter().map(|e| e.to_string()).collect();
                panic!("{all:#?}\n{yaml}");
            }
        }
    }
}
