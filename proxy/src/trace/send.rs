//! The collectors' clients, owned by the export thread and built there (in the runtime that polls them): a
//! tonic channel per OTLP/gRPC collector, one hyper client for the HTTP ones (OTLP/HTTP, Zipkin).

use super::export::{Destination, DestinationKind, Item};
use super::span::FinishedSpan;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::transport::Channel;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("OTLP collector {address}: {message}")]
    Grpc { address: String, message: String },
    #[error("collector {address}: {message}")]
    Http { address: String, message: String },
    #[error("collector {address}: answered {status}")]
    Status {
        address: String,
        status: http::StatusCode,
    },
}

/// At most this much of a collector's answer is read (the Datadog agent's sampling rates are far smaller).
const ANSWER_MAX: usize = 64 * 1024;

#[derive(Default)]
pub struct Clients {
    grpc: HashMap<String, TraceServiceClient<Channel>>,
    /// SkyWalking collectors' channels, by address.
    skywalking: HashMap<String, Channel>,
    http: Option<Client<HttpConnector, Full<Bytes>>>,
}

impl Clients {
    pub async fn send(
        &mut self,
        destination: &Arc<Destination>,
        items: Vec<Item>,
    ) -> Result<(), SendError> {
        if let DestinationKind::SkyWalking {
            address,
            timeout,
            token,
            ..
        } = &destination.kind
        {
            let segments = items.into_iter().filter_map(Item::into_segment).collect();
            return self
                .collect(address, *timeout, token.as_deref(), segments)
                .await;
        }
        let spans: Vec<FinishedSpan> = items.into_iter().filter_map(Item::into_span).collect();
        match &destination.kind {
            DestinationKind::OtlpGrpc {
                address,
                timeout,
                resource,
            } => {
                let grpc_error = |message: String| SendError::Grpc {
                    address: address.clone(),
                    message,
                };
                let client = match self.grpc.get(address) {
                    Some(c) => c.clone(),
                    None => {
                        let endpoint =
                            tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                                .map_err(|e| grpc_error(e.to_string()))?
                                .connect_timeout(*timeout)
                                .timeout(*timeout);
                        let client = TraceServiceClient::new(endpoint.connect_lazy());
                        self.grpc.insert(address.clone(), client.clone());
                        client
                    }
                };
                let mut client = client;
                client
                    .export(super::otlp::request(resource, spans))
                    .await
                    .map(|_| ())
                    .map_err(|status| {
                        grpc_error(format!("{:?}: {}", status.code(), status.message()))
                    })
            }
            DestinationKind::OtlpHttp {
                address,
                authority,
                path,
                timeout,
                headers,
                resource,
            } => {
                let body = super::otlp::request(resource, spans).encode_to_vec();
                let mut request = http::Request::post(format!("http://{address}{path}"))
                    .header(http::header::HOST, authority.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                for (k, v) in headers {
                    request = request.header(k.as_str(), v.as_str());
                }
                self.post(address, request, body, *timeout).await.map(drop)
            }
            DestinationKind::Zipkin {
                address,
                authority,
                path,
                service_name,
            } => {
                let body = super::zipkin::body(service_name, &spans);
                let request = http::Request::post(format!("http://{address}{path}"))
                    .header(http::header::HOST, authority.as_str())
                    .header(http::header::CONTENT_TYPE, "application/json");
                self.post(address, request, body, std::time::Duration::from_secs(5))
                    .await
                    .map(drop)
            }
            DestinationKind::Datadog {
                address,
                authority,
                service,
                rates,
            } => {
                let (body, chunks) = super::datadog_encode::body(service, &spans);
                let request = http::Request::post(format!("http://{address}/v0.4/traces"))
                    .header(http::header::HOST, authority.as_str())
                    .header(http::header::CONTENT_TYPE, "application/msgpack")
                    .header("x-datadog-trace-count", chunks.to_string())
                    .header("datadog-meta-lang", "rust")
                    .header("datadog-meta-tracer-version", env!("CARGO_PKG_VERSION"));
                let reports = &super::stats::stats().datadog_reports;
                // Envoy's tracer gives the agent 2 s (`request_timeout_milliseconds: 2000`).
                match self
                    .post(address, request, body, std::time::Duration::from_secs(2))
                    .await
                {
                    Ok(answer) => {
                        reports.sent.inc();
                        rates.update(&answer);
                        Ok(())
                    }
                    Err(e @ SendError::Status { .. }) => {
                        reports.dropped.inc();
                        Err(e)
                    }
                    Err(e) => {
                        reports.failed.inc();
                        Err(e)
                    }
                }
            }
            DestinationKind::SkyWalking { .. } => Ok(()),
        }
    }

    /// One `TraceSegmentReportService/collect` client stream carrying `segments`.
    async fn collect(
        &mut self,
        address: &str,
        timeout: std::time::Duration,
        token: Option<&str>,
        segments: Vec<super::skywalking::SegmentObject>,
    ) -> Result<(), SendError> {
        let grpc_error = |message: String| SendError::Grpc {
            address: address.to_string(),
            message,
        };
        let channel = match self.skywalking.get(address) {
            Some(c) => c.clone(),
            None => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                    .map_err(|e| grpc_error(e.to_string()))?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .connect_lazy();
                self.skywalking.insert(address.to_string(), channel.clone());
                channel
            }
        };
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| grpc_error(format!("not ready: {e}")))?;
        let mut request = tonic::Request::new(futures_util::stream::iter(segments));
        if let Some(token) = token {
            let value = token.parse().map_err(|_| {
                grpc_error("the backend_token is not a valid metadata value".into())
            })?;
            request.metadata_mut().insert("authentication", value);
        }
        let path = http::uri::PathAndQuery::from_static(super::skywalking::COLLECT);
        let codec = tonic_prost::ProstCodec::<
            super::skywalking::SegmentObject,
            super::skywalking::Commands,
        >::default();
        tokio::time::timeout(timeout, grpc.client_streaming(request, path, codec))
            .await
            .map_err(|_| grpc_error(format!("no answer within {timeout:?}")))?
            .map(|_| ())
            .map_err(|status| grpc_error(format!("{:?}: {}", status.code(), status.message())))
    }

    async fn post(
        &mut self,
        address: &str,
        request: http::request::Builder,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<Bytes, SendError> {
        let http_error = |message: String| SendError::Http {
            address: address.to_string(),
            message,
        };
        let client = self
            .http
            .get_or_insert_with(|| Client::builder(TokioExecutor::new()).build_http());
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http_error(e.to_string()))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| http_error(e.to_string()))?;
            if !response.status().is_success() {
                return Err(SendError::Status {
                    address: address.to_string(),
                    status: response.status(),
                });
            }
            let body = http_body_util::Limited::new(response.into_body(), ANSWER_MAX)
                .collect()
                .await
                .map_err(|e| http_error(format!("reading the answer: {e}")))?;
            Ok(body.to_bytes())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(http_error(format!("no answer within {timeout:?}"))),
            Ok(result) => result,
        }
    }
}
