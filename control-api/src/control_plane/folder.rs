//! The configuration folder, read again whenever a file in it changes.
//!
//! Polling (every [`POLL_INTERVAL`]) rather than inotify: it sees files replaced by a rename (editors, Kubernetes
//! ConfigMap volumes swap a symlink), in folders created later, on any filesystem, with no extra dependency,
//! and a scan of unchanged files costs one `stat` each.

use super::store::{Store, short_hash};
use outrigger_config::Format;
use outrigger_config::resource::documents::{self, TypedResource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// A file's modification time and length: when both are unchanged the file is not read again.
type Stamp = (SystemTime, u64);

struct File {
    stamp: Stamp,
    /// A digest of the bytes last read.
    digest: String,
    /// The node the file belongs to (`None`: shared by every node).
    node: Option<String>,
    /// Its last good content: a file that fails the checks keeps serving what it held before.
    resources: Vec<TypedResource>,
}

pub struct Folder {
    root: PathBuf,
    files: BTreeMap<PathBuf, File>,
    /// The digest of a changed file's bytes at the last scan: with `settle`, a change is taken only once two
    /// scans read the same bytes, so a file caught half written is never served.
    pending: BTreeMap<PathBuf, String>,
}

impl Folder {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Reads the files that changed since the last scan. Returns whether what the folder serves changed. A file
    /// that fails the checks is reported (with its path and each problem) and keeps its last good content. With
    /// `settle`, a changed file is taken once two consecutive scans read the same bytes (the first scan of a
    /// folder takes the files as they are).
    pub fn scan(&mut self, settle: bool) -> std::io::Result<bool> {
        let found = self.list()?;
        let before = self.files.len();
        self.files.retain(|path, _| found.contains_key(path));
        self.pending.retain(|path, _| found.contains_key(path));
        let mut changed = self.files.len() != before;
        for (path, (stamp, node)) in found {
            // A file written twice within the filesystem's timestamp granularity can keep its stamp: a file
            // modified in the last seconds is read again on every scan until it settles.
            let settled = stamp.0.elapsed().is_ok_and(|age| age > SETTLE_TIME);
            let known = self.files.get(&path);
            if settled && known.is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!("{}: cannot read the file: {e}", path.display());
                    continue;
                }
            };
            let digest = short_hash(&bytes);
            if let Some(file) = self.files.get_mut(&path)
                && file.digest == digest
            {
                file.stamp = stamp;
                self.pending.remove(&path);
                continue;
            }
            if settle && self.pending.get(&path) != Some(&digest) {
                self.pending.insert(path, digest);
                continue;
            }
            self.pending.remove(&path);
            let previous = self.files.remove(&path).map(|f| f.resources);
            let resources = match check(&path, &bytes) {
                Some(resources) => {
                    changed |= previous.as_ref() != Some(&resources);
                    resources
                }
                None => previous.unwrap_or_default(),
            };
            self.files.insert(
                path,
                File {
                    stamp,
                    digest,
                    node,
                    resources,
                },
            );
        }
        Ok(changed)
    }

    /// What the folder serves now. A resource defined twice for the same node is served from the first file
    /// (in path order), and the other is reported.
    pub fn store(&self) -> Store {
        let mut store = Store::default();
        let mut origin: BTreeMap<(Option<&str>, &str, &str), &Path> = BTreeMap::new();
        for (path, file) in &self.files {
            for resource in &file.resources {
                let key = (
                    file.node.as_deref(),
                    resource.type_url.as_str(),
                    resource.name.as_str(),
                );
                if let Some(first) = origin.get(&key) {
                    tracing::warn!(
                        "{}: {} {:?} is also defined in {}; serving that one",
                        path.display(),
                        short_type(&resource.type_url),
                        resource.name,
                        first.display()
                    );
                    continue;
                }
                origin.insert(key, path);
                let resources = match &file.node {
                    None => &mut store.shared,
                    Some(node) => store.nodes.entry(node.clone()).or_default(),
                };
                Store::add(resources, resource);
            }
        }
        store
    }

    /// The resource files: `*.yaml`, `*.yml` and `*.json` in the folder (shared) and in its sub-folders (named by
    /// node id). Hidden files (editors' swap files, ConfigMap internals) are skipped.
    fn list(&self) -> std::io::Result<BTreeMap<PathBuf, (Stamp, Option<String>)>> {
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(&self.root)? {
            let path = entry?.path();
            if is_hidden(&path) {
                continue;
            }
            if path.is_dir() {
                let node = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let Ok(inner) = std::fs::read_dir(&path) else {
                    continue;
                };
                for entry in inner.flatten() {
                    let file = entry.path();
                    if let Some(stamp) = resource_file(&file) {
                        found.insert(file, (stamp, node.clone()));
                    }
                }
            } else if let Some(stamp) = resource_file(&path) {
                found.insert(path, (stamp, None));
            }
        }
        Ok(found)
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn resource_file(path: &Path) -> Option<Stamp> {
    let extension = path.extension()?.to_str()?;
    if is_hidden(path) || !matches!(extension, "yaml" | "yml" | "json") {
        return None;
    }
    let metadata = std::fs::metadata(path).ok()?;
    metadata.is_file().then(|| {
        (
            metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            metadata.len(),
        )
    })
}

/// A file's resources, or `None` after reporting why it cannot be served.
fn check(path: &Path, bytes: &[u8]) -> Option<Vec<TypedResource>> {
    let shown = path.display();
    match documents::parse(bytes, Format::from_file_name(&path.to_string_lossy())) {
        Ok((resources, warnings)) => {
            for warning in warnings.iter() {
                tracing::warn!("{shown}: {warning}");
            }
            tracing::info!("{shown}: {} resources", resources.len());
            Some(resources)
        }
        Err(problems) => {
            for problem in problems.errors() {
                tracing::error!("{shown}: {problem}");
            }
            tracing::error!("{shown}: not served; its previous content (if any) stays served");
            None
        }
    }
}

/// `Cluster` from `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
pub fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use outrigger_config::resource::documents::CLUSTER;

    fn cluster(name: &str, timeout: &str) -> String {
        format!(
            "resources:\n- \"@type\": {CLUSTER}\n  name: {name}\n  connect_timeout: {timeout}\n  load_assignment: {{cluster_name: {name}, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 198.18.0.2, port_value: 80}}}}}}}}]}}]}}\n"
        )
    }

    fn folder() -> (PathBuf, Folder) {
        let dir = std::env::temp_dir().join(format!(
            "outrigger-folder-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let folder = Folder::new(&dir);
        (dir, folder)
    }

    fn fastrand_suffix() -> u128 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    fn timeout_of(store: &Store, node: &str, name: &str) -> Option<Vec<u8>> {
        store
            .view(node, CLUSTER)
            .get(name)
            .map(|e| e.value.as_ref().clone())
    }

    #[test]
    fn shared_and_per_node_files_bad_files_keep_their_last_good_content() {
        let (dir, mut folder) = folder();
        std::fs::write(dir.join("clusters.yaml"), cluster("backend", "1s")).unwrap();
        std::fs::create_dir_all(dir.join("node-1")).unwrap();
        std::fs::write(dir.join("node-1/own.yaml"), cluster("backend", "2s")).unwrap();
        std::fs::write(dir.join(".swap.yaml"), "garbage: [").unwrap();
        assert!(folder.scan(false).unwrap());
        let store = folder.store();
        let shared = timeout_of(&store, "node-2", "backend").unwrap();
        let own = timeout_of(&store, "node-1", "backend").unwrap();
        assert_ne!(shared, own, "node-1 has its own backend");
        // Nothing changed: nothing to push.
        assert!(!folder.scan(false).unwrap());
        // A broken edit is not served; the last good content stays.
        std::fs::write(dir.join("clusters.yaml"), cluster("backend", "-1s")).unwrap();
        assert!(!folder.scan(false).unwrap());
        assert_eq!(
            timeout_of(&folder.store(), "node-2", "backend").unwrap(),
            shared
        );
        // A good edit is, once two scans have read the same bytes.
        std::fs::write(dir.join("clusters.yaml"), cluster("backend", "3s")).unwrap();
        assert!(!folder.scan(true).unwrap(), "read once: not taken yet");
        assert!(folder.scan(true).unwrap());
        assert_ne!(
            timeout_of(&folder.store(), "node-2", "backend").unwrap(),
            shared
        );
        // A removed file takes its resources away.
        std::fs::remove_file(dir.join("clusters.yaml")).unwrap();
        assert!(folder.scan(true).unwrap());
        assert!(timeout_of(&folder.store(), "node-2", "backend").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
