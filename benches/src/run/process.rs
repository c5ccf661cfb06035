//! The processes a run starts: pinned to a CPU with `taskset`, killed by the kernel if the runner dies
//! (`setpriv --pdeathsig KILL`), killed and reaped when dropped, and measured through `/proc`.

use anyhow::Context;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A command line: program and arguments.
#[derive(Clone, Debug)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl CommandLine {
    /// Outrigger serving `config` with one worker, as every scenario runs it.
    pub fn outrigger(binary: impl Into<PathBuf>, config: &str) -> Self {
        Self::new(
            binary,
            &["run", "--concurrency", "1", "-c", config, "-l", "error"],
        )
    }

    /// Envoy serving `config` with one worker, as every scenario runs it.
    pub fn envoy(binary: impl Into<PathBuf>, config: &str) -> Self {
        Self::new(
            binary,
            &[
                "-c",
                config,
                "--concurrency",
                "1",
                "-l",
                "error",
                "--disable-hot-restart",
            ],
        )
    }

    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// `setpriv --pdeathsig KILL [taskset -c CPU] program args...`: `exec` keeps the PID, so the child's PID is
    /// the program's.
    fn command(&self, cpu: Option<&str>) -> Command {
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "KILL", "--"]);
        if let Some(cpu) = cpu {
            command.args(["taskset", "-c", cpu]);
        }
        command.arg(&self.program).args(&self.args);
        command
    }
}

pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    pub spawned: Instant,
}

impl Process {
    /// Starts `line` on `cpu`, its stdout and stderr in `log`.
    pub fn start(
        name: &str,
        line: &CommandLine,
        cpu: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let spawned = Instant::now();
        let child = line
            .command(cpu)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {name} ({})", line.program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            spawned,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the process's output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `ready` holds, the process exits, or `limit` passes; returns the time since spawn.
    pub fn wait_ready(
        &mut self,
        limit: Duration,
        ready: impl Fn() -> bool,
    ) -> anyhow::Result<Duration> {
        loop {
            if ready() {
                return Ok(self.spawned.elapsed());
            }
            if self.has_exited() {
                anyhow::bail!(
                    "{} exited before it was ready:\n{}",
                    self.name,
                    self.log_tail(8)
                );
            }
            if self.spawned.elapsed() > limit {
                anyhow::bail!(
                    "{} not ready after {limit:?}:\n{}",
                    self.name,
                    self.log_tail(8)
                );
            }
            // Short polls: a 2 ms step added up to 2 ms to every start figure (scenario (f)'s target is 20 ms).
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// User plus system CPU time of all the process's threads so far.
    pub fn cpu_seconds(&self, clock_ticks: f64) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        // Fields after the command name (which may hold spaces) start at field 3, the state.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("malformed /proc stat")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
        };
        // utime is field 14, stime field 15.
        Ok((ticks(11)? + ticks(12)?) / clock_ticks)
    }

    /// A `/proc/PID/status` memory figure (`VmRSS`, `VmHWM`) in bytes.
    pub fn memory_bytes(&self, key: &str) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .with_context(|| format!("no {key} in {path}"))?;
        let kib: f64 = line.trim().trim_end_matches("kB").trim().parse()?;
        Ok(kib * 1024.0)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `line` on `cpu` to completion, at most `limit`; returns its stdout.
pub fn run_to_end(
    line: &CommandLine,
    cpu: Option<&str>,
    work: &Path,
    limit: Duration,
) -> anyhow::Result<String> {
    let out_path = work.join("load.out");
    let err_path = work.join("load.err");
    let out = File::create(&out_path)?;
    let err = File::create(&err_path)?;
    let mut child = line
        .command(cpu)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("start {}", line.program.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "{} still running after {limit:?}; killed",
                line.program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path)?;
    if !status.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        anyhow::bail!(
            "{} failed ({status}): {}",
            line.program.display(),
            stderr.trim()
        );
    }
    Ok(stdout)
}

/// One `GET /` over a fresh HTTP/1.1 connection: true when the answer is 200.
pub fn http_ok(address: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(&head == b"HTTP/1.1 200")
    };
    attempt().unwrap_or(false)
}

/// True when something accepts connections on `address`.
pub fn accepts(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}
