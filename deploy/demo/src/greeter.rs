//! `demo.Greeter`: the messages, a client for `demo-web` and the command line, and the server's routing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `demo.HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `demo.HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The service's name, and its two methods: `Hello` answers; `CallWeb` makes the greeter call `demo-web`.
pub const SERVICE: &str = "demo.Greeter";
pub const METHODS: [&str; 2] = ["Hello", "CallWeb"];

/// Calls `method` of the greeter at `url` (`http://greeter:50051`) once.
pub async fn call(url: &str, method: &str, name: &str) -> Result<String, Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| Status::invalid_argument(format!("{url}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot connect to {url}: {e}")))?;
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("{url}: {e}")))?;
    let path = PathAndQuery::try_from(format!("/{SERVICE}/{method}"))
        .map_err(|e| Status::invalid_argument(format!("method {method}: {e}")))?;
    let reply: Response<HelloReply> = client
        .unary(
            Request::new(HelloRequest {
                name: name.to_owned(),
            }),
            path,
            ProstCodec::default(),
        )
        .await?;
    Ok(reply.into_inner().message)
}

/// What the server does for each method: given the method's name and the request, the reply.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        method: &'static str,
        request: Request<HelloRequest>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<HelloReply>, Status>> + Send>>;
}

/// The tower service tonic's server routes `/demo.Greeter/*` to.
#[derive(Clone)]
pub struct Server<H>(pub H);

impl<H: Handler> NamedService for Server<H> {
    const NAME: &'static str = SERVICE;
}

struct Method<H> {
    handler: H,
    name: &'static str,
}

impl<H: Handler> UnaryService<HelloRequest> for Method<H> {
    type Response = HelloReply;
    type Future = Pin<Box<dyn Future<Output = Result<Response<HelloReply>, Status>> + Send>>;
    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        self.handler.handle(self.name, request)
    }
}

type BoxResponse = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<H: Handler> tower_service::Service<http::Request<Body>> for Server<H> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxResponse {
        let method = request
            .uri()
            .path()
            .strip_prefix(&format!("/{SERVICE}/"))
            .and_then(|m| METHODS.into_iter().find(|known| *known == m));
        let Some(name) = method else {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        };
        let handler = self.0.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(Method { handler, name }, request).await)
        })
    }
}
