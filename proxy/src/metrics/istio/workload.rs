//! Who a side of a request is, in the words of Istio's labels: this proxy's workload from the bootstrap's
//! `node.metadata` (the keys Istio's injector writes), the peer's from its SPIFFE ID.

use serde_json::{Map, Value};
use std::sync::Arc;

/// `unknown`: Istio's word for a label it cannot fill.
pub const UNKNOWN: &str = "unknown";

/// One side's labels (`source_*` or `destination_*`), each already the text the series carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub principal: Arc<str>,
    pub app: Arc<str>,
    pub version: Arc<str>,
    pub canonical_service: Arc<str>,
    pub canonical_revision: Arc<str>,
    pub cluster: Arc<str>,
}

impl Default for Workload {
    fn default() -> Self {
        let unknown: Arc<str> = Arc::from(UNKNOWN);
        Workload {
            workload: unknown.clone(),
            namespace: unknown.clone(),
            principal: unknown.clone(),
            app: unknown.clone(),
            version: unknown.clone(),
            canonical_service: unknown.clone(),
            // Istio's default revision.
            canonical_revision: Arc::from("latest"),
            cluster: unknown,
        }
    }
}

impl Workload {
    /// This proxy, from Istio's node metadata: `WORKLOAD_NAME`, `NAMESPACE`, `CLUSTER_ID`, `LABELS`
    /// (`service.istio.io/canonical-name` and `-revision`, falling back as Istio does to
    /// `app.kubernetes.io/name`/`app` and `app.kubernetes.io/version`/`version`), and its SPIFFE ID from
    /// `SPIFFE_ID`, else `spiffe://<TRUST_DOMAIN|cluster.local>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>`.
    pub fn from_node(metadata: &Map<String, Value>) -> Self {
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let labels = metadata.get("LABELS").and_then(Value::as_object);
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels?.get(*k)?.as_str().filter(|s| !s.is_empty()))
        };
        let mut w = Workload::default();
        let principal = text("SPIFFE_ID").map(str::to_string).or_else(|| {
            let (ns, sa) = (text("NAMESPACE")?, text("SERVICE_ACCOUNT")?);
            let domain = text("TRUST_DOMAIN").unwrap_or("cluster.local");
            Some(format!("spiffe://{domain}/ns/{ns}/sa/{sa}"))
        });
        if let Some(p) = principal {
            w = w.with_principal(&p);
        }
        let set = |field: &mut Arc<str>, value: Option<&str>| {
            if let Some(v) = value {
                *field = Arc::from(v);
            }
        };
        set(&mut w.workload, text("WORKLOAD_NAME"));
        set(&mut w.namespace, text("NAMESPACE"));
        set(&mut w.cluster, text("CLUSTER_ID"));
        let app = label(&["app.kubernetes.io/name", "app"]);
        let version = label(&["app.kubernetes.io/version", "version"]);
        set(&mut w.app, app);
        set(&mut w.version, version);
        set(
            &mut w.canonical_service,
            label(&["service.istio.io/canonical-name"])
                .or(app)
                .or(text("WORKLOAD_NAME")),
        );
        set(
            &mut w.canonical_revision,
            label(&["service.istio.io/canonical-revision"]).or(version),
        );
        w
    }

    /// A peer known only by its SPIFFE ID (`spiffe://<domain>/ns/<ns>/sa/<sa>`): its principal and namespace;
    /// the rest stays `unknown` (Istio learns it by metadata exchange, which a plain mTLS peer does not do).
    pub fn from_spiffe(uri: Option<&str>) -> Self {
        match uri {
            Some(uri) => Workload::default().with_principal(uri),
            None => Workload::default(),
        }
    }

    /// The principal, and the namespace from its `/ns/<ns>/` when none is known yet.
    pub fn with_principal(mut self, uri: &str) -> Self {
        self.principal = Arc::from(uri);
        if &*self.namespace == UNKNOWN
            && let Some(ns) = spiffe_namespace(uri)
        {
            self.namespace = Arc::from(ns);
        }
        self
    }
}

/// The `<ns>` of `spiffe://<domain>/ns/<ns>/sa/<sa>`.
fn spiffe_namespace(uri: &str) -> Option<&str> {
    let path = uri.strip_prefix("spiffe://")?.split_once('/')?.1;
    let rest = path.strip_prefix("ns/")?;
    let ns = rest.split('/').next()?;
    (!ns.is_empty()).then_some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_metadata_names_the_workload_as_istio_does() {
        let metadata = serde_json::json!({
            "WORKLOAD_NAME": "reviews-v2", "NAMESPACE": "shop", "SERVICE_ACCOUNT": "reviews",
            "LABELS": {"app": "reviews", "version": "v2"}
        });
        let w = Workload::from_node(metadata.as_object().unwrap());
        assert_eq!(&*w.workload, "reviews-v2");
        assert_eq!(&*w.namespace, "shop");
        assert_eq!(&*w.principal, "spiffe://cluster.local/ns/shop/sa/reviews");
        assert_eq!(&*w.canonical_service, "reviews");
        assert_eq!(&*w.canonical_revision, "v2");
        assert_eq!(&*w.cluster, UNKNOWN);
        let bare = Workload::from_node(&Map::new());
        assert_eq!(bare, Workload::default());
        assert_eq!(&*bare.canonical_revision, "latest");
    }

    #[test]
    fn a_spiffe_id_gives_the_namespace() {
        let w = Workload::from_spiffe(Some("spiffe://cluster.local/ns/a/sa/client"));
        assert_eq!(&*w.namespace, "a");
        assert_eq!(&*w.workload, UNKNOWN);
        assert_eq!(spiffe_namespace("spiffe://td/sa/x"), None);
        assert_eq!(&*Workload::from_spiffe(None).principal, UNKNOWN);
    }
}
