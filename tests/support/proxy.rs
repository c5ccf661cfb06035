//! An Outrigger proxy in the test's own runtime, from a YAML config with `{name}` placeholders.

use outrigger_config::{Format, load_bytes};
use outrigger_proxy::Proxy;
use std::net::SocketAddr;

pub async fn start(yaml: &str) -> Proxy {
    let loaded = match load_bytes(yaml.as_bytes(), Format::Yaml) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("test config refused: {problems:#?}\n{yaml}"),
    };
    Proxy::start(loaded.snapshot).await.expect("proxy starts")
}

/// Where the listener `name` is bound.
pub fn address(proxy: &Proxy, name: &str) -> SocketAddr {
    proxy
        .addresses()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
        .expect("listener is bound")
}

/// Replaces each `{key}` with its value.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    text
}
