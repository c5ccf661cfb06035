//! `outrigger await`: the app starts only once the sidecar is ready and exits with the app's status; with
//! `--shutdown` the sidecar stops after the app; without a sidecar the app is never started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::tcp::free_port;
use support::{ChildGuard, outrigger};

fn sidecar_config(admin: u16) -> String {
    format!(
        "admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}\nstatic_resources: {{}}\n"
    )
}

#[test]
fn the_app_runs_after_the_sidecar_is_ready_and_can_stop_it() {
    let dir = std::env::temp_dir().join(format!("outrigger-await-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let admin = free_port();
    let config = dir.join("sidecar.yaml");
    std::fs::write(&config, sidecar_config(admin)).unwrap();
    let marker = dir.join("ran");
    let _ = std::fs::remove_file(&marker);

    // The app is started before the sidecar: it waits, then runs once /ready answers 200, and its exit code (3)
    // is await's.
    let app = format!("echo ran > {}; exit 3", marker.display());
    let waiting = outrigger()
        .args([
            "await",
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--timeout",
            "20s",
        ])
        .args(["--", "sh", "-c", &app])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut waiting = ChildGuard(waiting);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "the app started before the sidecar");
    let sidecar = outrigger()
        .args(["run", "-c"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sidecar = ChildGuard(sidecar);
    let status = waiting.0.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");

    // --shutdown: the sidecar is asked to stop when the app exits, and does.
    let status = outrigger()
        .args([
            "await",
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--shutdown",
            "--",
            "true",
        ])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let started = Instant::now();
    while sidecar.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the sidecar did not stop after /quitquitquit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_ready_sidecar_the_app_is_never_started() {
    let dir = std::env::temp_dir().join(format!("outrigger-await-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let closed = free_port();
    let output = outrigger()
        .args([
            "await",
            "--admin",
            &format!("127.0.0.1:{closed}"),
            "--timeout",
            "500ms",
        ])
        .args(["--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the sidecar at 127.0.0.1:{closed} was not ready within 500ms"
        )) && stderr.contains("touch was not started"),
        "{stderr}"
    );
    assert!(!marker.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
