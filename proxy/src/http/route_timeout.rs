//! The route's `timeout` (Envoy's default 15 s): one deadline over every attempt and back-off of a request.
//! When it fires the request ends with 504 `UT` and is never retried: this layer sits outside the retries.
//!
//! Not tower's `Timeout`: that one answers with a boxed `Elapsed` error, and this stack's error is the typed
//! `Failure` that becomes Envoy's local reply.

use super::failure::Failure;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

#[derive(Clone)]
pub struct RouteTimeout<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> RouteTimeout<S> {
    /// `timeout: None` (`0s` in the config) disables it.
    pub fn new(inner: S, timeout: Option<Duration>) -> Self {
        Self { inner, timeout }
    }
}

impl<S, R> tower_service::Service<R> for RouteTimeout<S>
where
    S: tower_service::Service<R, Error = Failure>,
{
    type Response = S::Response;
    type Error = Failure;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: self.timeout.map(tokio::time::sleep),
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F, T> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, Failure>>,
{
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Failure::RouteTimeout)),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_covers_the_whole_call() {
        let (mock, mut handle) = tower_test::mock::pair::<(), ()>();
        let service = RouteTimeout::new(
            mock.map_err(|_| Failure::Overflow),
            Some(Duration::from_millis(100)),
        );
        let call = tokio::spawn(service.oneshot(()));
        // The upstream never answers.
        let _request = handle.next_request().await;
        let result = call.await.unwrap();
        assert!(matches!(result, Err(Failure::RouteTimeout)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_passes_and_no_deadline_waits_for_ever() {
        for timeout in [Some(Duration::from_secs(1)), None] {
            let (mock, mut handle) = tower_test::mock::pair::<(), &'static str>();
            let service = RouteTimeout::new(mock.map_err(|_| Failure::Overflow), timeout);
            let call = tokio::spawn(service.oneshot(()));
            let (_, respond) = handle.next_request().await.unwrap();
            tokio::time::sleep(Duration::from_millis(900)).await;
            respond.send_response("ok");
            assert_eq!(call.await.unwrap().unwrap(), "ok");
        }
    }
}
