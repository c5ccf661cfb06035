//! `outrigger inject -f app.yaml`: a Kubernetes manifest (any number of documents) written back with the
//! Outrigger init and sidecar containers, volume and annotations added to every workload (Pod, Deployment,
//! StatefulSet, DaemonSet, Job, ReplicaSet; the items of a List), like `istioctl kube-inject`.
//!
//! Other objects (Service, ConfigMap, ...) pass through unchanged. Injecting twice changes nothing (an injected
//! pod carries the `outrigger.io/status` annotation); a workload annotated `outrigger.io/inject: "false"` is
//! left alone; what cannot be injected (a CronJob, a pod on the host's network, a container already named like
//! ours) is refused, naming the document and the field. YAML comments are not kept (serde_yaml_ng drops them);
//! the order of fields is.

mod pod;

use serde::Deserialize;
use serde_yaml_ng::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What the added containers run and where the sidecars find the control plane.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The sidecar image (deploy/build-images.sh builds `outrigger:dev`).
    #[arg(long = "proxy-image", default_value = "outrigger:dev")]
    pub proxy_image: String,
    /// The iptables init image (deploy/build-images.sh builds `outrigger-init:dev`).
    #[arg(long = "init-image", default_value = "outrigger-init:dev")]
    pub init_image: String,
    /// The control plane's address, HOST:PORT (deploy/kubernetes runs it as this Service).
    #[arg(
        long = "control-plane",
        default_value = "outrigger-control-plane.outrigger-system.svc:15010"
    )]
    pub control_plane: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("document {document}: not YAML: {source}")]
    Yaml {
        document: usize,
        source: serde_yaml_ng::Error,
    },
    #[error(
        "document {document}: not a Kubernetes object: expected a mapping with apiVersion and kind"
    )]
    NotObject { document: usize },
    #[error("document {document} ({object}): {field}: {problem}")]
    Field {
        document: usize,
        object: String,
        field: String,
        problem: String,
    },
    #[error("--control-plane {0:?}: expected HOST:PORT (a DNS name or an IP address, and a port)")]
    ControlPlane(String),
    #[error("cannot write the output: {0}")]
    Write(serde_yaml_ng::Error),
}

/// `outrigger inject`: reads `file` (`-` for standard input), writes the injected manifest to `output` or
/// standard output.
pub fn run(file: &Path, output: Option<&Path>, options: &Options) -> ExitCode {
    let result = read(file).and_then(|text| inject(&text, options));
    let text = match result {
        Ok(text) => text,
        Err(e) => {
            eprintln!("outrigger inject: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| format!("standard output: {e}"))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outrigger inject: cannot write {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(file: &Path) -> Result<String, Error> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(text)
}

/// The manifest `text` with every workload injected: the documents in their order, separated by `---`.
pub fn inject(text: &str, options: &Options) -> Result<String, Error> {
    let added = pod::Added::new(options)?;
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let mut value = Value::deserialize(document).map_err(|source| Error::Yaml {
            document: number,
            source,
        })?;
        // An empty document (`---` at the end, or a comment alone) has nothing to write back.
        if value.is_null() {
            continue;
        }
        pod::inject_object(&mut value, number, &added)?;
        documents.push(serde_yaml_ng::to_string(&value).map_err(Error::Write)?);
    }
    Ok(documents.join("---\n"))
}
