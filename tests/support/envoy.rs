//! Real Envoy as a running peer: started on a config file, stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Envoy {
    child: Child,
    log: std::path::PathBuf,
}

impl Envoy {
    /// Starts `envoy` (one worker, no hot restart) on `config`; its log goes next to the config.
    pub fn start(envoy: &Path, config: &Path) -> Envoy {
        let log = config.with_extension("log");
        let child = Command::new(envoy)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "error",
                "-c",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Envoy { child, log }
    }

    /// Waits until `port` accepts connections; fails the test with Envoy's log if Envoy exits first.
    pub fn wait_for_port(&mut self, port: u16) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "Envoy exited ({status}) before serving:\n{}",
                    &log[..log.len().min(3000)]
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Envoy did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Envoy mTLS server on 127.0.0.1:`port`: TLS 1.3, the certificate in `identity/` (cert.pem, key.pem, ca.pem),
/// a client certificate required and accepted only for `allowed_id`; every request answered 200 with `body`.
pub fn mtls_server_config(
    identity: &Path,
    allowed_id: &str,
    port: u16,
    admin: u16,
    body: &str,
) -> String {
    super::proxy::fill(
        r#"
admin: {address: {socket_address: {address: 127.0.0.1, port_value: {admin}}}}
static_resources:
  listeners:
  - name: mtls
    address: {socket_address: {address: 127.0.0.1, port_value: {port}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {tls_minimum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: "{dir}/cert.pem"}, private_key: {filename: "{dir}/key.pem"}}]
            validation_context:
              trusted_ca: {filename: "{dir}/ca.pem"}
              match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "{allowed_id}"}}]
      filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mtls
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "{body}"}}}]}]}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
"#,
        &[
            ("admin", admin.to_string()),
            ("port", port.to_string()),
            ("dir", identity.display().to_string()),
            ("allowed_id", allowed_id.to_string()),
            ("body", body.to_string()),
        ],
    )
}
