//! The two demo services as processes on loopback, without sidecars: each calls the other (HTTP -> gRPC and
//! gRPC -> HTTP), an unknown method is UNIMPLEMENTED, and with nothing to call the caller says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(binary: &str, listen: u16, env: (&str, String)) -> Guard {
    Guard(
        Command::new(binary)
            .env("LISTEN", format!("127.0.0.1:{listen}"))
            .env(env.0, env.1)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn web_and_greeter_call_each_other() {
    let web = env!("CARGO_BIN_EXE_demo-web");
    let greeter = env!("CARGO_BIN_EXE_demo-greeter");
    let (web_port, greeter_port) = (free_port(), free_port());
    let _web = serve(
        web,
        web_port,
        ("GREETER_URL", format!("http://127.0.0.1:{greeter_port}")),
    );
    let _greeter = serve(
        greeter,
        greeter_port,
        ("WEB_URL", format!("http://127.0.0.1:{web_port}")),
    );
    let web_url = format!("http://127.0.0.1:{web_port}");
    let greeter_url = format!("http://127.0.0.1:{greeter_port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answer = String::new();
    while !answer.starts_with("status 200") {
        assert!(
            Instant::now() < deadline,
            "demo-web never answered: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
        answer = stdout(&run(web, &["get", &format!("{web_url}/call-greeter")]));
    }
    // No sidecar, so no x-forwarded-client-cert.
    assert_eq!(
        answer,
        "status 200: greeter answered: hello web from greeter; x-forwarded-client-cert: (none)\n"
    );
    assert_eq!(
        stdout(&run(greeter, &["call", &greeter_url, "CallWeb"])),
        "web answered status 200: hello from web; x-forwarded-client-cert: (none)\n"
    );
    assert_eq!(
        stdout(&run(greeter, &["call", &greeter_url, "Hello", "you"])),
        "hello you from greeter; x-forwarded-client-cert: (none)\n"
    );
    let unknown = run(greeter, &["call", &greeter_url, "Nope"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("Unimplemented"),
        "{unknown:?}"
    );
    assert_eq!(
        stdout(&run(web, &["get", &format!("{web_url}/nowhere")])),
        "status 404: try /hello or /call-greeter\n"
    );
    // The greeter gone: web says what failed, with a 502.
    drop(_greeter);
    let failed = stdout(&run(web, &["get", &format!("{web_url}/call-greeter")]));
    assert!(
        failed.starts_with("status 502: greeter failed: Unavailable"),
        "{failed}"
    );
}
