//! The SkyWalking tracer's data: the segment a traced request makes (an entry span for the downstream request,
//! an exit span per upstream attempt with `start_child_span` / `spawn_upstream_span`) and the messages of
//! SkyWalking's `TraceSegmentReportService/collect` stream that carry it.
//!
//! The messages are written here by hand with prost's derive: their field numbers and names are SkyWalking's
//! wire format (`SegmentObject`, `SpanObject`, `SegmentReference`, `KeyStringValuePair`); only the fields
//! Envoy 1.40 fills are declared. What Envoy puts in them was read off the wire from Envoy 1.40:
//! - the entry span: id 0, parent -1, operation name = the request's path (query included; the route's
//!   decorator does not rename it), peer = the downstream address, layer Http, component 9000, the connection
//!   manager's tags with `http.url` as `url` and `http.status_code` as `status_code`, `peer.address` as the
//!   span's peer rather than a tag, `is_error` with `error: true`, and a reference to the caller's segment
//!   when a valid `sw8` came;
//! - an exit span per upstream attempt: ids 1, 2, … (parent 0), operation name = the path, peer = the upstream
//!   host's address, its own tags (protocol and address first).

use super::sw8;
use std::time::SystemTime;

/// `SegmentObject`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentObject {
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub trace_segment_id: String,
    #[prost(message, repeated, tag = "3")]
    pub spans: Vec<SpanObject>,
    #[prost(string, tag = "4")]
    pub service: String,
    #[prost(string, tag = "5")]
    pub service_instance: String,
}

/// `SpanObject`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanObject {
    #[prost(int32, tag = "1")]
    pub span_id: i32,
    #[prost(int32, tag = "2")]
    pub parent_span_id: i32,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub start_time: i64,
    #[prost(int64, tag = "4")]
    pub end_time: i64,
    #[prost(message, repeated, tag = "5")]
    pub refs: Vec<SegmentReference>,
    #[prost(string, tag = "6")]
    pub operation_name: String,
    #[prost(string, tag = "7")]
    pub peer: String,
    /// 0 Entry, 1 Exit.
    #[prost(int32, tag = "8")]
    pub span_type: i32,
    /// 3 Http.
    #[prost(int32, tag = "9")]
    pub span_layer: i32,
    #[prost(int32, tag = "10")]
    pub component_id: i32,
    #[prost(bool, tag = "11")]
    pub is_error: bool,
    #[prost(message, repeated, tag = "12")]
    pub tags: Vec<KeyStringValuePair>,
}

/// `SegmentReference`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SegmentReference {
    /// 0 CrossProcess.
    #[prost(int32, tag = "1")]
    pub ref_type: i32,
    #[prost(string, tag = "2")]
    pub trace_id: String,
    #[prost(string, tag = "3")]
    pub parent_trace_segment_id: String,
    #[prost(int32, tag = "4")]
    pub parent_span_id: i32,
    #[prost(string, tag = "5")]
    pub parent_service: String,
    #[prost(string, tag = "6")]
    pub parent_service_instance: String,
    #[prost(string, tag = "7")]
    pub parent_endpoint: String,
    #[prost(string, tag = "8")]
    pub network_address_used_at_peer: String,
}

/// `KeyStringValuePair`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyStringValuePair {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Commands`: the collector's answer to a `collect` stream (its content is not used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Commands {}

pub const COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";
pub const SPAN_TYPE_EXIT: i32 = 1;
pub const LAYER_HTTP: i32 = 3;
/// Envoy's component id in SkyWalking's component list.
pub const COMPONENT_ENVOY: i32 = 9000;

/// The SkyWalking state of a traced request.
#[derive(Clone, Debug)]
pub struct Segment {
    pub trace_id: String,
    pub segment_id: String,
    pub sampled: bool,
    /// The caller's context from a valid `sw8`.
    pub parent: Option<sw8::Context>,
    /// The entry span's operation name: the request's path.
    pub endpoint: String,
    pub service: String,
    pub instance: String,
}

impl Segment {
    /// The `sw8` an upstream attempt carries: this segment's exit span `span_id`, towards `target`.
    pub fn header(&self, span_id: i32, target: &str) -> String {
        sw8::Context {
            sampled: self.sampled,
            trace_id: self.trace_id.clone(),
            segment_id: self.segment_id.clone(),
            span_id,
            service: self.service.clone(),
            instance: self.instance.clone(),
            endpoint: self.endpoint.clone(),
            target: target.to_string(),
        }
        .encode()
    }

    /// A `SegmentReference` to the caller's segment.
    pub fn reference(&self) -> Option<SegmentReference> {
        self.parent.as_ref().map(|p| SegmentReference {
            ref_type: 0,
            trace_id: p.trace_id.clone(),
            parent_trace_segment_id: p.segment_id.clone(),
            parent_span_id: p.span_id,
            parent_service: p.service.clone(),
            parent_service_instance: p.instance.clone(),
            parent_endpoint: p.endpoint.clone(),
            network_address_used_at_peer: p.target.clone(),
        })
    }
}

/// A new trace or segment id, in the form Envoy writes them (36 characters, 8-4-4-4-12, hexadecimal).
pub fn new_id() -> String {
    let hex = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Our tag names as the SkyWalking tracer writes them; `peer.address` becomes the span's peer.
pub fn tags(tags: Vec<(String, String)>) -> (Vec<KeyStringValuePair>, Option<String>, bool) {
    let mut peer = None;
    let mut error = false;
    let mut out = Vec::with_capacity(tags.len());
    for (key, value) in tags {
        let key = match key.as_str() {
            "peer.address" => {
                peer = Some(value);
                continue;
            }
            "http.url" => "url".to_string(),
            "http.status_code" => "status_code".to_string(),
            "error" => {
                error |= value == "true";
                key
            }
            _ => key,
        };
        out.push(KeyStringValuePair { key, value });
    }
    (out, peer, error)
}

/// An exit span's tags in Envoy's order (seen on the wire): those set while the attempt runs (`retry.count`,
/// `canceled`), then protocol and address, then the rest as the OpenTelemetry span has them.
pub fn exit_tags(mut tags: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut ordered = Vec::with_capacity(tags.len());
    for name in [
        "retry.count",
        "canceled",
        "http.protocol",
        "upstream_address",
    ] {
        if let Some(i) = tags.iter().position(|t| t.0 == name) {
            ordered.push(tags.remove(i));
        }
    }
    ordered.extend(tags);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_encode_as_skywalking_reads_them() {
        // Field numbers as Envoy 1.40 sent them: an entry span with parent -1, a reference, a tag.
        let segment = SegmentObject {
            trace_id: "t".into(),
            trace_segment_id: "s".into(),
            spans: vec![SpanObject {
                parent_span_id: -1,
                refs: vec![SegmentReference {
                    trace_id: "t".into(),
                    parent_span_id: 3,
                    ..Default::default()
                }],
                span_layer: LAYER_HTTP,
                tags: vec![KeyStringValuePair {
                    key: "k".into(),
                    value: "v".into(),
                }],
                ..Default::default()
            }],
            service: "a".into(),
            service_instance: "b".into(),
        };
        let bytes = segment.encode_to_vec();
        let expected: Vec<u8> = [
            &[0x0a, 1, b't', 0x12, 1, b's', 0x1a, 28][..],
            // span: parent_span_id -1 as a ten-byte varint.
            &[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[0x2a, 5, 0x12, 1, b't', 0x20, 3],
            &[0x48, 3],
            &[0x62, 6, 0x0a, 1, b'k', 0x12, 1, b'v'],
            &[0x22, 1, b'a', 0x2a, 1, b'b'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn tags_are_renamed_and_ordered_like_envoys() {
        let t = |k: &str, v: &str| (k.to_string(), v.to_string());
        let (tags, peer, error) = tags(vec![
            t("http.url", "http://h/p"),
            t("peer.address", "127.0.0.1"),
            t("http.status_code", "503"),
            t("error", "true"),
        ]);
        let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["url", "status_code", "error"]);
        assert_eq!(peer.as_deref(), Some("127.0.0.1"));
        assert!(error);
        let ordered = exit_tags(vec![
            t("component", "proxy"),
            t("retry.count", "1"),
            t("upstream_address", "a"),
            t("http.protocol", "HTTP/1.1"),
            t("canceled", "true"),
        ]);
        let keys: Vec<&str> = ordered.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "retry.count",
                "canceled",
                "http.protocol",
                "upstream_address",
                "component"
            ]
        );
        let id = new_id();
        assert_eq!(
            id.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }
}
