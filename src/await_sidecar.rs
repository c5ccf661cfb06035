//! `outrigger await [--admin ADDR] [--timeout T] [--shutdown] -- CMD ARGS`: start ordering for an app container
//! that cannot use Kubernetes' native sidecars. It waits until the local sidecar's `/ready` answers 200, then
//! runs the app, passing SIGTERM and SIGINT on to it, and exits with the app's status. With `--shutdown` it asks
//! the sidecar to `/quitquitquit` once the app has exited (for jobs, whose pod would otherwise never end).
//! It does not reap orphaned grandchildren: as a container's PID 1, run it under an init (`tini`, or the pod's
//! `shareProcessNamespace`) when the app leaves children behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub struct Args {
    pub admin: SocketAddr,
    pub timeout: Duration,
    pub shutdown: bool,
    pub command: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("outrigger await: name the command to run after `--`");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outrigger await: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Listening from the start: a SIGTERM while waiting ends the wait (the app is never started), and as
        // PID 1 of a container a signal nobody listens for would be dropped.
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("outrigger await: cannot listen for signals");
            return ExitCode::FAILURE;
        };
        let ready = tokio::select! {
            ready = wait_until_ready(args.admin, args.timeout) => ready,
            _ = term.recv() => return signalled(nix::sys::signal::Signal::SIGTERM),
            _ = int.recv() => return signalled(nix::sys::signal::Signal::SIGINT),
        };
        if let Err(last) = ready {
            eprintln!(
                "outrigger await: the sidecar at {} was not ready within {}: {last}; {program} was not started",
                args.admin,
                humantime::format_duration(args.timeout)
            );
            return ExitCode::FAILURE;
        }
        run_forwarding_signals(program, rest, &mut term, &mut int).await
    });
    if args.shutdown
        && let Err(e) = request(args.admin, "POST", "/quitquitquit")
    {
        eprintln!(
            "outrigger await: could not ask the sidecar at {} to stop: {e}",
            args.admin
        );
    }
    status
}

/// The exit code of a process ended by `signal`, as a shell reports it.
fn signalled(signal: nix::sys::signal::Signal) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal as i32).unwrap_or(1))
}

/// Polls `GET /ready` every 100 ms; the last answer (or error) when `timeout` passes first.
async fn wait_until_ready(admin: SocketAddr, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let answer = tokio::task::spawn_blocking(move || request(admin, "GET", "/ready")).await;
        let last = match answer {
            Ok(Ok((200, _))) => return Ok(()),
            Ok(Ok((status, body))) => format!("/ready answered {status} {}", body.trim()),
            Ok(Err(e)) => format!("/ready: {e}"),
            Err(e) => format!("/ready: {e}"),
        };
        if started.elapsed() >= timeout {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.0 exchange with the admin API: status and body.
fn request(admin: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs the app to its end; SIGTERM and SIGINT sent to us go to it. Its exit code is ours (128 + the signal's
/// number when a signal ended it, as a shell reports it).
async fn run_forwarding_signals(
    program: &str,
    args: &[String],
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> ExitCode {
    let mut child = match tokio::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("outrigger await: cannot run {program}: {e}");
            return ExitCode::from(127);
        }
    };
    loop {
        let forwarded = tokio::select! {
            status = child.wait() => return exit_code(status),
            _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
            _ = int.recv() => nix::sys::signal::Signal::SIGINT,
        };
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), forwarded);
        }
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
            (None, None) => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("outrigger await: waiting for the app failed: {e}");
            ExitCode::FAILURE
        }
    }
}
