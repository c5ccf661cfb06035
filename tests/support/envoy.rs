//! Real Envoy as a running peer: started on a config file, stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Envoy {
    child: Child,
    log: std::path::PathBuf,
}

impl Envoy {
    /// Starts `envoy` (one worker, no hot restart) on `config`; its log goes next to the config.
    pub fn start(envoy: &Path, config: &Path) -> Envoy {
        let log = config.with_extension("log");
        let child = Command::new(envoy)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "error",
                "-c",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Envoy { child, log }
    }

    /// Waits until `port` accepts connections; fails the test with Envoy's log if Envoy exits first.
    pub fn wait_for_port(&mut self, port: u16) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "Envoy exited ({status}) before serving:\n{}",
                    &log[..log.len().min(3000)]
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "Envoy did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
