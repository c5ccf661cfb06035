//! `outrigger run` as a separate process, as users run it: its log goes to a file the test can read, its
//! admin API answers statistics, and it is stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Sidecar {
    child: Child,
    pub log: PathBuf,
    pub admin: u16,
}

impl Sidecar {
    /// Writes `config` to `dir/name.yaml`, starts `outrigger run` on it and waits for the admin API's `/ready`.
    pub fn start(dir: &Path, name: &str, config: &str, admin: u16) -> Sidecar {
        Self::start_with_env(dir, name, config, admin, &[])
    }

    /// `start`, with these environment variables set for the process.
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        config: &str,
        admin: u16,
        env: &[(&str, &str)],
    ) -> Sidecar {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = super::outrigger()
            .args(["run", "--concurrency", "1", "-c"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut sidecar = Sidecar { child, log, admin };
        let started = Instant::now();
        while get(("127.0.0.1", admin), "/ready").map(|r| r.0) != Some(200) {
            if let Some(status) = sidecar.child.try_wait().unwrap() {
                panic!(
                    "outrigger exited ({status}) before ready:\n{}",
                    sidecar.log_text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "outrigger was not ready in 20s:\n{}",
                sidecar.log_text()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        sidecar
    }

    /// Sends SIGTERM (as a platform stops a pod) and waits up to `limit` for the exit; returns whether it
    /// exited in time.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 5 s for a log line containing every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no log line with {needles:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The sum of the Prometheus samples named `name` whose labels include every `labels` pair.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let (_, text) = get(("127.0.0.1", self.admin), "/stats/prometheus").unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.0 GET: (status, body), or `None` when nothing answers.
pub fn get(address: (&str, u16), path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
