//! The outermost HTTP layer: the connection manager's request statistics (`downstream_rq_total`, `_active`,
//! `_xx`), and what every response carries on its way out (`server`, `Connection: close` while draining).
//! The active-request gauge is given back by a guard, so a client that resets mid-request does not leak it.
//! Each request also gets its place on the connection (`Ticket`, which the stream timers read) and keeps the
//! connection's stream count until its response body has been sent. `Connection: close` is added while the
//! process drains, or the connection itself does (idle timeout, max connection duration).

use super::Connection;
use super::connection_state::ConnectionState;
use super::local_reply::ResponseBody;
use super::stream_guard::{self, OpenStream};
use super::stream_reset::ResetStream;
use crate::metrics;
use http::{HeaderValue, Request, Response};
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Clone)]
pub struct DownstreamStats<S> {
    inner: S,
    connection: Arc<Connection>,
    state: Arc<ConnectionState>,
    server: Option<HeaderValue>,
}

impl<S> DownstreamStats<S> {
    pub fn new(inner: S, connection: Arc<Connection>, state: Arc<ConnectionState>) -> Self {
        let server = HeaderValue::from_str(&connection.hcm.server_name).ok();
        Self {
            inner,
            connection,
            state,
            server,
        }
    }
}

struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<S, B> tower_service::Service<Request<B>> for DownstreamStats<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
    S::Future: Send + 'static,
    B: http_body::Body,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let http1 = request.version() < http::Version::HTTP_2;
        let ticket = self.state.stream_started(request.body().is_end_stream());
        request.extensions_mut().insert(ticket);
        let open = OpenStream::new(self.state.clone());
        let state = self.state.clone();
        let connection = self.connection.clone();
        let m = &connection.inputs.metrics;
        m.http_rq.get_or_create(&connection.labels).inc();
        let gauge = m.http_rq_active.get_or_create(&connection.labels).clone();
        gauge.inc();
        let active = Active(gauge);
        let server = self.server.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let Ok(mut response) = future.await;
            drop(active);
            let draining = connection.inputs.drain.is_draining() || state.is_draining();
            if draining && http1 {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(server) = server {
                response.headers_mut().insert(http::header::SERVER, server);
            }
            let status = response.status().as_u16();
            let m = &connection.inputs.metrics;
            // A reset stream has no response status.
            if response.extensions().get::<ResetStream>().is_none() {
                m.http_rq_xx
                    .get_or_create(&metrics::with_class(connection.labels.clone(), status))
                    .inc();
            }
            Ok(response.map(|body| stream_guard::guard(body, open)))
        })
    }
}
