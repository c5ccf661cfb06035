//! `tracing` blocks read from YAML into the model, and what is refused by name.

use crate::model::listener::NetworkFilter;
use crate::model::tracing::{CollectorTarget, OtlpCollector, Provider, TagValue, Tracing};
use crate::{Format as Input, load_bytes};

/// A connection manager whose `tracing` is `tracing` (YAML flow mapping), with the clusters `otel` and `zipkin`.
fn config(tracing: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          tracing: {tracing}
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: otel}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: otel
    load_assignment: {{cluster_name: otel, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 4317}}}}}}}}]}}]}}
  - name: zipkin
    load_assignment: {{cluster_name: zipkin, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9411}}}}}}}}]}}]}}
"#
    )
}

const OTEL: &str = "\"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";
const ZIPKIN: &str = "\"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig";
const DATADOG: &str = "\"@type\": type.googleapis.com/envoy.config.trace.v3.DatadogConfig";
const DETECTOR: &str = "\"@type\": type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig";

fn tracing(block: &str) -> Tracing {
    let loaded = match load_bytes(config(block).as_bytes(), Input::Yaml) {
        Ok(loaded) => loaded,
        Err(problems) => panic!("refused: {problems:#?}"),
    };
    assert!(
        loaded.warnings.is_empty(),
        "no warning for tracing: {:?}",
        loaded.warnings
    );
    match &loaded.snapshot.listeners[0].filter_chains[0].filters[0] {
        NetworkFilter::HttpConnectionManager(hcm) => hcm.tracing.clone().expect("a tracer"),
        other => panic!("{other:?}"),
    }
}

fn refused(block: &str) -> String {
    match load_bytes(config(block).as_bytes(), Input::Yaml) {
        Ok(_) => panic!("accepted: {block}"),
        Err(problems) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn tracing_blocks_are_read_like_envoy() {
    // Defaults: every sampling 100 %, paths cut at 256, no upstream span.
    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel}}}}}}}}}}"
    ));
    assert_eq!(
        (t.client_sampling, t.random_sampling, t.overall_sampling),
        (10_000, 10_000, 10_000)
    );
    assert_eq!(t.max_path_tag_length, 256);
    assert!(!t.spawn_upstream_span);
    let Provider::OpenTelemetry(o) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(o.service_name, "unknown_service:envoy");
    assert!(
        matches!(&o.collector, OtlpCollector::Grpc { target: CollectorTarget::Cluster(c), .. } if c == "otel")
    );

    // Every field set: Percent becomes a fraction of 10,000 as Envoy rounds it.
    let t = tracing(&format!(
        "{{client_sampling: {{value: 12.5}}, random_sampling: {{value: 1}}, overall_sampling: {{value: 0.01}}, \
         max_path_tag_length: 9, spawn_upstream_span: true, custom_tags: [{{tag: a, literal: {{value: v}}}}, \
         {{tag: b, environment: {{name: E, default_value: d}}}}, {{tag: c, request_header: {{name: X-H, \
         default_value: h}}}}], provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, \
         service_name: svc, http_service: {{http_uri: {{uri: \"http://collector:4318/v1/traces\", cluster: otel, timeout: 2s}}}}, \
         resource_detectors: [{{name: envoy.tracers.opentelemetry.resource_detectors.environment, typed_config: \
         {{{DETECTOR}}}}}]}}}}}}"
    ));
    assert_eq!(
        (t.client_sampling, t.random_sampling, t.overall_sampling),
        (1_250, 100, 1)
    );
    assert_eq!(t.max_path_tag_length, 9);
    assert!(t.spawn_upstream_span);
    assert!(matches!(&t.custom_tags[0].value, TagValue::Literal(v) if v == "v"));
    assert!(
        matches!(&t.custom_tags[1].value, TagValue::Environment { name, default } if name == "E" && default == "d")
    );
    assert!(
        matches!(&t.custom_tags[2].value, TagValue::RequestHeader { name, default } if name == "x-h" && default == "h")
    );
    let Provider::OpenTelemetry(o) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(o.service_name, "svc");
    assert!(o.environment_resource);
    match &o.collector {
        OtlpCollector::Http {
            target,
            path,
            authority,
            ..
        } => {
            assert_eq!(target, &CollectorTarget::Cluster("otel".into()));
            assert_eq!(
                (path.as_str(), authority.as_str()),
                ("/v1/traces", "collector:4318")
            );
        }
        other => panic!("{other:?}"),
    }

    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.zipkin, typed_config: {{{ZIPKIN}, collector_cluster: zipkin, \
         collector_endpoint: /api/v2/spans, collector_endpoint_version: HTTP_JSON, trace_id_128bit: true, \
         shared_span_context: false, trace_context_option: USE_B3_WITH_W3C_PROPAGATION}}}}}}"
    ));
    let Provider::Zipkin(z) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(
        (z.collector_cluster.as_str(), z.collector_endpoint.as_str()),
        ("zipkin", "/api/v2/spans")
    );
    assert!(z.trace_id_128bit && !z.shared_span_context && z.w3c);
}

#[test]
fn what_outrigger_does_not_do_is_refused_by_name() {
    let otel = |extra: &str| {
        format!(
            "{{{extra} provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
             {{envoy_grpc: {{cluster_name: otel}}}}}}}}}}"
        )
    };
    assert!(refused(&otel("verbose: true,")).contains("verbose"));
    assert!(
        refused(&otel(
            "custom_tags: [{tag: m, metadata: {kind: {request: {}}, metadata_key: {key: k}}}],"
        ))
        .contains("metadata")
    );
    let message = refused(&format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
         {{google_grpc: {{target_uri: \"127.0.0.1:4317\", stat_prefix: o}}}}}}}}}}"
    ));
    assert!(message.contains("google_grpc"), "{message}");
    let message = refused(&format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel}}}}, sampler: {{name: s, typed_config: {{\"@type\": \
         type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3.AlwaysOnSamplerConfig}}}}}}}}}}"
    ));
    assert!(message.contains("sampler"), "{message}");
    let message = refused(&format!(
        "{{provider: {{name: envoy.tracers.zipkin, typed_config: {{{ZIPKIN}, collector_cluster: zipkin, \
         collector_endpoint: /api/v2/spans, collector_endpoint_version: GRPC}}}}}}"
    ));
    assert!(message.contains("collector_endpoint_version"), "{message}");
    // An unknown collector cluster: Envoy 1.40 starts (spans go nowhere); we warn, naming it.
    let block = format!(
        "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
         {{envoy_grpc: {{cluster_name: nowhere}}}}}}}}}}"
    );
    let loaded = load_bytes(config(&block).as_bytes(), Input::Yaml).expect("accepted");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains("nowhere")),
        "{warnings:?}"
    );
}

#[test]
fn route_decorator_is_read_and_an_empty_operation_refused() {
    let yaml = |decorator: &str| {
        config(&format!(
            "{{provider: {{name: envoy.tracers.opentelemetry, typed_config: {{{OTEL}, grpc_service: \
             {{envoy_grpc: {{cluster_name: otel}}}}}}}}}}"
        ))
        .replace(
            "route: {cluster: otel}}",
            &format!("route: {{cluster: otel}}, decorator: {decorator}}}"),
        )
    };
    let decorator = |d: &str| {
        let loaded = load_bytes(yaml(d).as_bytes(), Input::Yaml).expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let NetworkFilter::HttpConnectionManager(hcm) =
            &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
        else {
            panic!("no connection manager")
        };
        let crate::model::http::RouteSource::Static(routes) = &hcm.routes else {
            panic!("inline routes")
        };
        let d = routes.virtual_hosts[0].routes[0]
            .decorator
            .clone()
            .expect("a decorator");
        (d.operation, d.propagate)
    };
    assert_eq!(decorator("{operation: op}"), ("op".to_string(), true));
    assert_eq!(
        decorator("{operation: op, propagate: false}"),
        ("op".to_string(), false)
    );
    let problems = match load_bytes(yaml("{operation: ''}").as_bytes(), Input::Yaml) {
        Ok(_) => panic!("an empty operation was accepted"),
        Err(p) => p.iter().map(ToString::to_string).collect::<String>(),
    };
    assert!(problems.contains("decorator.operation"), "{problems}");
}

#[test]
fn datadog_config_is_read_and_remote_config_refused() {
    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.datadog, typed_config: {{{DATADOG}, collector_cluster: zipkin, \
         service_name: shop}}}}}}"
    ));
    let Provider::Datadog(d) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(
        (d.collector_cluster.as_str(), d.service_name.as_str()),
        ("zipkin", "shop")
    );
    // Envoy's default Host: the cluster's name.
    assert_eq!(d.collector_hostname, "zipkin");
    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.datadog, typed_config: {{{DATADOG}, collector_cluster: zipkin, \
         service_name: shop, collector_hostname: agent.example:8126}}}}}}"
    ));
    let Provider::Datadog(d) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(d.collector_hostname, "agent.example:8126");
    let refusal = refused(&format!(
        "{{provider: {{name: envoy.tracers.datadog, typed_config: {{{DATADOG}, collector_cluster: zipkin, \
         service_name: shop, remote_config: {{polling_interval: 5s}}}}}}}}"
    ));
    assert!(refusal.contains("typed_config.remote_config"), "{refusal}");
    // Both names are required (Envoy: "value length must be at least 1 characters").
    let refusal = refused(&format!(
        "{{provider: {{name: envoy.tracers.datadog, typed_config: {{{DATADOG}, collector_cluster: zipkin}}}}}}"
    ));
    assert!(refusal.contains("typed_config.service_name"), "{refusal}");
}

const SKYWALKING: &str = "\"@type\": type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig";

#[test]
fn skywalking_and_start_child_span_are_read_like_envoy() {
    // Defaults: names from the node (filled in by the tracer), no token, a cache of 1024, no deadline.
    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.skywalking, typed_config: {{{SKYWALKING}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel}}}}}}}}}}"
    ));
    let Provider::SkyWalking(s) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(s.cluster, "otel");
    assert_eq!(
        (&s.service_name, &s.instance_name, &s.backend_token),
        (&None, &None, &None)
    );
    assert_eq!((s.max_cache_size, s.timeout), (1024, None));
    assert!(!t.start_child_span);

    let t = tracing(&format!(
        "{{provider: {{name: envoy.tracers.skywalking, typed_config: {{{SKYWALKING}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel}}, timeout: 0.25s}}, client_config: {{service_name: svc, \
         instance_name: inst, backend_token: tok, max_cache_size: 7}}}}}}}}"
    ));
    let Provider::SkyWalking(s) = &t.provider else {
        panic!("{t:?}")
    };
    assert_eq!(s.service_name.as_deref(), Some("svc"));
    assert_eq!(s.instance_name.as_deref(), Some("inst"));
    assert_eq!(s.backend_token.as_deref(), Some("tok"));
    assert_eq!(s.max_cache_size, 7);
    assert_eq!(s.timeout, Some(std::time::Duration::from_millis(250)));

    // The router's `start_child_span` reaches the tracer.
    let yaml = config(&format!(
        "{{provider: {{name: envoy.tracers.skywalking, typed_config: {{{SKYWALKING}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel}}}}}}}}}}"
    ))
    .replace(".Router}", ".Router, start_child_span: true}");
    let loaded = load_bytes(yaml.as_bytes(), Input::Yaml).expect("loads");
    let NetworkFilter::HttpConnectionManager(hcm) =
        &loaded.snapshot.listeners[0].filter_chains[0].filters[0]
    else {
        panic!("no connection manager")
    };
    assert!(hcm.tracing.as_ref().expect("a tracer").start_child_span);

    // Only an Envoy-gRPC collector.
    let message = refused(&format!(
        "{{provider: {{name: envoy.tracers.skywalking, typed_config: {{{SKYWALKING}, grpc_service: \
         {{google_grpc: {{target_uri: \"127.0.0.1:11800\", stat_prefix: s}}}}}}}}}}"
    ));
    assert!(message.contains("grpc_service"), "{message}");
    let message = refused(&format!(
        "{{provider: {{name: envoy.tracers.skywalking, typed_config: {{{SKYWALKING}, grpc_service: \
         {{envoy_grpc: {{cluster_name: otel, authority: oap}}}}}}}}}}"
    ));
    assert!(message.contains("envoy_grpc.authority"), "{message}");
}
