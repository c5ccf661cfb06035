//! The fixed backend every target forwards to: one HTTP port that answers HTTP/1.1 and h2c (prior knowledge) with
//! a 1 KiB body and echoes gRPC unary calls, and one TCP port that echoes bytes.

use crate::{RESPONSE_BYTES, grpc};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, Infallible>;

/// Accepts until the process ends; an accept error (e.g. out of file descriptors) pauses instead of spinning.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                eprintln!("bench-backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub async fn serve_http(listener: TcpListener) {
    let payload = Bytes::from(vec![b'x'; RESPONSE_BYTES]);
    loop {
        let stream = accept(&listener).await;
        let payload = payload.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, payload.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    payload: Bytes,
) -> Result<Response<Body>, hyper::Error> {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let body = request.into_body().collect().await?.to_bytes();
    if !grpc {
        let mut response = Response::new(Full::new(payload).boxed());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(response);
    }
    let mut trailers = HeaderMap::new();
    let reply = match grpc::unframe(&body) {
        Some(message) => {
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            grpc::frame(message)
        }
        None => {
            // INVALID_ARGUMENT: the request was not one uncompressed message.
            trailers.insert("grpc-status", HeaderValue::from_static("3"));
            Bytes::new()
        }
    };
    let body = Full::new(reply)
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    Ok(response)
}

pub async fn serve_tcp_echo(listener: TcpListener) {
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(async move {
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::with_capacity(64 * 1024, reader);
            let _ = tokio::io::copy_buf(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        });
    }
}
