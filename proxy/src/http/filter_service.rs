//! What every HTTP filter of the chain shares: the service it wraps (the rest of the chain) and the future it
//! answers with. A filter never fails: its errors are responses (local replies).

use super::local_reply::ResponseBody;
use crate::upstream::UpstreamBody;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

/// The response future of a filter.
pub type BoxFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// The rest of the chain, as a filter sees it.
pub trait Next:
    tower_service::Service<
        Request<UpstreamBody>,
        Response = Response<ResponseBody>,
        Error = Infallible,
        Future: Send + 'static,
    >
{
}

impl<S> Next for S where
    S: tower_service::Service<
            Request<UpstreamBody>,
            Response = Response<ResponseBody>,
            Error = Infallible,
            Future: Send + 'static,
        >
{
}
