use super::*;

fn stats(metadata: serde_json::Value) -> (Registry, Arc<IstioStats>) {
    let mut registry = Registry::default();
    let stats = IstioStats::register(&mut registry, metadata.as_object().unwrap());
    (registry, Arc::new(stats))
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, registry).unwrap();
    text
}

fn end(service: &str, code: u16) -> HttpEnd<'_> {
    HttpEnd {
        service,
        upstream: None,
        code,
        grpc: false,
        grpc_status: None,
        flags: Flags::default(),
        duration_ms: 3.0,
        request_bytes: 100,
        response_bytes: 200,
    }
}

#[test]
fn the_flag_in_the_node_metadata_turns_them_on() {
    let on =
        |v: serde_json::Value| enabled(serde_json::json!({ ENABLE_KEY: v }).as_object().unwrap());
    assert!(on(serde_json::json!(true)) && on(serde_json::json!("true")));
    assert!(!on(serde_json::json!(false)) && !on(serde_json::json!("no")));
    assert!(!enabled(&Map::new()));
}

#[test]
fn the_server_side_labels_come_in_istios_order() {
    let (registry, stats) = stats(serde_json::json!({"WORKLOAD_NAME": "b", "NAMESPACE": "shop"}));
    let connection = ConnectionLabels::new(
        &stats,
        Reporter::Destination,
        Some("spiffe://cluster.local/ns/front/sa/a"),
        Some("spiffe://cluster.local/ns/shop/sa/b"),
    );
    connection.request(&end("b.shop", 200));
    connection.request(&end("b.shop", 200));
    let text = encoded(&registry);
    let series = "istio_requests_total{reporter=\"destination\",source_workload=\"unknown\",\
        source_workload_namespace=\"front\",source_principal=\"spiffe://cluster.local/ns/front/sa/a\",\
        source_app=\"unknown\",source_version=\"unknown\",source_canonical_service=\"unknown\",\
        source_canonical_revision=\"latest\",source_cluster=\"unknown\",destination_workload=\"b\",\
        destination_workload_namespace=\"shop\",destination_principal=\"spiffe://cluster.local/ns/shop/sa/b\",\
        destination_app=\"unknown\",destination_version=\"unknown\",destination_service=\"b.shop\",\
        destination_service_name=\"b\",destination_service_namespace=\"shop\",\
        destination_canonical_service=\"b\",destination_canonical_revision=\"latest\",\
        destination_cluster=\"unknown\",request_protocol=\"http\",response_flags=\"-\",\
        connection_security_policy=\"mutual_tls\",response_code=\"200\",grpc_response_status=\"\"} 2";
    assert!(text.contains(series), "{text}");
    assert!(
        text.contains("istio_request_duration_milliseconds_bucket{")
            && text.contains("le=\"3600000.0\""),
        "{text}"
    );
}

#[test]
fn label_sets_past_the_cap_are_counted_not_recorded() {
    let (registry, stats) = stats(serde_json::json!({}));
    let connection = ConnectionLabels::new(&stats, Reporter::Source, None, None);
    stats
        .label_sets
        .store(MAX_LABEL_SETS - 1, Ordering::Relaxed);
    connection.request(&end("a", 200));
    // Known already: still recorded.
    connection.request(&end("a", 200));
    connection.request(&end("b", 200));
    connection.request(&end("c", 503));
    assert_eq!(stats.overflow.get(), 2);
    let text = encoded(&registry);
    assert!(text.contains("destination_service=\"a\""), "{text}");
    assert!(!text.contains("destination_service=\"b\""), "{text}");
}
