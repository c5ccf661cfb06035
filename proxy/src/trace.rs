//! Distributed tracing as Envoy's HTTP connection manager does it (`tracing` with the OpenTelemetry, Zipkin or
//! SkyWalking provider): the trace decision (`decision.rs`, once per request, written into `x-request-id`), the trace
//! context read from the request and written upstream (`context.rs`), and a span per sampled request built from
//! the access-log `Record` when the response has been sent, handed to the export thread (`export.rs`).
//!
//! A connection manager without `tracing` has no `Tracer`: a request then costs one `Option` check.

pub mod context;
pub mod datadog;
mod datadog_encode;
pub mod decision;
pub mod decorator;
pub mod export;
mod otlp;
mod send;
pub mod skywalking;
pub mod span;
pub mod stats;
pub mod sw8;
pub mod upstream;
mod zipkin;

use crate::access_log::record::Record;
use context::Incoming;
use export::{Destination, DestinationKind};
use http::HeaderMap;
use outrigger_config::Snapshot;
use outrigger_config::model::listener::TrafficDirection;
use outrigger_config::model::tracing::{
    CollectorTarget, OtlpCollector, Provider, TagValue, Tracing,
};
use span::{FinishedSpan, Kind};
use std::sync::Arc;
use std::time::SystemTime;

/// One connection manager's tracer, built once per configuration.
pub struct Tracer {
    config: Tracing,
    egress: bool,
    /// None when the collector has no address (an unknown cluster: Envoy 1.40 starts with one too); the
    /// context is still propagated, and spans are dropped and counted.
    destination: Option<Arc<Destination>>,
    /// `node_id`, `zone`, then the literal and environment custom tags (values known at start).
    fixed_tags: Vec<(String, String)>,
    /// `http.<stat_prefix>.tracing.*`, by `decision::Reason::index`.
    decisions: [prometheus_client::metrics::counter::Counter; 4],
    /// SkyWalking: the segments' service and instance names (`client_config`, else the node's `cluster` and
    /// `id`, else `EnvoyProxy`: Envoy's defaults).
    skywalking_names: Option<(String, String)>,
}

/// A traced request in flight: what its span needs besides the `Record`.
#[derive(Debug, Clone)]
pub struct Active {
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    tracestate: Option<String>,
    /// The first attempt's CLIENT span of `spawn_upstream_span`, child of ours.
    upstream_span: Option<u64>,
    /// One span per upstream attempt (`spawn_upstream_span` only).
    attempts: Vec<upstream::AttemptSpan>,
    propagation: Propagation,
    /// `envoy.tracers.datadog` only: the priority, origin and propagated tags.
    datadog: Option<Box<datadog::State>>,
    shared: bool,
    start: SystemTime,
    name: String,
    /// SkyWalking's segment (ids, the caller's context, names); None for the other providers.
    segment: Option<Box<skywalking::Segment>>,
}

impl Active {
    /// The route's `decorator` (or an ingress request's `x-envoy-decorator-operation`) names the span. Envoy
    /// 1.40's SkyWalking spans keep the request's path instead.
    pub fn set_operation(&mut self, name: &str) {
        if self.segment.is_none() {
            self.name = name.to_string();
        }
    }
}

/// The headers a provider writes for the span an upstream request continues.
#[derive(Debug, Clone, Copy)]
struct Propagation {
    b3: bool,
    w3c: bool,
}

impl Propagation {
    fn write(
        self,
        headers: &mut HeaderMap,
        trace_id: u128,
        span_id: u64,
        parent_id: u64,
        tracestate: &Option<String>,
        datadog: Option<&datadog::State>,
    ) {
        if let Some(state) = datadog {
            datadog::inject(headers, trace_id, span_id, state);
            return;
        }
        if self.b3 {
            context::write_b3(headers, trace_id, span_id, Some(parent_id), true);
        }
        if self.w3c {
            context::write_w3c(headers, trace_id, span_id, true, tracestate.as_deref());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error("tracing: the collector cluster {0:?} has no endpoint with an address")]
    NoEndpoint(String),
}

impl Tracer {
    /// The tracer of a connection manager on a listener of `direction`; the collector's address is the
    /// first endpoint of its cluster in `snapshot`.
    pub fn new(
        config: &Tracing,
        stat_prefix: &str,
        direction: TrafficDirection,
        snapshot: &Snapshot,
        clusters: &crate::upstream::Clusters,
    ) -> Self {
        let cluster_address = |name: &str| cluster_address(clusters, name);
        let address = |target: &CollectorTarget| match target {
            CollectorTarget::Address(a) => Ok(a.clone()),
            CollectorTarget::Cluster(name) => cluster_address(name),
        };
        let kind = || -> Result<DestinationKind, TracerError> {
            Ok(match &config.provider {
                Provider::OpenTelemetry(o) => {
                    let resource = otlp::Resource::new(&o.service_name, o.environment_resource);
                    match &o.collector {
                        OtlpCollector::Grpc {
                            target, timeout, ..
                        } => DestinationKind::OtlpGrpc {
                            address: address(target)?,
                            timeout: *timeout,
                            resource,
                        },
                        OtlpCollector::Http {
                            target,
                            path,
                            authority,
                            timeout,
                            headers,
                        } => DestinationKind::OtlpHttp {
                            address: address(target)?,
                            authority: authority.clone(),
                            path: path.clone(),
                            timeout: *timeout,
                            headers: headers.clone(),
                            resource,
                        },
                    }
                }
                Provider::Datadog(d) => DestinationKind::Datadog {
                    address: cluster_address(&d.collector_cluster)?,
                    authority: d.collector_hostname.clone(),
                    service: d.service_name.clone(),
                    rates: Arc::default(),
                },
                Provider::Zipkin(z) => DestinationKind::Zipkin {
                    address: cluster_address(&z.collector_cluster)?,
                    authority: z.collector_hostname.clone(),
                    path: z.collector_endpoint.clone(),
                    service_name: if snapshot.node.cluster.is_empty() {
                        "unknown".into()
                    } else {
                        snapshot.node.cluster.clone()
                    },
                },
                Provider::SkyWalking(s) => DestinationKind::SkyWalking {
                    address: cluster_address(&s.cluster)?,
                    // Envoy sets no deadline by default; an export still gives up after this.
                    timeout: s.timeout.unwrap_or(std::time::Duration::from_secs(5)),
                    token: s.backend_token.clone(),
                    max_cache_size: s.max_cache_size as usize,
                },
            })
        };
        let destination = match kind() {
            Ok(kind) => Some(Arc::new(Destination { kind })),
            Err(e) => {
                tracing::warn!(error = %e, "tracing: spans are dropped; trace headers are still propagated");
                None
            }
        };
        let mut fixed_tags = Vec::new();
        for t in &config.custom_tags {
            let value = match &t.value {
                TagValue::Literal(v) => v.clone(),
                TagValue::Environment { name, default } => {
                    std::env::var(name).unwrap_or_else(|_| default.clone())
                }
                TagValue::RequestHeader { .. } => continue,
            };
            if !value.is_empty() {
                fixed_tags.push((t.tag.clone(), value));
            }
        }
        let zone = snapshot
            .node
            .locality
            .as_ref()
            .map(|l| l.zone.clone())
            .unwrap_or_default();
        fixed_tags.push(("node_id".into(), snapshot.node.id.clone()));
        fixed_tags.push(("zone".into(), zone));
        // Checked with Envoy 1.40: each name falls back on its own to the node's, then to `EnvoyProxy`.
        let or_node = |name: &Option<String>, node: &str| {
            name.clone()
                .or_else(|| (!node.is_empty()).then(|| node.to_string()))
                .unwrap_or_else(|| "EnvoyProxy".to_string())
        };
        let skywalking_names = match &config.provider {
            Provider::SkyWalking(s) => Some((
                or_node(&s.service_name, &snapshot.node.cluster),
                or_node(&s.instance_name, &snapshot.node.id),
            )),
            _ => None,
        };
        Self {
            config: config.clone(),
            egress: direction == TrafficDirection::Outbound,
            destination,
            fixed_tags,
            decisions: stats::decision_counters(stat_prefix),
            skywalking_names,
        }
    }

    /// A tracer whose spans go nowhere, for unit tests of the decision and propagation.
    #[cfg(test)]
    fn for_test(config: Tracing, egress: bool) -> Self {
        Self {
            config,
            egress,
            destination: Some(Arc::new(Destination {
                kind: DestinationKind::Zipkin {
                    address: "127.0.0.1:1".into(),
                    authority: "test".into(),
                    path: "/".into(),
                    service_name: "test".into(),
                },
            })),
            fixed_tags: Vec::new(),
            decisions: Default::default(),
            skywalking_names: None,
        }
    }

    /// Whether `start` reads its `authority` (egress spans are named `egress <host>`).
    pub fn names_spans_by_authority(&self) -> bool {
        self.egress
    }

    fn zipkin(&self) -> Option<&outrigger_config::model::tracing::Zipkin> {
        match &self.config.provider {
            Provider::Zipkin(z) => Some(z),
            Provider::OpenTelemetry(_) | Provider::Datadog(_) | Provider::SkyWalking(_) => None,
        }
    }

    /// Decides for the request, writes the context its upstream will see, and returns what its span needs when
    /// it is sampled. `generated`: the `x-request-id` the connection manager has just made, if it made one;
    /// `authority` names an egress span (`egress <host>`); `path` names a SkyWalking span.
    pub fn start(
        &self,
        headers: &mut HeaderMap,
        generated: Option<uuid::Uuid>,
        authority: Option<&str>,
        path: &str,
    ) -> Option<Active> {
        let reason = decision::decide(&self.config, headers, generated);
        if let Some(counter) = self.decisions.get(reason.index()) {
            counter.inc();
        }
        if let Provider::Datadog(d) = &self.config.provider {
            return Some(self.start_datadog(d, reason.traced(), headers, authority));
        }
        if let Some((service, instance)) = &self.skywalking_names {
            return self.start_skywalking(headers, reason.traced(), path, service, instance);
        }
        let (incoming, sampled) = match self.zipkin() {
            None => {
                // Checked with Envoy 1.40: a span is sampled when Envoy's decision traces the request and the
                // caller's `traceparent` (if any) has its sampled flag; either one alone is not enough.
                let incoming = context::read_w3c(headers);
                let sampled =
                    reason.traced() && incoming.as_ref().and_then(|c| c.sampled).unwrap_or(true);
                (incoming, sampled)
            }
            Some(z) => {
                let (mut incoming, mut b3_sampled) = context::read_b3(headers);
                if incoming.is_none() && b3_sampled.is_none() && z.w3c {
                    incoming = context::read_w3c(headers);
                    b3_sampled = incoming.as_ref().and_then(|c| c.sampled);
                }
                (incoming, b3_sampled.unwrap_or(reason.traced()))
            }
        };
        let zipkin = self.zipkin();
        // Zipkin's shared span context: a server span continues the caller's span under its id.
        let shared =
            zipkin.is_some_and(|z| z.shared_span_context) && !self.egress && incoming.is_some();
        let (trace_id, span_id, parent_id) = match &incoming {
            Some(Incoming {
                trace_id,
                span_id,
                parent_id,
                ..
            }) if shared => (*trace_id, *span_id, *parent_id),
            Some(c) => (c.trace_id, nonzero_u64(), Some(c.span_id)),
            None => {
                let trace_id = if zipkin.is_some_and(|z| !z.trace_id_128bit) {
                    u128::from(nonzero_u64())
                } else {
                    (u128::from(nonzero_u64()) << 64) | u128::from(fastrand::u64(..))
                };
                (trace_id, nonzero_u64(), None)
            }
        };
        let upstream_span = self.child_spans().then(nonzero_u64);
        let tracestate = incoming.and_then(|c| c.tracestate);
        // What the upstream sees: our span (or its upstream child) as its parent.
        let (propagated, propagated_parent) = match upstream_span {
            Some(child) => (child, Some(span_id)),
            None => (span_id, parent_id),
        };
        match zipkin {
            None => context::write_w3c(
                headers,
                trace_id,
                propagated,
                sampled,
                tracestate.as_deref(),
            ),
            Some(z) => {
                context::write_b3(headers, trace_id, propagated, propagated_parent, sampled);
                if z.w3c {
                    context::write_w3c(
                        headers,
                        trace_id,
                        propagated,
                        sampled,
                        tracestate.as_deref(),
                    );
                }
            }
        }
        if !sampled {
            return None;
        }
        let name = self.span_name(authority);
        Some(Active {
            trace_id,
            span_id,
            parent_id,
            tracestate,
            upstream_span,
            attempts: Vec::new(),
            propagation: Propagation {
                b3: zipkin.is_some(),
                w3c: zipkin.is_none_or(|z| z.w3c),
            },
            datadog: None,
            shared,
            start: SystemTime::now(),
            name,
            segment: None,
        })
    }

    /// Whether each upstream attempt gets a span of its own (`spawn_upstream_span` or the router's
    /// `start_child_span`: Envoy 1.40 makes the same span for either).
    fn child_spans(&self) -> bool {
        self.config.spawn_upstream_span || self.config.start_child_span
    }

    /// SkyWalking: continues a valid incoming `sw8` (anything else is ignored, as Envoy does) in a new segment.
    /// Checked with Envoy 1.40: only an exit span writes `sw8`, so without child spans the upstream gets none.
    fn start_skywalking(
        &self,
        headers: &HeaderMap,
        traced: bool,
        path: &str,
        service: &str,
        instance: &str,
    ) -> Option<Active> {
        let parent = headers
            .get(sw8::HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let context = sw8::Context::decode(v);
                if context.is_none() {
                    tracing::debug!(
                        sw8 = v,
                        "tracing: an invalid sw8 header is ignored; a new trace starts"
                    );
                }
                context
            });
        // Checked with Envoy 1.40: a valid `sw8` is continued and reported whatever its sample flag and the
        // connection manager's decision; without one, an untraced request has no segment and sends no `sw8`.
        if !traced && parent.is_none() {
            return None;
        }
        let segment = skywalking::Segment {
            trace_id: parent
                .as_ref()
                .map_or_else(skywalking::new_id, |p| p.trace_id.clone()),
            segment_id: skywalking::new_id(),
            sampled: true,
            parent,
            endpoint: path.to_string(),
            service: service.to_string(),
            instance: instance.to_string(),
        };
        Some(Active {
            trace_id: 0,
            span_id: 0,
            parent_id: None,
            tracestate: None,
            // Exit spans are numbered from 1 in the segment.
            upstream_span: self.child_spans().then_some(1),
            attempts: Vec::new(),
            propagation: Propagation {
                b3: false,
                w3c: false,
            },
            shared: false,
            start: SystemTime::now(),
            name: path.to_string(),
            datadog: None,
            segment: Some(Box::new(segment)),
        })
    }

    /// `egress <host>` / `egress` / `ingress`: Envoy's operation name, before a decorator changes it.
    fn span_name(&self, authority: Option<&str>) -> String {
        match authority {
            Some(host) if self.egress => format!("egress {host}"),
            _ if self.egress => "egress".to_string(),
            _ => "ingress".to_string(),
        }
    }

    /// Builds the request's span (and its upstream span) from the finished record and hands them to the
    /// export thread.
    pub fn finish(&self, active: Active, record: &Record) {
        let end = SystemTime::now();
        let start = record.start.unwrap_or(active.start);
        let mut tags = self.tags(record);
        if let Some(segment) = &active.segment {
            return self.finish_segment(segment, &active, record, start, end, tags);
        }
        if let Some(state) = &active.datadog {
            datadog::span_tags(state, &mut tags);
        }
        // Envoy's router makes a span per upstream request (attempt): none for a local reply.
        let cluster = record.upstream_cluster.as_deref().unwrap_or("-");
        for (retry, attempt) in active.attempts.iter().enumerate() {
            self.submit(FinishedSpan {
                trace_id: active.trace_id,
                span_id: attempt.span_id,
                parent_id: Some(active.span_id),
                name: format!("router {cluster} egress"),
                kind: Kind::Client,
                start: attempt.start,
                end: attempt.end.unwrap_or(end),
                tracestate: active.tracestate.clone(),
                tags: upstream::tags(attempt, retry, cluster),
                shared: false,
            });
        }
        self.submit(FinishedSpan {
            trace_id: active.trace_id,
            span_id: active.span_id,
            parent_id: active.parent_id,
            name: active.name,
            // Envoy 1.40: with an upstream span of its own the request's span is the hop's SERVER span;
            // without one, an egress span stands for the call and is CLIENT.
            kind: if self.egress && !self.config.spawn_upstream_span {
                Kind::Client
            } else {
                Kind::Server
            },
            start,
            end,
            tracestate: active.tracestate,
            tags,
            shared: active.shared,
        });
    }

    /// SkyWalking: the request's segment, its entry span first and an exit span per attempt.
    fn finish_segment(
        &self,
        segment: &skywalking::Segment,
        active: &Active,
        record: &Record,
        start: SystemTime,
        end: SystemTime,
        tags: Vec<(String, String)>,
    ) {
        use skywalking::{COMPONENT_ENVOY, LAYER_HTTP, SPAN_TYPE_EXIT, SpanObject};
        let (tags, peer, is_error) = skywalking::tags(tags);
        let mut spans = vec![SpanObject {
            span_id: 0,
            parent_span_id: -1,
            start_time: skywalking::millis(start),
            end_time: skywalking::millis(end),
            refs: segment.reference().into_iter().collect(),
            operation_name: segment.endpoint.clone(),
            peer: peer.unwrap_or_default(),
            span_type: 0,
            span_layer: LAYER_HTTP,
            component_id: COMPONENT_ENVOY,
            is_error,
            tags,
        }];
        let cluster = record.upstream_cluster.as_deref().unwrap_or("-");
        for (retry, attempt) in active.attempts.iter().enumerate() {
            let tags = skywalking::exit_tags(upstream::tags(attempt, retry, cluster));
            let (tags, peer, is_error) = skywalking::tags(tags);
            spans.push(SpanObject {
                span_id: i32::try_from(attempt.span_id).unwrap_or(i32::MAX),
                parent_span_id: 0,
                start_time: skywalking::millis(attempt.start),
                end_time: skywalking::millis(attempt.end.unwrap_or(end)),
                refs: Vec::new(),
                operation_name: segment.endpoint.clone(),
                peer: peer.unwrap_or_default(),
                span_type: SPAN_TYPE_EXIT,
                span_layer: LAYER_HTTP,
                component_id: COMPONENT_ENVOY,
                is_error,
                tags,
            });
        }
        let object = skywalking::SegmentObject {
            trace_id: segment.trace_id.clone(),
            trace_segment_id: segment.segment_id.clone(),
            spans,
            service: segment.service.clone(),
            service_instance: segment.instance.clone(),
        };
        match &self.destination {
            Some(destination) => export::submit_segment(destination, object),
            None => {
                stats::stats().skywalking.spans_dropped.inc();
            }
        }
    }

    fn submit(&self, span: FinishedSpan) {
        match &self.destination {
            Some(destination) => export::submit(destination, span),
            None => {
                let all = stats::stats();
                let provider = match self.config.provider {
                    Provider::Zipkin(_) => &all.zipkin,
                    Provider::OpenTelemetry(_) => &all.opentelemetry,
                    Provider::Datadog(_) => &all.datadog,
                    Provider::SkyWalking(_) => &all.skywalking,
                };
                provider.spans_dropped.inc();
            }
        }
    }

    /// Envoy's tags on the downstream span, in its order.
    fn tags(&self, record: &Record) -> Vec<(String, String)> {
        let mut tags = self.fixed_tags.clone();
        let request = record.request.as_ref();
        let header = |name: &str| request.and_then(|r| r.get(name));
        let mut add = |k: &str, v: String| tags.push((k.to_string(), v));
        if let Some(id) = header("x-request-id") {
            add("guid:x-request-id", id.to_string());
        }
        if let Some(r) = request {
            let max = self.config.max_path_tag_length as usize;
            let path: String = r.path().chars().take(max).collect();
            let proto = header("x-forwarded-proto").unwrap_or("http");
            let host = header(":authority").unwrap_or("");
            add("http.url", format!("{proto}://{host}{path}"));
            add("http.method", r.method.to_string());
        }
        add(
            "downstream_cluster",
            header("x-envoy-downstream-service-cluster")
                .unwrap_or("-")
                .to_string(),
        );
        add(
            "user_agent",
            header("user-agent").unwrap_or("-").to_string(),
        );
        add("http.protocol", record.protocol.unwrap_or("-").to_string());
        if let Some(peer) = record.downstream_remote {
            add("peer.address", peer.ip().to_string());
        }
        if let Some(id) = header("x-client-trace-id") {
            add("guid:x-client-trace-id", id.to_string());
        }
        add("request_size", record.bytes_received.to_string());
        add("response_size", record.bytes_sent.to_string());
        add("component", "proxy".to_string());
        if let Some(cluster) = &record.upstream_cluster {
            add("upstream_cluster", cluster.to_string());
            add("upstream_cluster.name", cluster.to_string());
        }
        add("http.status_code", record.response_code.to_string());
        add("response_flags", record.flags.short());
        if record.response_code == 0 || record.response_code >= 500 {
            add("error", "true".to_string());
        }
        for t in &self.config.custom_tags {
            if let TagValue::RequestHeader { name, default } = &t.value {
                let value = header(name).unwrap_or(default).to_string();
                if !value.is_empty() {
                    add(&t.tag, value);
                }
            }
        }
        tags
    }
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

/// `host:port` of the cluster's first endpoint (as configured: a DNS name is resolved when the export thread
/// connects).
fn cluster_address(
    clusters: &crate::upstream::Clusters,
    name: &str,
) -> Result<String, TracerError> {
    let cluster = clusters
        .get(name)
        .ok_or_else(|| TracerError::NoEndpoint(name.to_string()))?;
    if let Some(endpoint) = cluster.config.endpoints().next() {
        // Host's Display puts an IPv6 address in brackets.
        return Ok(format!("{}:{}", endpoint.host, endpoint.port));
    }
    cluster
        .targets()
        .first()
        .map(|t| t.address.to_string())
        .ok_or_else(|| TracerError::NoEndpoint(name.to_string()))
}

#[cfg(test)]
mod tests;
