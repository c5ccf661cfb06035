//! The bootstrap's `node`, as the control plane sees it in requests.

use envoy_types::pb::envoy::config::core::v3 as core_pb;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use outrigger_config::model::Node;

/// `id`, `cluster`, `metadata`, `locality` and `user_agent_name` from the bootstrap; `user_agent_version` is
/// Outrigger's version.
pub fn proto(node: &Node) -> core_pb::Node {
    core_pb::Node {
        id: node.id.clone(),
        cluster: node.cluster.clone(),
        metadata: (!node.metadata.is_empty()).then(|| structure(&node.metadata)),
        locality: node.locality.as_ref().map(|l| core_pb::Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            sub_zone: l.sub_zone.clone(),
        }),
        user_agent_name: node.user_agent_name.clone(),
        user_agent_version_type: Some(core_pb::node::UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").to_string(),
        )),
        ..Default::default()
    }
}

fn structure(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
    }
}

fn value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value).collect(),
        }),
        J::Object(map) => Kind::StructValue(structure(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_locality_and_version_are_sent() {
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "ISTIO_VERSION".into(),
            serde_json::Value::String("1.24".into()),
        );
        metadata.insert("LABELS".into(), serde_json::json!({"app": "web", "n": 2}));
        let node = Node {
            id: "sidecar~10.0.0.1~web.ns~ns.svc.cluster.local".into(),
            cluster: "web.ns".into(),
            metadata,
            locality: Some(outrigger_config::model::cluster::Locality {
                region: "eu".into(),
                zone: "eu-1".into(),
                sub_zone: String::new(),
            }),
            user_agent_name: "outrigger".into(),
        };
        let sent = proto(&node);
        assert_eq!(sent.id, node.id);
        assert_eq!(sent.cluster, "web.ns");
        assert_eq!(sent.user_agent_name, "outrigger");
        assert_eq!(
            sent.user_agent_version_type,
            Some(core_pb::node::UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into()
            ))
        );
        assert_eq!(sent.locality.unwrap().zone, "eu-1");
        let metadata = sent.metadata.unwrap();
        assert_eq!(
            metadata.fields["ISTIO_VERSION"].kind,
            Some(Kind::StringValue("1.24".into()))
        );
        let Some(Kind::StructValue(labels)) = &metadata.fields["LABELS"].kind else {
            panic!("LABELS is a struct");
        };
        assert_eq!(labels.fields["n"].kind, Some(Kind::NumberValue(2.0)));
    }
}
