//! Injecting one Kubernetes object: finding its pod template, deciding whether to inject it, and adding the
//! containers, volume and annotations of `containers.yaml`.

use super::Error;
use serde_yaml_ng::{Mapping, Value};

/// `"false"` on an object or its pod template leaves it as it is.
pub const INJECT_ANNOTATION: &str = "outrigger.io/inject";
/// Set on an injected pod template: injecting it again changes nothing.
pub const STATUS_ANNOTATION: &str = "outrigger.io/status";
const STATUS: &str = r#"{"initContainers":["outrigger-init","outrigger-sidecar"],"volumes":["outrigger-bootstrap"]}"#;

const CONTAINERS: &str = include_str!("containers.yaml");
const BOOTSTRAP: &str = include_str!("bootstrap.yaml");

/// Kinds whose pods are injected, and where their pod template is.
const WORKLOADS: [(&str, &[&str]); 6] = [
    ("Pod", &[]),
    ("Deployment", &["spec", "template"]),
    ("StatefulSet", &["spec", "template"]),
    ("DaemonSet", &["spec", "template"]),
    ("Job", &["spec", "template"]),
    ("ReplicaSet", &["spec", "template"]),
];
/// Kinds that make pods but are not injected: refused, so that no workload is silently left without a sidecar.
const REFUSED: [&str; 2] = ["CronJob", "ReplicationController"];

/// The parts `containers.yaml` adds, with the images and the bootstrap filled in.
pub struct Added {
    init_containers: Vec<Value>,
    volumes: Vec<Value>,
    annotations: Mapping,
}

impl Added {
    pub fn new(options: &super::Options) -> Result<Self, Error> {
        let (host, port) = control_plane(&options.control_plane)?;
        let bootstrap = BOOTSTRAP
            .replace("{{control_plane_host}}", host)
            .replace("{{control_plane_port}}", &port.to_string());
        // The template is part of the binary; tests/inject.rs proves it parses and has these shapes.
        let template: Value = serde_yaml_ng::from_str(CONTAINERS).unwrap_or(Value::Null);
        let list = |key: &str| {
            template
                .get(key)
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default()
        };
        let mut init_containers = list("initContainers");
        for container in &mut init_containers {
            let Some(container) = container.as_mapping_mut() else {
                continue;
            };
            let sidecar = container.get("restartPolicy").is_some();
            let image = if sidecar {
                &options.proxy_image
            } else {
                &options.init_image
            };
            container.insert("image".into(), image.as_str().into());
            if let Some(env) = container.get_mut("env").and_then(Value::as_sequence_mut) {
                for variable in env.iter_mut().filter_map(Value::as_mapping_mut) {
                    if variable.get("name").and_then(Value::as_str) == Some("OUTRIGGER_BOOTSTRAP") {
                        variable.insert(
                            "value".into(),
                            bootstrap_without_comments(&bootstrap).into(),
                        );
                    }
                }
            }
        }
        Ok(Self {
            init_containers,
            volumes: list("volumes"),
            annotations: template
                .get("annotations")
                .and_then(Value::as_mapping)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// HOST:PORT of `--control-plane`.
fn control_plane(address: &str) -> Result<(&str, u16), Error> {
    let bad = || Error::ControlPlane(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

/// The bootstrap as it goes into the pod: its comments are for readers of the source, not of every pod spec.
fn bootstrap_without_comments(bootstrap: &str) -> String {
    let mut kept: String = bootstrap
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    kept.truncate(kept.trim_end().len());
    kept
}

/// What an error says the object is: `Deployment web`.
fn describe(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    match object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_owned(),
    }
}

/// Injects `object` (document `document`) in place, if it is a workload that is not opted out or injected.
pub fn inject_object(object: &mut Value, document: usize, added: &Added) -> Result<(), Error> {
    let field_error = |object: &Value, field: &str, problem: &str| Error::Field {
        document,
        object: describe(object),
        field: field.to_owned(),
        problem: problem.to_owned(),
    };
    if !object.is_mapping() {
        return Err(Error::NotObject { document });
    }
    let Some(kind) = object
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(field_error(
            object,
            "kind",
            "missing: every Kubernetes object names its kind",
        ));
    };
    if kind == "List" {
        let Some(items) = object.get_mut("items").and_then(Value::as_sequence_mut) else {
            return Ok(());
        };
        for item in items {
            inject_object(item, document, added)?;
        }
        return Ok(());
    }
    if opted_out(
        object.get("metadata"),
        document,
        &describe(object),
        "metadata",
    )? {
        return Ok(());
    }
    if REFUSED.contains(&kind.as_str()) {
        return Err(field_error(
            object,
            "kind",
            &format!(
                "{kind} is not injected (only Pod, Deployment, StatefulSet, DaemonSet, Job and ReplicaSet are); annotate it {INJECT_ANNOTATION}: \"false\" to pass it through, or inject the workload it creates"
            ),
        ));
    }
    let Some((_, template_path)) = WORKLOADS.iter().find(|(k, _)| *k == kind) else {
        return Ok(());
    };
    let prefix = template_path.join(".");
    let dotted = |field: &str| {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}.{field}")
        }
    };
    let description = describe(object);
    let error = |field: &str, problem: &str| Error::Field {
        document,
        object: description.clone(),
        field: dotted(field),
        problem: problem.to_owned(),
    };
    let mut template = &mut *object;
    for key in *template_path {
        template = template
            .get_mut(*key)
            .filter(|v| v.is_mapping())
            .ok_or_else(|| error("", "missing or not a mapping"))?;
    }
    let template = template
        .as_mapping_mut()
        .ok_or_else(|| error("", "not a mapping"))?;
    let metadata = template.get("metadata").cloned();
    if !template_path.is_empty()
        && opted_out(
            metadata.as_ref(),
            document,
            &description,
            &dotted("metadata"),
        )?
    {
        return Ok(());
    }
    let annotations = metadata
        .as_ref()
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_mapping);
    if annotations.is_some_and(|a| a.contains_key(STATUS_ANNOTATION)) {
        return Ok(());
    }

    let spec = template
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| error("spec", "missing or not a mapping"))?;
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Err(error(
            "spec.hostNetwork",
            &format!(
                "true: a pod on the node's network cannot have its traffic redirected to a sidecar; annotate it {INJECT_ANNOTATION}: \"false\""
            ),
        ));
    }
    match spec.get("containers").and_then(Value::as_sequence) {
        Some(containers) if !containers.is_empty() => {}
        _ => {
            return Err(error(
                "spec.containers",
                "missing or empty: a pod needs a container",
            ));
        }
    }
    for list in ["containers", "initContainers", "volumes"] {
        let names = spec
            .get(list)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("name").and_then(Value::as_str));
        for name in names {
            if name.starts_with("outrigger-") {
                return Err(error(
                    &format!("spec.{list}"),
                    &format!(
                        "{name:?} is already there but the pod has no {STATUS_ANNOTATION} annotation: names starting with outrigger- are the injector's; rename it"
                    ),
                ));
            }
        }
    }
    for list in ["initContainers", "volumes"] {
        if spec
            .get(list)
            .is_some_and(|v| !v.is_sequence() && !v.is_null())
        {
            return Err(error(&format!("spec.{list}"), "not a list"));
        }
    }

    // Ours first: the init step, then the sidecar, then the app's own init containers (which then run with
    // the mesh in place).
    let mut init_containers = added.init_containers.clone();
    if let Some(existing) = spec.get("initContainers").and_then(Value::as_sequence) {
        init_containers.extend(existing.iter().cloned());
    }
    spec.insert("initContainers".into(), Value::Sequence(init_containers));
    let mut volumes = spec
        .get("volumes")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    volumes.extend(added.volumes.iter().cloned());
    spec.insert("volumes".into(), Value::Sequence(volumes));

    let metadata = template
        .entry("metadata".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let metadata = metadata
        .as_mapping_mut()
        .ok_or_else(|| error("metadata", "not a mapping"))?;
    let annotations = metadata
        .entry("annotations".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if annotations.is_null() {
        *annotations = Value::Mapping(Mapping::new());
    }
    let annotations = annotations
        .as_mapping_mut()
        .ok_or_else(|| error("metadata.annotations", "not a mapping"))?;
    // A pod that already has scrape annotations keeps them, untouched: mixing its port with our path (or the
    // reverse) would scrape neither. Its sidecar's statistics are still on 15090.
    let scraped = annotations
        .keys()
        .filter_map(Value::as_str)
        .any(|key| key.starts_with("prometheus.io/"));
    if !scraped {
        for (key, value) in &added.annotations {
            annotations.insert(key.clone(), value.clone());
        }
    }
    annotations.insert(STATUS_ANNOTATION.into(), STATUS.into());
    Ok(())
}

/// Whether `metadata.annotations` says `outrigger.io/inject: "false"`; any value but "true" or "false" is an
/// error, so that a typo never injects (or skips) by surprise.
fn opted_out(
    metadata: Option<&Value>,
    document: usize,
    object: &str,
    field: &str,
) -> Result<bool, Error> {
    let Some(value) = metadata
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(INJECT_ANNOTATION))
    else {
        return Ok(false);
    };
    match value.as_str() {
        Some("false") => Ok(true),
        Some("true") => Ok(false),
        _ => Err(Error::Field {
            document,
            object: object.to_owned(),
            field: format!("{field}.annotations.{INJECT_ANNOTATION}"),
            problem: format!(
                "{}: expected \"true\" or \"false\" (a string)",
                serde_yaml_ng::to_string(value)
                    .unwrap_or_default()
                    .trim_end()
            ),
        }),
    }
}
