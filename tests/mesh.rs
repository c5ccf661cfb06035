//! Two "pods" as network namespaces joined by a veth pair (198.18.0.1 and 198.18.0.2), each with plain apps,
//! an `outrigger run` sidecar (as UID 1337) and the rules of the real `outrigger iptables install`. The apps are
//! not told about the sidecars: the kernel redirects their traffic. Between the sidecars every connection is
//! mutual TLS with SPIFFE identities; each pod's inbound side is STRICT and lets only the other pod's identity in.
//!
//! - From files: tests/configs/mesh/sidecar-mtls.yaml, certificates from `outrigger ca`.
//! - From `outrigger control-plane` (in pod A) over ADS: listeners and clusters from tests/configs/mesh/ads/,
//!   every certificate and trust bundle issued by the control plane's CA and delivered by SDS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mesh/pods.rs"]
mod pods;
mod support;

use pods::{B, Mesh, Sidecars, names, no_pem_files};
use std::time::{Duration, Instant};
use support::netns::can_run;
use support::pki::spiffe;

const OUT_HTTP: &str = "http.outbound_http.downstream_rq_total";
const IN_HTTP: &str = "http.inbound_http.downstream_rq_total";
const OUT_TCP: &str = "tcp.outbound_mesh_tcp.downstream_cx_total";
const IN_TCP: &str = "tcp.inbound_mesh_tcp.downstream_cx_total";
/// mTLS handshakes B's inbound listener completed.
const IN_TLS: &str = "listener.0.0.0.0_15006.ssl.handshake";

/// HTTP/1.1, h2c, gRPC and TCP from pod A's app reach pod B's apps through both sidecars, over mTLS: B's app
/// learns A's SPIFFE ID.
fn apps_reach_pod_b_over_mtls(mesh: &Mesh) {
    let url = format!("http://{B}:8080/hello");
    // HTTP/1.1 and h2c from the app in A; the sidecars in A (outbound) and B (inbound) both see them.
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    let whoami = mesh.curl_from_a(&[&format!("http://{B}:8080/whoami")]);
    assert!(
        whoami.starts_with(&format!("By={};Hash=", spiffe("pod-b")))
            && whoami
                .trim_end()
                .ends_with(&format!("URI={}", spiffe("pod-a"))),
        "{whoami}"
    );
    assert!(mesh.stat(false, IN_TLS) >= 1, "B's sidecar terminated mTLS");
    let h2c_url = format!("http://{B}:8081/");
    let h2 = mesh.curl_from_a(&["--http2-prior-knowledge", "-w", "%{http_version}", &h2c_url]);
    assert_eq!(h2, "pod-b h2c app\n2");
    assert!(
        mesh.stat(true, OUT_HTTP) >= 2,
        "A's outbound sidecar saw the requests"
    );
    assert!(
        mesh.stat(false, IN_HTTP) >= 2,
        "B's inbound sidecar saw the requests"
    );

    // gRPC unary and server streaming, from a grpcio client in A.
    let http_before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    let grpc = mesh.grpc.clone();
    let summary = mesh
        .a
        .exec(&["python3", &grpc, "call", &format!("{B}:9000")]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["unary"], "SERVING");
    assert_eq!(summary["stream"].as_array().unwrap().len(), 3, "{summary}");
    let http_after = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert!(
        http_after.0 > http_before.0 && http_after.1 > http_before.1,
        "gRPC went through both sidecars"
    );

    // Opaque TCP, and a server-speaks-first protocol on a port the default config keeps opaque.
    let apps = mesh.apps.clone();
    let echoed = mesh
        .a
        .exec(&["python3", &apps, "say", B, "7000", "opaque bytes"]);
    assert_eq!(echoed, "opaque bytes");
    let started = Instant::now();
    let greeting = mesh.a.exec(&["python3", &apps, "ask", B, "3306"]);
    assert_eq!(greeting, "220 pod-b ready\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the server-first protocol waited for detection"
    );
    assert!(mesh.stat(true, OUT_TCP) >= 2 && mesh.stat(false, IN_TCP) >= 2);
}

/// The series of an Istio metric on a pod's sidecar whose labels hold every one of `labels` (`key="value"`),
/// summed; 0 when there is none.
fn istio(mesh: &Mesh, a: bool, name: &str, labels: &[&str]) -> u64 {
    mesh.admin(a, "/stats/prometheus")
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|k| l.contains(k)))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.trim().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Istio's standard metrics (turned on by the node metadata in sidecar-mtls.yaml) after a known sequence from
/// A's app: 3 x 200 and 1 x 404 over HTTP/1.1, a gRPC call (two unary requests and a server stream), one TCP
/// connection. A reports as the source, B as the destination, with the SPIFFE IDs of both sides.
fn istio_metrics_count_a_known_sequence(mesh: &Mesh) {
    for _ in 0..3 {
        assert_eq!(
            mesh.curl_from_a(&[&format!("http://{B}:8080/hello")]),
            "pod-b says hi: /hello\n"
        );
    }
    let missing = mesh.curl_from_a(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{B}:8080/missing"),
    ]);
    assert_eq!(missing, "404");
    let grpc = mesh.grpc.clone();
    mesh.a
        .exec(&["python3", &grpc, "call", &format!("{B}:9000")]);
    let apps = mesh.apps.clone();
    assert_eq!(
        mesh.a
            .exec(&["python3", &apps, "say", B, "7000", "opaque bytes"]),
        "opaque bytes"
    );

    let (pod_a, pod_b) = (spiffe("pod-a"), spiffe("pod-b"));
    let principal = |side: &str, id: &str| format!("{side}_principal=\"{id}\"");
    // A, the client's sidecar: its own workload from the node metadata, the server's identity from the
    // certificate its upstream connection verified; the client side does not know the security policy.
    let a_labels = [
        "reporter=\"source\"".to_string(),
        "source_workload=\"pod-a\",source_workload_namespace=\"default\"".to_string(),
        principal("source", &pod_a),
        "source_app=\"pod-a\",source_version=\"v1\",source_canonical_service=\"pod-a-svc\",source_canonical_revision=\"v1\"".to_string(),
        "destination_workload=\"unknown\",destination_workload_namespace=\"default\"".to_string(),
        principal("destination", &pod_b),
        "connection_security_policy=\"unknown\"".to_string(),
    ];
    // B, the server's sidecar: the client known by its SPIFFE ID, itself by its node metadata; mutual TLS.
    let b_labels = [
        "reporter=\"destination\"".to_string(),
        "source_workload=\"unknown\",source_workload_namespace=\"default\"".to_string(),
        principal("source", &pod_a),
        "destination_workload=\"pod-b\",destination_workload_namespace=\"default\"".to_string(),
        principal("destination", &pod_b),
        "destination_canonical_service=\"pod-b-svc\"".to_string(),
        "connection_security_policy=\"mutual_tls\"".to_string(),
    ];
    let service = format!("destination_service=\"{B}\"");
    let http = |code: &str, grpc: &str, protocol: &str| {
        [
            format!("response_code=\"{code}\",grpc_response_status=\"{grpc}\""),
            format!("request_protocol=\"{protocol}\",response_flags=\"-\""),
            service.clone(),
        ]
    };
    for (a, side) in [(true, &a_labels), (false, &b_labels)] {
        let count = |name: &str, extra: &[String]| {
            let all: Vec<&str> = side.iter().chain(extra).map(String::as_str).collect();
            istio(mesh, a, name, &all)
        };
        mesh.wait_until("every request and connection is counted", || {
            count("istio_tcp_connections_closed_total", &[]) == 1
        });
        assert_eq!(
            count("istio_requests_total", &http("200", "", "http")),
            3,
            "{}",
            mesh.admin(a, "/stats/prometheus")
        );
        assert_eq!(count("istio_requests_total", &http("404", "", "http")), 1);
        // The gRPC call: Check (OK), Check of an unknown service (NOT_FOUND, 5), a Watch the client cancels.
        assert_eq!(count("istio_requests_total", &http("200", "0", "grpc")), 1);
        assert_eq!(count("istio_requests_total", &http("200", "5", "grpc")), 1);
        let grpc = ["request_protocol=\"grpc\"".to_string()];
        assert_eq!(count("istio_requests_total", &grpc), 3);
        assert_eq!(count("istio_requests_total", &[]), 7, "no other series");
        assert_eq!(
            count(
                "istio_request_duration_milliseconds_count",
                &http("200", "", "http")
            ),
            3
        );
        assert_eq!(
            count("istio_response_bytes_count", &http("404", "", "http")),
            1
        );
        // Wire bytes: more than the body ("pod-b says hi: /hello\n" is 22 bytes).
        assert!(count("istio_response_bytes_sum", &http("200", "", "http")) > 3 * 22);
        let tcp = ["request_protocol=\"tcp\",response_flags=\"-\"".to_string()];
        assert_eq!(count("istio_tcp_connections_opened_total", &tcp), 1);
        assert_eq!(count("istio_tcp_sent_bytes_total", &tcp), 12);
        assert_eq!(count("istio_tcp_received_bytes_total", &tcp), 12);
        assert_eq!(
            istio(mesh, a, "outrigger_istio_label_sets_overflow_total", &[]),
            0
        );
    }
}

#[test]
fn apps_talk_through_both_sidecars_without_knowing() {
    if !can_run() {
        return;
    }
    let mut mesh = Mesh::start(Sidecars::Files);
    let url = format!("http://{B}:8080/hello");
    istio_metrics_count_a_known_sequence(&mesh);
    apps_reach_pod_b_over_mtls(&mesh);

    // STRICT: a plaintext connection to B's app that bypasses A's sidecar (UID 1337 is not redirected) is
    // refused by B's sidecar; B's inbound counts it.
    let bypass = mesh
        .a
        .command(&[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!bypass.status.success(), "plaintext reached a STRICT pod");
    assert_eq!(
        mesh.stat(false, "listener.0.0.0.0_15006.no_filter_chain_match"),
        1
    );

    // Not captured: app to app over localhost, and the excluded port.
    let before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert_eq!(
        mesh.b.exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:8080/local"
        ]),
        "pod-b says hi: /local\n"
    );
    assert_eq!(
        mesh.curl_from_a(&[&format!("http://{B}:9999/excluded")]),
        "pod-b says hi: /excluded\n"
    );
    assert_eq!(
        (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP)),
        before
    );

    // A connection straight to the capture port has the proxy itself as destination: refused, not recursed.
    let code = mesh.curl_from_a(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:15001/",
    ]);
    assert_eq!(code, "503");

    // A restarted sidecar takes the traffic again (pod A runs nothing but its sidecar).
    mesh.a.stop_all();
    mesh.start_sidecar(true);
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    assert_eq!(mesh.stat(true, OUT_HTTP), 1, "the new sidecar carried it");

    // After uninstall the apps talk directly.
    for a in [true, false] {
        let binary = mesh.binary.clone();
        mesh.pod(a).exec(&[&binary, "iptables", "uninstall"]);
    }
    let before = (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP));
    assert_eq!(mesh.curl_from_a(&[&url]), "pod-b says hi: /hello\n");
    assert_eq!(
        (mesh.stat(true, OUT_HTTP), mesh.stat(false, IN_HTTP)),
        before
    );
}

/// TLS handshakes that failed, by reason (Prometheus, with the listener or cluster as a label).
const TLS_FAILURES: &str = "outrigger_tls_handshake_failure_total";
/// Connections a network RBAC filter closed (Prometheus, with its prefix as a label).
const RBAC_DENIED: &str = "envoy_rbac_denied_total";

#[test]
fn the_mesh_runs_on_the_control_plane_with_its_certificates() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::start(Sidecars::ControlPlane);
    apps_reach_pod_b_over_mtls(&mesh);

    // The identities are the control plane's: it issued both (the XFCC above carries them, and B trusts only
    // the CA it was sent as ROOTCA), the test made no certificate but the CA's own, and what each sidecar runs
    // names secrets, never a file.
    let issued = mesh.log("control-plane");
    for a in [true, false] {
        let (me, _) = names(a);
        assert!(
            issued
                .lines()
                .any(|l| l.contains("issued a workload certificate")
                    && l.contains(me)
                    && l.contains(&spiffe(me))),
            "{issued}"
        );
        // Two inbound chains and two mesh clusters, each naming both secrets.
        let dump: serde_json::Value = serde_json::from_str(&mesh.admin(a, "/config_dump")).unwrap();
        let dump = dump.to_string();
        let named = |secret: &str| dump.matches(secret).count();
        assert!(
            !dump.contains("filename")
                && named(r#""certificate_secret":{"name":"default""#) == 4
                && named(r#""validation_secret":{"name":"ROOTCA""#) == 4,
            "{me}: {dump}"
        );
    }
    assert!(no_pem_files(&mesh.pki.dir, &mesh.pki.dir.join("ca")));

    // The SAN rule of the combined validation context is A's own (the trust bundle comes from ROOTCA): expecting
    // another identity from B, A refuses B's certificate.
    let url = format!("http://{B}:8080/hello");
    let refused_before = san_mismatches(&mesh);
    mesh.write_node_resources("pod-a", &spiffe("pod-c"), &spiffe("pod-b"));
    mesh.wait_until("A's sidecar refuses B's identity", || {
        mesh.try_curl_from_a(&url)
            .is_some_and(|answer| answer.ends_with("503"))
    });
    assert!(
        san_mismatches(&mesh) > refused_before,
        "{}",
        mesh.admin(true, "/stats/prometheus")
    );
    mesh.write_node_resources("pod-a", &spiffe("pod-b"), &spiffe("pod-b"));
    mesh.wait_until("A's sidecar accepts B again", || {
        mesh.try_curl_from_a(&url).as_deref() == Some("pod-b says hi: /hello\n200")
    });

    // An edited listener reaches B's sidecar: RBAC that lets only `pod-c` in refuses A.
    let denied_before = mesh.counter(false, RBAC_DENIED, "\"inbound\"");
    mesh.write_node_resources("pod-b", &spiffe("pod-a"), &spiffe("pod-c"));
    mesh.wait_until("B's sidecar refuses A", || {
        mesh.try_curl_from_a(&url)
            .is_none_or(|answer| !answer.starts_with("pod-b says hi"))
    });
    assert!(
        mesh.counter(false, RBAC_DENIED, "\"inbound\"") > denied_before,
        "{}",
        mesh.admin(false, "/stats/prometheus")
    );
}

/// A's outbound mTLS handshakes that failed because B's certificate did not carry the expected SPIFFE ID.
fn san_mismatches(mesh: &Mesh) -> u64 {
    mesh.counter(true, TLS_FAILURES, "\"san_mismatch\"")
}
