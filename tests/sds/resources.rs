//! The resources of the SDS tests, as proto3 JSON (the bootstrap is JSON too, which YAML readers take).

use serde_json::{Value, json};

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const DOWNSTREAM: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const UPSTREAM: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP: &str = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// A reference to a secret: over ADS, or (`sds: false`) a static one.
pub fn secret_ref(name: &str, sds: bool) -> Value {
    if sds {
        json!({"name": name, "sds_config": {"ads": {}, "resource_api_version": "V3"}})
    } else {
        json!({"name": name})
    }
}

fn address(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn server_tls(sds: bool) -> Value {
    json!({"name": "tls", "typed_config": {
        "@type": DOWNSTREAM,
        "require_client_certificate": true,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [secret_ref("server_cert", sds)],
            "validation_context_sds_secret_config": secret_ref("client_trust", sds)}}})
}

/// mTLS (certificate `server_cert`, clients checked by `client_trust`), every request answered 200 `sds-ok`.
pub fn mtls_http(port: u16, sds: bool) -> Value {
    json!({"name": "mtls_http", "address": address(port), "filter_chains": [{
        "transport_socket": server_tls(sds),
        "filters": [{"name": "hcm", "typed_config": {"@type": HCM, "stat_prefix": "mtls",
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "sds-ok"}}}]}]},
            "http_filters": [{"name": "router", "typed_config": {"@type": ROUTER}}]}}]}]})
}

/// mTLS as `mtls_http`, TCP to the cluster `echo`.
pub fn mtls_tcp(port: u16, sds: bool) -> Value {
    json!({"name": "mtls_tcp", "address": address(port), "filter_chains": [{
        "transport_socket": server_tls(sds),
        "filters": [{"name": "tcp", "typed_config": {"@type": TCP, "stat_prefix": "echo", "cluster": "echo"}}]}]})
}

/// Plain TCP to the cluster `to_mtls`.
pub fn out(port: u16) -> Value {
    json!({"name": "out", "address": address(port), "filter_chains": [{
        "filters": [{"name": "tcp", "typed_config": {"@type": TCP, "stat_prefix": "out", "cluster": "to_mtls"}}]}]})
}

fn static_cluster(name: &str, port: u16) -> Value {
    json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": address(port)}}]}]}})
}

pub fn echo(port: u16) -> Value {
    static_cluster("echo", port)
}

/// mTLS to `port` with the certificate `client_cert`, the server checked by `server_trust`.
pub fn to_mtls(port: u16, sds: bool) -> Value {
    let mut cluster = static_cluster("to_mtls", port);
    cluster["transport_socket"] = json!({"name": "tls", "typed_config": {"@type": UPSTREAM,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [secret_ref("client_cert", sds)],
            "validation_context_sds_secret_config": secret_ref("server_trust", sds)}}});
    cluster
}

/// A data source: inline PEM (as SDS servers send) or a file.
fn source(pem_or_path: &str) -> Value {
    if pem_or_path.starts_with("-----") {
        json!({"inline_string": pem_or_path})
    } else {
        json!({"filename": pem_or_path})
    }
}

pub fn certificate_secret(name: &str, cert: &str, key: &str) -> Value {
    json!({"name": name, "tls_certificate": {"certificate_chain": source(cert), "private_key": source(key)}})
}

pub fn trust_secret(name: &str, ca: &str, allowed: &str) -> Value {
    json!({"name": name, "validation_context": {"trusted_ca": source(ca),
        "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": allowed}}]}})
}

/// `value` with its `"@type"` (for the ADS server's state file).
pub fn typed(type_url: &str, mut value: Value) -> Value {
    value["@type"] = json!(type_url);
    value
}
