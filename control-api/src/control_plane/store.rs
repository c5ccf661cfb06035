//! What the control plane serves: the resources of a configuration folder, by node.
//!
//! The folder's own files are shared by every node; a sub-folder named after a node id adds resources for that
//! node only, and replaces a shared resource of the same type and name.

use outrigger_config::resource::documents::TypedResource;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// One resource ready to send: its encoded message and a version that changes when its content does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Arc<Vec<u8>>,
    pub version: String,
}

impl Entry {
    pub fn new(value: Vec<u8>) -> Self {
        let version = short_hash(&value);
        Self {
            value: Arc::new(value),
            version,
        }
    }
}

/// Resources by type URL, then by name.
pub type Resources = BTreeMap<String, BTreeMap<String, Entry>>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    pub shared: Resources,
    /// By node id.
    pub nodes: BTreeMap<String, Resources>,
}

impl Store {
    pub fn add(resources: &mut Resources, resource: &TypedResource) {
        resources
            .entry(resource.type_url.clone())
            .or_default()
            .insert(resource.name.clone(), Entry::new(resource.value.clone()));
    }

    /// The resources of `type_url` that `node` sees: the shared ones, with the node's own on top.
    pub fn view(&self, node: &str, type_url: &str) -> BTreeMap<String, Entry> {
        let mut view = self.shared.get(type_url).cloned().unwrap_or_default();
        if let Some(own) = self.nodes.get(node).and_then(|r| r.get(type_url)) {
            view.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        view
    }
}

/// Listeners and clusters: the types a client may ask for as a whole (wildcard), by sending no names.
pub fn is_wildcard_type(type_url: &str) -> bool {
    use outrigger_config::resource::documents::{CLUSTER, LISTENER};
    matches!(type_url, LISTENER | CLUSTER)
}

/// The node id a request carries, if any (only the first request of a stream must carry it).
pub fn node_id(node: Option<&envoy_types::pb::envoy::config::core::v3::Node>) -> Option<&str> {
    node.map(|n| n.id.as_str()).filter(|id| !id.is_empty())
}

/// A short, stable digest for version strings (the same content always gives the same version).
pub fn short_hash(value: &impl Hash) -> String {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The version of a set of resources: changes when any of them, or the set itself, changes.
pub fn version_of<'a>(entries: impl Iterator<Item = (&'a String, &'a Entry)>) -> String {
    let pairs: Vec<(&String, &String)> = entries.map(|(name, e)| (name, &e.version)).collect();
    short_hash(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(type_url: &str, name: &str, value: &[u8]) -> TypedResource {
        TypedResource {
            type_url: type_url.into(),
            name: name.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn a_node_sees_the_shared_resources_with_its_own_on_top() {
        let mut store = Store::default();
        Store::add(&mut store.shared, &resource("c", "a", b"shared a"));
        Store::add(&mut store.shared, &resource("c", "b", b"shared b"));
        let own = store.nodes.entry("node-1".into()).or_default();
        Store::add(own, &resource("c", "b", b"own b"));
        let seen = store.view("node-1", "c");
        assert_eq!(*seen["a"].value, b"shared a");
        assert_eq!(*seen["b"].value, b"own b");
        assert_eq!(*store.view("node-2", "c")["b"].value, b"shared b");
        assert!(store.view("node-1", "other").is_empty());
    }

    #[test]
    fn versions_follow_the_content() {
        assert_eq!(
            Entry::new(b"x".to_vec()).version,
            Entry::new(b"x".to_vec()).version
        );
        assert_ne!(
            Entry::new(b"x".to_vec()).version,
            Entry::new(b"y".to_vec()).version
        );
        let one: BTreeMap<String, Entry> = [("a".to_string(), Entry::new(b"x".to_vec()))].into();
        let two: BTreeMap<String, Entry> = [("b".to_string(), Entry::new(b"x".to_vec()))].into();
        assert_ne!(version_of(one.iter()), version_of(two.iter()));
    }
}
