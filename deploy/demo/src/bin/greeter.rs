//! `demo-greeter`: the gRPC demo service `demo.Greeter` (0.0.0.0:50051, or `$LISTEN`).
//!
//! - `Hello` answers with the `x-forwarded-client-cert` its sidecar set (the caller's SPIFFE ID);
//! - `CallWeb` GETs `/hello` of the HTTP service (`$WEB_URL`, `http://web:8080`) and answers with what it got.
//!
//! `demo-greeter call URL METHOD [NAME]` is a client: it prints the reply.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use outrigger_demo::greeter::{self, HelloReply, HelloRequest};
use outrigger_demo::{XFCC, env_or, http_client, shutdown};
use tonic::{Request, Response, Status};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => serve().await,
        [call, url, method, rest @ ..] if call == "call" && rest.len() <= 1 => {
            let name = rest.first().map_or("cli", String::as_str);
            match greeter::call(url, method, name).await {
                Ok(message) => {
                    println!("{message}");
                    ExitCode::SUCCESS
                }
                Err(status) => {
                    eprintln!(
                        "demo-greeter: {url} {method}: {:?}: {}",
                        status.code(),
                        status.message()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: demo-greeter                          serve on $LISTEN (0.0.0.0:50051)\n       demo-greeter call URL METHOD [NAME]  call Hello or CallWeb and print the reply"
            );
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let listen = env_or("LISTEN", "0.0.0.0:50051");
    let address = match listen.parse() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("demo-greeter: $LISTEN {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("demo-greeter: serving gRPC on {listen}");
    let served = tonic::transport::Server::builder()
        .add_service(greeter::Server(Greeter))
        .serve_with_shutdown(address, shutdown())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-greeter: cannot serve on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct Greeter;

impl greeter::Handler for Greeter {
    fn handle(
        &self,
        method: &'static str,
        request: Request<HelloRequest>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<HelloReply>, Status>> + Send>> {
        let xfcc = request
            .metadata()
            .get(XFCC)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        let name = request.into_inner().name;
        Box::pin(async move {
            let message = match method {
                "CallWeb" => {
                    let url = format!("{}/hello", env_or("WEB_URL", "http://web:8080"));
                    match http_client::get(&url).await {
                        Ok(answer) => format!("web answered {answer}"),
                        Err(e) => return Err(Status::unavailable(e)),
                    }
                }
                _ => format!("hello {name} from greeter; {XFCC}: {xfcc}"),
            };
            Ok(Response::new(HelloReply { message }))
        })
    }
}
