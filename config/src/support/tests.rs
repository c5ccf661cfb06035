//! The support table against the descriptors and its own rules.

use super::*;
use crate::descriptors;

/// A typo in the table would silently refuse a field we implement (or accept one we do not).
#[test]
fn every_listed_message_and_field_exists() {
    let pool = descriptors::pool().unwrap();
    for entry in messages().chain(proxyless_messages()) {
        let message = pool
            .get_message_by_name(entry.message)
            .unwrap_or_else(|| panic!("no message {}", entry.message));
        let names = entry
            .fields
            .split_whitespace()
            .chain(entry.ignored.iter().map(|(f, _)| *f));
        for field in names {
            assert!(
                message.get_field_by_name(field).is_some(),
                "{} has no field {field}",
                entry.message
            );
        }
    }
    for name in SUPPORTED_TYPES {
        assert!(
            pool.get_message_by_name(name).is_some(),
            "no message {name}"
        );
    }
}

#[test]
fn unknown_messages_support_nothing() {
    assert_eq!(
        field_support("envoy.config.cluster.v3.Cluster", "lb_subset_config"),
        FieldSupport::Unsupported
    );
    assert_eq!(
        field_support("envoy.config.cluster.v3.Cluster", "name"),
        FieldSupport::Supported
    );
    assert!(matches!(
        field_support("envoy.config.bootstrap.v3.Admin", "access_log"),
        FieldSupport::Ignored(_)
    ));
    assert_eq!(
        field_support(
            "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code"
        ),
        FieldSupport::Unsupported
    );
}

#[test]
fn api_listener_is_for_proxyless_clients_only() {
    const LISTENER: &str = "envoy.config.listener.v3.Listener";
    assert!(matches!(
        field_support(LISTENER, "api_listener"),
        FieldSupport::Refused(why) if why.contains("Envoy Mobile")
    ));
    assert_eq!(
        field_support_for(Reader::ProxylessClient, LISTENER, "api_listener"),
        FieldSupport::Supported
    );
    assert!(matches!(
        field_support_for(Reader::ProxylessClient, LISTENER, "address"),
        FieldSupport::Refused(why) if why.contains("proxyless gRPC clients")
    ));
    // Below the listener, both read the same table.
    assert_eq!(
        field_support_for(
            Reader::ProxylessClient,
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "rds"
        ),
        FieldSupport::Supported
    );
    assert_eq!(field_support(LISTENER, "address"), FieldSupport::Supported);
}
