//! `demo-web`: the HTTP demo service (0.0.0.0:8080, or `$LISTEN`).
//!
//! - `GET /hello` answers with the `x-forwarded-client-cert` its sidecar set (the caller's SPIFFE ID);
//! - `GET /call-greeter` calls the gRPC service (`$GREETER_URL`, `http://greeter:50051`) and answers with its reply.
//!
//! `demo-web get URL` is a client: it prints the status, the sidecar's response flags and the body.

use std::convert::Infallible;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrigger_demo::{XFCC, env_or, greeter, http_client, shutdown};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => serve().await,
        [get, url] if get == "get" => match http_client::get(url).await {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo-web: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: demo-web            serve on $LISTEN (0.0.0.0:8080)\n       demo-web get URL    GET a URL and print the answer"
            );
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let listen = env_or("LISTEN", "0.0.0.0:8080");
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("demo-web: cannot listen on {listen} ($LISTEN): {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("demo-web: serving HTTP on {listen}");
    let stop = shutdown();
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return ExitCode::SUCCESS,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("demo-web: accept: {e}");
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/hello" => {
            let xfcc = request
                .headers()
                .get(XFCC)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            (200, format!("hello from web; {XFCC}: {xfcc}\n"))
        }
        "/call-greeter" => {
            let url = env_or("GREETER_URL", "http://greeter:50051");
            match greeter::call(&url, "Hello", "web").await {
                Ok(message) => (200, format!("greeter answered: {message}\n")),
                Err(status) => (
                    502,
                    format!(
                        "greeter failed: {:?}: {}\n",
                        status.code(),
                        status.message()
                    ),
                ),
            }
        }
        _ => (404, "try /hello or /call-greeter\n".to_owned()),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}
