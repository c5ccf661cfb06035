//! Access logs in real Envoy 1.40 and in Outrigger, the same YAML and the same requests: a text format covering
//! the operators, one `json_format`, Envoy's default format, a filtered log and a `tcp_proxy` log. Success,
//! 404 `NR`, 503 `UF` (backend down), 504 `UT` (route timeout), 429 `RL` (local rate limit), a retried request
//! (`URX`, two attempts) and a TCP connection must give the same lines, operator by operator; only values that
//! cannot agree (times, durations, client ports) are masked. Also: `POST /reopen_logs` after a rename starts a
//! new file; stdout and stderr loggers; `--log-format json`. Listener-level logs (a TCP connection, a refused
//! upstream, no filter chain, RBAC) and `%UPSTREAM_LOCAL_ADDRESS%`/`%UPSTREAM_TRANSPORT_FAILURE_REASON%` in HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use support::backend::Backend;
use support::client::get;
use support::envoy::Envoy;
use support::sidecar::Sidecar;
use support::tcp::free_port;

/// The operators whose values must agree, then (after `|`) those only masked (times, durations, addresses).
const TEXT: &str = "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:AUTHORITY)% %REQ(X-REQUEST-ID)% \
%REQ(USER-AGENT):4% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_FLAGS_LONG% %RESPONSE_CODE_DETAILS% \
%BYTES_RECEIVED% %UPSTREAM_CLUSTER% %ROUTE_NAME% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_HOST% \
%RESP(X-TEST)% %TRAILER(GRPC-STATUS)% %DOWNSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %HOSTNAME% \
| %START_TIME(%Y)% %DURATION% %REQUEST_DURATION% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% \
%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%\n";

const CONFIG: &str = r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: {http}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/text.log
              log_format: {text_format_source: {inline_string: "{text}"}}
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/json.log
              log_format:
                json_format:
                  code: "%RESPONSE_CODE%"
                  flags: "%RESPONSE_FLAGS%"
                  attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
                  upstream: "%UPSTREAM_HOST%"
                  route: "%ROUTE_NAME%"
                  received: "%BYTES_RECEIVED%"
                  line: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%"
                  fixed: 7
                  nested: {proto: "%PROTOCOL%", cluster: "%UPSTREAM_CLUSTER%"}
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/default.log
          - name: errors-only
            filter:
              and_filter:
                filters:
                - status_code_filter: {comparison: {op: GE, value: {default_value: 500, runtime_key: al_status}}}
                - not_health_check_filter: {}
                - response_flag_filter: {flags: [UF, UT, URX]}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/errors.log
              log_format: {text_format_source: {inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {name: ok, match: {prefix: /ok}, route: {cluster: backend}}
              - {name: rewritten, match: {prefix: /old}, route: {cluster: backend, prefix_rewrite: /new}}
              - {name: down, match: {prefix: /down}, route: {cluster: down}}
              - {name: slow, match: {prefix: /slow}, route: {cluster: backend, timeout: 0.2s}}
              - name: retried
                match: {prefix: /status}
                route: {cluster: backend, retry_policy: {retry_on: 5xx, num_retries: 1, retry_back_off: {base_interval: 0.01s}}}
              response_headers_to_add: [{header: {key: x-test, value: added}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - name: limited
    address: {socket_address: {address: 127.0.0.1, port_value: {limited}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: limited
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/text.log
              log_format: {text_format_source: {inline_string: "{text}"}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{name: limited, match: {prefix: /}, route: {cluster: backend}}]
          http_filters:
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: limit
              token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s}
              filter_enabled: {default_value: {numerator: 100}, runtime_key: e}
              filter_enforced: {default_value: {numerator: 100}, runtime_key: f}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: {tcp}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: echo
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/tcp.log
              log_format: {text_format_source: {inline_string: "%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %REQ(:PATH)% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"}}
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {backend}}}}}]}]}
  - name: down
    connect_timeout: 1s
    load_assignment: {cluster_name: down, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {down}}}}}]}]}
  - name: echo
    connect_timeout: 1s
    load_assignment: {cluster_name: echo, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {echo}}}}}]}]}
"#;

struct Ports {
    admin: u16,
    http: u16,
    limited: u16,
    tcp: u16,
}

fn config(dir: &Path, ports: &Ports, backend: u16, down: u16, echo: u16) -> String {
    let text = TEXT.replace('\n', "\\n");
    CONFIG
        .replace("{admin}", &ports.admin.to_string())
        .replace("{http}", &ports.http.to_string())
        .replace("{limited}", &ports.limited.to_string())
        .replace("{tcp}", &ports.tcp.to_string())
        .replace("{backend}", &backend.to_string())
        .replace("{down}", &down.to_string())
        .replace("{echo}", &echo.to_string())
        .replace("{dir}", dir.to_str().unwrap())
        .replace("{text}", &text)
}

fn ports() -> Ports {
    Ports {
        admin: free_port(),
        http: free_port(),
        limited: free_port(),
        tcp: free_port(),
    }
}

/// The same requests, in order, with fixed request ids so `%REQ(X-REQUEST-ID)%` agrees.
async fn traffic(ports: &Ports) {
    let http = |path: &str| format!("http://127.0.0.1:{}{path}", ports.http);
    let cases: &[(&str, &str, u16)] = &[
        ("/ok", "id-ok", 200),
        ("/old/thing", "id-rewrite", 200),
        ("/nothing", "id-nr", 404),
        ("/down", "id-uf", 503),
        ("/slow/1000", "id-ut", 504),
        ("/status/503", "id-urx", 503),
    ];
    for (path, id, status) in cases {
        let headers = [
            ("x-request-id", *id),
            ("user-agent", "probe/1"),
            ("host", "svc.test"),
        ];
        let reply = get(&http(path), &headers).await;
        assert_eq!(reply.status, *status, "{path}");
    }
    let limited = format!("http://127.0.0.1:{}/first", ports.limited);
    assert_eq!(
        get(
            &limited,
            &[("x-request-id", "id-first"), ("host", "svc.test")]
        )
        .await
        .status,
        200
    );
    let limited = format!("http://127.0.0.1:{}/second", ports.limited);
    assert_eq!(
        get(&limited, &[("x-request-id", "id-rl"), ("host", "svc.test")])
            .await
            .status,
        429
    );
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"twelve bytes").unwrap();
    let mut echoed = [0u8; 12];
    tcp.read_exact(&mut echoed).unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    drop(tcp);
}

/// Times, durations and addresses masked (a number becomes `N`; `-` stays).
fn mask_text(line: &str) -> String {
    let Some((exact, varying)) = line.split_once(" | ") else {
        return line.to_string();
    };
    let masked: Vec<&str> = varying
        .split(' ')
        .map(|v| if v == "-" { "-" } else { "N" })
        .collect();
    format!("{exact} | {}", masked.join(" "))
}

/// Waits until `path` holds `lines` lines (the writers flush within a second, Envoy's within its interval).
fn read_lines(path: &Path, lines: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found: Vec<String> = text.lines().map(String::from).collect();
        if found.len() >= lines || started.elapsed() > Duration::from_secs(15) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_match_envoy() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let backend = Backend::start("b").await;
    let echo = support::tcp::echo().await;
    let down = free_port();
    let root = std::env::temp_dir().join(format!("outrigger-access-log-{}", std::process::id()));
    let (envoy_dir, our_dir) = (root.join("envoy"), root.join("outrigger"));
    std::fs::create_dir_all(&envoy_dir).unwrap();
    std::fs::create_dir_all(&our_dir).unwrap();

    let envoy_ports = ports();
    let envoy_config = envoy_dir.join("envoy.yaml");
    std::fs::write(
        &envoy_config,
        config(
            &envoy_dir,
            &envoy_ports,
            backend.address.port(),
            down,
            echo.address.port(),
        ),
    )
    .unwrap();
    let mut envoy = Envoy::start(&envoy, &envoy_config);
    envoy.wait_for_port(envoy_ports.http);
    let our_ports = ports();
    let ours = Sidecar::start(
        &our_dir,
        "outrigger",
        &config(
            &our_dir,
            &our_ports,
            backend.address.port(),
            down,
            echo.address.port(),
        ),
        our_ports.admin,
    );
    assert!(
        !ours.log_text().contains("access_log"),
        "no warning for access_log:\n{}",
        ours.log_text()
    );
    traffic(&envoy_ports).await;
    traffic(&our_ports).await;

    // Text: every operator of the format, line by line (the order of the two listeners' lines may differ).
    let theirs = read_lines(&envoy_dir.join("text.log"), 8);
    let mine = read_lines(&our_dir.join("text.log"), 8);
    assert_eq!(theirs.len(), 8, "{theirs:#?}");
    let theirs = sorted(theirs.iter().map(|l| mask_text(l)).collect());
    let mine = sorted(mine.iter().map(|l| mask_text(l)).collect());
    for (a, b) in theirs.iter().zip(&mine) {
        assert_eq!(b, a, "\noutrigger: {b}\n    envoy: {a}");
    }
    assert_eq!(mine.len(), theirs.len(), "{mine:#?}");

    // JSON: the same objects (numbers stay numbers, unset values are null).
    let json = |dir: &Path| -> Vec<serde_json::Value> {
        let mut objects: Vec<serde_json::Value> = read_lines(&dir.join("json.log"), 6)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        objects.sort_by_key(|o| o.to_string());
        objects
    };
    let (theirs, mine) = (json(&envoy_dir), json(&our_dir));
    assert_eq!(theirs.len(), 6);
    for (a, b) in theirs.iter().zip(&mine) {
        assert_eq!(b, a);
    }

    // The default format: everything but the start time, the duration and the upstream service time.
    let default = |dir: &Path| -> Vec<String> {
        sorted(
            read_lines(&dir.join("default.log"), 6)
                .iter()
                .map(|l| mask_default(l))
                .collect(),
        )
    };
    assert_eq!(default(&our_dir), default(&envoy_dir));

    // The filtered log: only 5xx with UF, UT or URX.
    let errors = |dir: &Path| sorted(read_lines(&dir.join("errors.log"), 3));
    let theirs = errors(&envoy_dir);
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert_eq!(errors(&our_dir), theirs);

    // TCP: one line per connection.
    let theirs = read_lines(&envoy_dir.join("tcp.log"), 1);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(read_lines(&our_dir.join("tcp.log"), 1), theirs);
    drop(envoy);
    drop(ours);
    let _ = std::fs::remove_dir_all(&root);
}

/// `[start] "GET /ok HTTP/1.1" 200 - 0 123 4 5 "-" ...`: the start time, `%DURATION%` and
/// `x-envoy-upstream-service-time` masked.
fn mask_default(line: &str) -> String {
    let after_time = line.split_once("] ").map_or(line, |(_, rest)| rest);
    let mut fields: Vec<String> = after_time.split(' ').map(String::from).collect();
    // "GET /ok HTTP/1.1" code flags received sent duration service-time ...
    for i in [7, 8] {
        if let Some(f) = fields.get_mut(i)
            && f != "-"
        {
            *f = "N".into();
        }
    }
    fields.join(" ")
}

/// One listener to the backend whose connection manager logs with `logs` (YAML, indented for the list).
fn single(admin: u16, port: u16, backend: u16, logs: &str) -> String {
    format!(
        r#"
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          access_log:
{logs}
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: backend
    load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}}}}}]}}]}}
"#
    )
}

/// `outrigger run` with `args`, stdout and stderr to files in `dir`; ready when this returns.
fn run(dir: &Path, config: &str, admin: u16, args: &[&str]) -> support::ChildGuard {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let child = support::outrigger()
        .args(["run", "--concurrency", "1"])
        .args(args)
        .arg("-c")
        .arg(&path)
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let guard = support::ChildGuard(child);
    let started = Instant::now();
    while support::sidecar::get(("127.0.0.1", admin), "/ready").map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready:\n{}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    guard
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("outrigger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_loggers_write_lines() {
    let backend = Backend::start("b").await;
    let dir = temp("access-log-streams");
    let (admin, port) = (free_port(), free_port());
    let logs = r#"          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "to-stdout %RESPONSE_CODE% %REQ(:PATH)%\n"}}
          - name: envoy.access_loggers.stderr
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
              log_format: {json_format: {where: stderr, code: "%RESPONSE_CODE%"}}"#;
    let config = single(admin, port, backend.address.port(), logs);
    let process = run(&dir, &config, admin, &[]);
    let reply = get(&format!("http://127.0.0.1:{port}/streamed"), &[]).await;
    assert_eq!(reply.status, 200);
    let stdout = read_lines(&dir.join("stdout"), 1);
    assert_eq!(stdout, ["to-stdout 200 /streamed"]);
    let started = Instant::now();
    let line = loop {
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
        if let Some(line) = stderr.lines().find(|l| l.contains("\"where\"")) {
            break line.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let object: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(object, serde_json::json!({"where": "stderr", "code": 200}));
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `POST /reopen_logs` after the file was renamed (log rotation): the next line goes to a new file at the path.
/// The process runs with `--log-format json`: every line of its own log is a JSON object with `level` and
/// `message`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_logs_and_json_process_logs() {
    let backend = Backend::start("b").await;
    let dir = temp("access-log-reopen");
    let (admin, port) = (free_port(), free_port());
    let path = dir.join("access.log");
    let logs = format!(
        r#"          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {}
              log_format: {{text_format_source: {{inline_string: "%REQ(:PATH)%\n"}}}}"#,
        path.display()
    );
    let config = single(admin, port, backend.address.port(), &logs);
    let process = run(
        &dir,
        &config,
        admin,
        &["--log-format", "json", "-l", "debug"],
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/before"), &[])
            .await
            .status,
        200
    );
    assert_eq!(read_lines(&path, 1), ["/before"]);
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let reply = support::client::post(&format!("http://127.0.0.1:{admin}/reopen_logs")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/after"), &[])
            .await
            .status,
        200
    );
    assert_eq!(read_lines(&path, 1), ["/after"]);
    assert_eq!(read_lines(&rotated, 1), ["/before"]);
    drop(process);

    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["message"].is_string(), "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
    }
    assert!(
        stderr.contains("\"message\":\"outrigger is ready\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The listener-level log's format: what a connection's line says (the listener's port, which differs, left out).
const LISTENER_TEXT: &str = "%RESPONSE_FLAGS% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% \
%UPSTREAM_CLUSTER% %CONNECTION_TERMINATION_DETAILS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON% \
%UPSTREAM_REQUEST_ATTEMPT_COUNT% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %UPSTREAM_LOCAL_ADDRESS%\\n";

/// Listeners with their own `access_log`: a TCP connection through `tcp_proxy`, one whose upstream refuses,
/// one no filter chain takes, one the network RBAC filter closes; and an HTTP log with the upstream's local
/// address and the transport failure reason. `{p0}`..`{p5}` are the listeners' and the admin's ports.
fn listener_config(dir: &Path, p: &[u16; 6], echo: u16, backend: u16, down: u16) -> String {
    let log = |name: &str, format: &str| {
        format!(
            r#"    access_log:
    - name: envoy.access_loggers.file
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
        path: {}/{name}.log
        log_format: {{text_format_source: {{inline_string: "{format}"}}}}
"#,
            dir.display()
        )
    };
    let tcp = |cluster: &str| {
        format!(
            r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {cluster}
          cluster: {cluster}
"#
        )
    };
    let cluster = |name: &str, port: u16| {
        format!(
            "  - name: {name}\n    connect_timeout: 1s\n    load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]}}\n"
        )
    };
    let listener = |name: &str, port: u16| {
        format!(
            "  - name: {name}\n    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n"
        )
    };
    let rbac_text = "%RESPONSE_FLAGS% %RESPONSE_CODE% %CONNECTION_TERMINATION_DETAILS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%\\n";
    let http_text = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %UPSTREAM_LOCAL_ADDRESS%\\n";
    format!(
        r#"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
{l_tcp}{log_tcp}    filter_chains:
    - filters:
{tcp_echo}{l_down}{log_down}    filter_chains:
    - filters:
{tcp_down}{l_none}{log_none}    filter_chains:
    - filter_chain_match: {{source_ports: [1]}}
      filters:
{tcp_echo}{l_rbac}{log_rbac}    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: deny
          rules: {{action: DENY, policies: {{all: {{permissions: [{{any: true}}], principals: [{{any: true}}]}}}}}}
{tcp_echo}{l_http}    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {dir}/http.log
              log_format: {{text_format_source: {{inline_string: "{http_text}"}}}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {{match: {{prefix: /down}}, route: {{cluster: down}}}}
              - {{match: {{prefix: /}}, route: {{cluster: backend}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
{c_echo}{c_down}{c_backend}"#,
        admin = p[5],
        dir = dir.display(),
        l_tcp = listener("tcp", p[0]),
        log_tcp = log("tcp", LISTENER_TEXT),
        tcp_echo = tcp("echo"),
        l_down = listener("down", p[1]),
        log_down = log("down", LISTENER_TEXT),
        tcp_down = tcp("down"),
        l_none = listener("nochain", p[2]),
        log_none = log("nochain", LISTENER_TEXT),
        l_rbac = listener("rbac", p[3]),
        log_rbac = log("rbac", rbac_text),
        l_http = listener("http", p[4]),
        c_echo = cluster("echo", echo),
        c_down = cluster("down", down),
        c_backend = cluster("backend", backend),
    )
}

/// Sends `twelve bytes`, half-closes, reads what comes back until the proxy closes.
fn tcp_exchange(port: u16) {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = tcp.write_all(b"twelve bytes");
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
}

/// An `ip:port` at the end of a line with its port masked (the upstream connection's own port cannot agree).
fn mask_last_port(line: &str) -> String {
    match line.rsplit_once(' ') {
        Some((head, last)) if last.contains(':') => {
            format!(
                "{head} {}:N",
                last.rsplit_once(':').map_or(last, |(ip, _)| ip)
            )
        }
        _ => line.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_access_log_lines_match_envoy() {
    let Some(envoy) = support::peer("envoy") else {
        return;
    };
    let echo = support::tcp::echo().await;
    let backend = Backend::start("b").await;
    let down = free_port();
    let root = temp("listener-log");
    let (envoy_dir, our_dir) = (root.join("envoy"), root.join("outrigger"));
    std::fs::create_dir_all(&envoy_dir).unwrap();
    std::fs::create_dir_all(&our_dir).unwrap();
    let ports = || std::array::from_fn::<u16, 6, _>(|_| free_port());
    let (envoy_ports, our_ports) = (ports(), ports());
    let config = |dir: &Path, p: &[u16; 6]| {
        listener_config(dir, p, echo.address.port(), backend.address.port(), down)
    };
    let envoy_config = envoy_dir.join("envoy.yaml");
    std::fs::write(&envoy_config, config(&envoy_dir, &envoy_ports)).unwrap();
    let mut envoy = Envoy::start(&envoy, &envoy_config);
    envoy.wait_for_port(envoy_ports[4]);
    let ours = Sidecar::start(
        &our_dir,
        "outrigger",
        &config(&our_dir, &our_ports),
        our_ports[5],
    );
    let warned = ours.log_text();
    assert!(
        !warned.contains("not enforced yet") && !warned.contains("UPSTREAM_LOCAL_ADDRESS"),
        "no warning for the listener's access_log or %UPSTREAM_LOCAL_ADDRESS%:\n{warned}"
    );
    for p in [&envoy_ports, &our_ports] {
        for port in &p[..4] {
            tcp_exchange(*port);
        }
        for path in ["/ok", "/down"] {
            get(&format!("http://127.0.0.1:{}{path}", p[4]), &[]).await;
        }
    }
    for (name, lines) in [
        ("tcp", 1),
        ("down", 1),
        ("nochain", 1),
        ("rbac", 1),
        ("http", 2),
    ] {
        let read = |dir: &Path| -> Vec<String> {
            sorted(
                read_lines(&dir.join(format!("{name}.log")), lines)
                    .iter()
                    .map(|l| mask_last_port(l))
                    .collect(),
            )
        };
        let theirs = read(&envoy_dir);
        assert_eq!(theirs.len(), lines, "{name}: {theirs:#?}");
        assert_eq!(read(&our_dir), theirs, "{name}");
    }
    drop(envoy);
    drop(ours);
    let _ = std::fs::remove_dir_all(&root);
}
