//! A plain HTTP/1.1 GET, for `demo-greeter` calling `demo-web` and for `demo-web get URL` (the request a user
//! runs inside the app's container, where it reaches the app over loopback, which the sidecar does not capture).

use http_body_util::{BodyExt, Empty};

/// The status, the sidecar's response flags (if any) and the body of a GET of `url`.
pub struct Answer {
    pub status: u16,
    pub flags: Option<String>,
    pub body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {}", self.status)?;
        if let Some(flags) = &self.flags {
            write!(f, " ({}: {flags})", crate::RESPONSE_FLAGS)?;
        }
        write!(f, ": {}", self.body.trim_end())
    }
}

/// GETs `url` once, within 10 seconds.
pub async fn get(url: &str) -> Result<Answer, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let exchange = async {
        let response = client
            .get(uri)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let flags = response
            .headers()
            .get(crate::RESPONSE_FLAGS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            flags,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("GET {url}: no answer within 10 s"))?
}
