//! Network namespaces for tests: a "pod" with its own loopback, addresses and iptables rules, created and
//! deleted by the test. Deleting the namespace removes its addresses and rules, so the host is left as it was.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace and everything started in it; dropping it stops the processes and deletes the namespace
/// (which takes its addresses and iptables rules with it), also when the test fails.
pub struct Namespace {
    pub name: String,
    pub children: Vec<Child>,
}

impl Namespace {
    pub fn create(name: String) -> Namespace {
        // A namespace left by an earlier run that was killed.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run(&["ip", "netns", "add", &name]);
        let ns = Namespace {
            name,
            children: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn spawn(&mut self, args: &[&str]) {
        let child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// As `spawn`, with the process's stdout and stderr in `log` (created anew).
    pub fn spawn_logged(&mut self, args: &[&str], log: &std::path::Path) {
        let file = std::fs::File::create(log).unwrap();
        let child = self
            .command(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Polls `curl` inside the namespace until it answers.
    pub fn wait_for(&self, url: &str) {
        let started = Instant::now();
        while !self
            .command(&["curl", "-sf", "--max-time", "1", url])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{url} never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Namespace {
    /// Stops every process started in the namespace.
    pub fn stop_all(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.stop_all();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

/// Root, `ip`, `iptables` and `curl`: required under CI, a skip with a note elsewhere.
pub fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        assert!(!super::in_ci(), "namespace tests need root under CI=true");
        eprintln!("note: not root; the namespace test is not run (it is in CI)");
        return false;
    }
    ["ip", "iptables", "curl", "python3"]
        .iter()
        .all(|tool| super::peer(tool).is_some())
}
