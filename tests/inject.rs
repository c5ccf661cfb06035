//! `outrigger inject` on the manifests of tests/configs/inject/ against their golden files: NAME.yaml gives
//! NAME.out.yaml (the injected manifest) or, when NAME.err exists, fails with exactly that message. Every output
//! injected again is unchanged; every output and every manifest in deploy/kubernetes/ passes
//! `kubernetes-validate --strict` (Kubernetes 1.29, the first with native sidecars on by default, and 1.37);
//! the bootstrap an injected pod writes for its sidecar is one `outrigger validate` accepts.
//!
//! `UPDATE_GOLDEN=1 cargo test --test inject` rewrites the golden files from what the injector does now (read
//! the diff before committing it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn folder() -> PathBuf {
    support::repo_root().join("tests/configs/inject")
}

/// `outrigger inject -f FILE`, FILE relative to the repository (the golden errors name it).
fn inject(file: &Path) -> Output {
    let root = support::repo_root();
    support::outrigger()
        .args(["inject", "-f"])
        .arg(file.strip_prefix(&root).unwrap_or(file))
        .output()
        .unwrap()
}

/// The inputs: every NAME.yaml that is not a NAME.out.yaml.
fn inputs() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(folder())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".yaml") && !name.ends_with(".out.yaml")
        })
        .collect();
    inputs.sort();
    inputs
}

fn outputs() -> Vec<PathBuf> {
    inputs()
        .into_iter()
        .map(|input| input.with_extension("out.yaml"))
        .filter(|output| output.exists())
        .collect()
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

#[test]
fn inject_matches_the_golden_files() {
    let inputs = inputs();
    assert!(inputs.len() >= 10, "{inputs:?}");
    for input in inputs {
        let output = inject(&input);
        let out_file = input.with_extension("out.yaml");
        let err_file = input.with_extension("err");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        if update() {
            let _ = std::fs::remove_file(&out_file);
            let _ = std::fs::remove_file(&err_file);
            if output.status.success() {
                std::fs::write(&out_file, &stdout).unwrap();
            } else {
                std::fs::write(&err_file, &stderr).unwrap();
            }
            continue;
        }
        if err_file.exists() {
            assert!(
                !output.status.success(),
                "{}: expected a refusal",
                input.display()
            );
            assert!(stdout.is_empty(), "{}: wrote {stdout}", input.display());
            assert_eq!(
                stderr,
                std::fs::read_to_string(&err_file).unwrap(),
                "{}",
                input.display()
            );
        } else {
            assert!(output.status.success(), "{}: {stderr}", input.display());
            assert_eq!(
                stdout,
                std::fs::read_to_string(&out_file)
                    .unwrap_or_else(|e| panic!("{}: {e}", out_file.display())),
                "{} (UPDATE_GOLDEN=1 rewrites the golden files)",
                input.display()
            );
        }
    }
}

/// Injecting an injected manifest changes nothing, and what was not a workload (or was opted out) is as it was.
#[test]
fn inject_is_idempotent() {
    let outputs = outputs();
    assert!(outputs.len() >= 5, "{outputs:?}");
    for file in outputs {
        let again = inject(&file);
        assert!(again.status.success(), "{}", file.display());
        assert_eq!(
            String::from_utf8(again.stdout).unwrap(),
            std::fs::read_to_string(&file).unwrap(),
            "{} injected again",
            file.display()
        );
    }
    // What the injector adds, and only to the workloads: 4 of the 6 documents of workloads.yaml are injected
    // (5 with the empty one, which is dropped), the Service and the ConfigMap are not.
    let workloads = std::fs::read_to_string(folder().join("workloads.out.yaml")).unwrap();
    assert_eq!(workloads.matches("outrigger.io/status").count(), 4);
    assert_eq!(workloads.matches("\n---\n").count(), 5);
    let opted_out = std::fs::read_to_string(folder().join("opted-out.out.yaml")).unwrap();
    assert!(!opted_out.contains("outrigger-sidecar"), "{opted_out}");
}

/// The sidecar of an injected pod starts on a bootstrap `outrigger validate` accepts, once Kubernetes has
/// replaced the downward-API variables.
#[test]
fn injected_bootstrap_is_valid() {
    let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(folder().join("deployment.out.yaml")).unwrap(),
    )
    .unwrap();
    let init = &manifest["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "outrigger-init");
    let bootstrap = init["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "OUTRIGGER_BOOTSTRAP")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .replace("$(POD_NAME)", "web-7d4b9c-x2x9z")
        .replace("$(POD_NAMESPACE)", "shop")
        .replace("$(SERVICE_ACCOUNT)", "web");
    let dir = std::env::temp_dir().join(format!("outrigger-inject-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bootstrap.yaml");
    std::fs::write(&file, &bootstrap).unwrap();
    let validated = support::outrigger()
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        validated.status.success(),
        "{}{bootstrap}",
        String::from_utf8_lossy(&validated.stdout)
    );
    // The sidecar is a native sidecar that the app waits for, as UID 1337 on a read-only root.
    let sidecar = &manifest["spec"]["template"]["spec"]["initContainers"][1];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["startupProbe"]["httpGet"]["port"], 15021);
    assert_eq!(sidecar["securityContext"]["runAsUser"], 1337);
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        bootstrap.contains("SERVICE_ACCOUNT: web, OUTRIGGER_ISTIO_STATS: true}"),
        "{bootstrap}"
    );
}

/// kubernetes-validate --strict accepts every inject output and every manifest of deploy/kubernetes/.
#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let Some(validate) = support::peer("kubernetes-validate") else {
        return;
    };
    let mut files = outputs();
    let kubernetes = support::repo_root().join("deploy/kubernetes");
    let mut manifests: Vec<PathBuf> = [kubernetes.clone(), kubernetes.join("apps")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 3, "{manifests:?}");
    files.extend(manifests);
    // kubernetes-validate has no schema for a List: its items are validated as documents of their own.
    let dir = std::env::temp_dir().join(format!("outrigger-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in &mut files {
        let text = std::fs::read_to_string(&*file).unwrap();
        let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
            Ok(value) => value,
            Err(_) => continue, // several documents: not a List
        };
        if value["kind"] == "List" {
            let items: Vec<String> = value["items"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|item| serde_yaml_ng::to_string(item).unwrap())
                .collect();
            let split = dir.join(file.file_name().unwrap());
            std::fs::write(&split, items.join("---\n")).unwrap();
            *file = split;
        }
    }
    for version in ["1.29.0", "1.37.0"] {
        let output = Command::new(&validate)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "kubernetes-validate {version}:\n{text}"
        );
        // One "passed" line per object: nothing was skipped as unknown.
        assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    }
    // A manifest it must refuse, so that a validator accepting anything cannot pass this test.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: x, image: x, restart: Always}]\n",
    )
    .unwrap();
    let refused = Command::new(&validate)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !refused.status.success(),
        "kubernetes-validate --strict accepted an unknown field"
    );
}

/// deploy/kubernetes/demo.yaml is deploy/kubernetes/apps/demo.yaml injected with the default options (whose
/// control plane address is the Service of deploy/kubernetes/control-plane.yaml).
#[test]
fn kubernetes_demo_is_its_apps_injected() {
    let root = support::repo_root();
    let injected = inject(&root.join("deploy/kubernetes/apps/demo.yaml"));
    assert!(injected.status.success());
    assert_eq!(
        String::from_utf8(injected.stdout).unwrap(),
        std::fs::read_to_string(root.join("deploy/kubernetes/demo.yaml")).unwrap(),
        "regenerate it: outrigger inject -f deploy/kubernetes/apps/demo.yaml -o deploy/kubernetes/demo.yaml"
    );
    let control_plane =
        std::fs::read_to_string(root.join("deploy/kubernetes/control-plane.yaml")).unwrap();
    assert!(control_plane.contains("name: outrigger-control-plane\n  namespace: outrigger-system"));
    assert!(control_plane.contains("port: 15010"));
}

/// The resources of the control plane's ConfigMap (deploy/kubernetes/control-plane.yaml) pass the checks
/// `outrigger control-plane` makes before serving a file: all six are loaded, none refused.
#[test]
fn kubernetes_control_plane_resources_load() {
    use std::io::{BufRead, BufReader};
    let root = support::repo_root();
    let text = std::fs::read_to_string(root.join("deploy/kubernetes/control-plane.yaml")).unwrap();
    let config_map = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| <serde_yaml_ng::Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let dir = std::env::temp_dir().join(format!("outrigger-k8s-xds-{}", std::process::id()));
    let xds = dir.join("xds");
    std::fs::create_dir_all(&xds).unwrap();
    std::fs::write(
        xds.join("mesh.yaml"),
        config_map["data"]["mesh.yaml"].as_str().unwrap(),
    )
    .unwrap();
    let made = support::outrigger()
        .args(["ca", "init", "--out"])
        .arg(dir.join("ca"))
        .output()
        .unwrap();
    assert!(made.status.success());
    let port = support::tcp::free_port();
    let mut guard = support::ChildGuard(
        support::outrigger()
            .args(["control-plane", "--config-dir"])
            .arg(&xds)
            .arg("--ca-dir")
            .arg(dir.join("ca"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = guard.0.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log.contains("serving xDS") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => log.push_str(&format!("{line}\n")),
            Err(_) => break,
        }
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(log.contains("mesh.yaml: 6 resources"), "{log}");
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
}

/// `-f -` reads standard input and `-o FILE` writes a file: the same bytes as `-f FILE` to standard output.
#[test]
fn inject_reads_standard_input_and_writes_a_file() {
    use std::io::Write;
    let input = folder().join("pod.yaml");
    let expected = std::fs::read_to_string(folder().join("pod.out.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("outrigger-inject-o-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.yaml");
    let mut child = support::outrigger()
        .args(["inject", "-f", "-", "-o"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&input).unwrap())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let written = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(written, expected);
}
