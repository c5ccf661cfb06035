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
        Self::spawn(dir, name, config, admin, &[], &[], &[])
    }

    /// As `start`, with more arguments to `run` (`--drain-time-s`, ...), and run through `wrapper` (a program
    /// and its arguments, to which the `outrigger` binary and its arguments are appended) when not empty.
    pub fn start_with(
        dir: &Path,
        name: &str,
        config: &str,
        admin: u16,
        wrapper: &[&std::ffi::OsStr],
        args: &[&str],
    ) -> Sidecar {
        Self::spawn(dir, name, config, admin, wrapper, args, &[])
    }

    /// `start`, with these environment variables set for the process.
    pub fn start_with_env(
        dir: &Path,
        name: &str,
        config: &str,
        admin: u16,
        env: &[(&str, &str)],
    ) -> Sidecar {
        Self::spawn(dir, name, config, admin, &[], &[], env)
    }

    fn spawn(
        dir: &Path,
        name: &str,
        config: &str,
        admin: u16,
        wrapper: &[&std::ffi::OsStr],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Sidecar {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = super::outrigger();
        if let Some((program, rest)) = wrapper.split_first() {
            let binary = command.get_program().to_owned();
            command = std::process::Command::new(program);
            command
                .current_dir(super::repo_root())
                .args(rest)
                .arg(binary);
        }
        let child = command
            .args(["run", "--concurrency", "1"])
            .args(args)
            .arg("-c")
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

    /// The process id, to read its memory and CPU time from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits up to `within` for the process to exit by itself; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The value of `name` in the admin API's `/stats` (Envoy's text form), 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        stat(self.admin, name)
    }

    /// Sends SIGTERM (as a platform stops a pod) and waits up to `limit` for the exit; returns whether it
    /// exited in time.
    pub fn terminate_and_wait(&mut self, limit: Duration) -> bool {
        self.terminate();
        self.wait_exit(limit).is_some()
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

/// The value of `name` in `/stats` (Envoy's text form) of the admin API on 127.0.0.1:`admin`, 0 when absent
/// (Envoy and Outrigger alike).
pub fn stat(admin: u16, name: &str) -> u64 {
    let text = stats_text(admin).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `/stats` over HTTP/1.1 (Envoy's admin API refuses HTTP/1.0), its body de-chunked if need be.
fn stats_text(admin: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", admin)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, mut body) = response.split_once("\r\n\r\n")?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(body.to_string());
    }
    let mut text = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(text);
        }
        text.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}
