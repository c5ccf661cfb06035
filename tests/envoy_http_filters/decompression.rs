//! The decompressor filter (gzip, brotli, zstd), zstd as a compressor, the gRPC-HTTP/1.1 bridge and the
//! connection manager's `add_user_agent`, in real Envoy 1.40 and in Outrigger side by side, with the same YAML
//! (`configs/filters/decompressor.yaml`) and the same raw HTTP/1.1 requests: compressed request bodies decoded
//! for the backend, compressed responses decoded for the client, identity and other encodings passed as they
//! are, `no-transform`, the inflate limits, `accept-encoding` advertised; zstd made by the `zstd` crate decoded
//! by both proxies and what Outrigger's zstd compressor sends decoded by the crate and by Envoy; gRPC answers
//! (OK, an error in trailers, a trailers-only error) bridged to HTTP/1.1, and the protobuf upgrade.
//!
//! Compared: status, the headers the filters touch, what the backends received, the body bytes, and the
//! filters' statistics (every one, exactly, but the zstd compressor's compressed byte count).

use super::{Reply, send, support};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use tokio::net::TcpListener;

const TEMPLATE: &str = include_str!("../configs/filters/decompressor.yaml");
const LISTENERS: &[&str] = &["dec", "opts", "zst", "bridge", "upgrade", "ignoreq"];

/// The response headers the filters read or write, plus what the backends say they received.
const COMPARED: &[&str] = &[
    "content-encoding",
    "content-type",
    "content-length",
    "grpc-status",
    "grpc-message",
    "x-seen-accept-encoding",
    "x-seen-content-encoding",
    "x-seen-content-length",
    "x-seen-content-type",
    "x-seen-body",
    "x-seen-path",
    "x-seen-user-agent",
    "x-seen-downstream-cluster",
    "x-seen-downstream-node",
];

// ---------------------------------------------------------------------------------------------------------------
// Bodies.

/// What clients upload.
fn upload() -> Vec<u8> {
    b"upload body, decoded on the way. "
        .iter()
        .copied()
        .cycle()
        .take(3000)
        .collect()
}

/// What the backend answers.
fn payload() -> Vec<u8> {
    b"hello world, this compresses well. "
        .iter()
        .copied()
        .cycle()
        .take(2000)
        .collect()
}

/// Words drawn at random from a few hundred: matches reach far back (past a 512-byte window).
fn far() -> Vec<u8> {
    let mut state: u32 = 7;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        state >> 16
    };
    let words: Vec<String> = (0..400)
        .map(|_| {
            (0..6)
                .map(|_| char::from(b'a' + (next() % 10) as u8))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    while out.len() < 20_000 {
        out.extend_from_slice(words[next() as usize % words.len()].as_bytes());
        out.push(b' ');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        writer.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// Names a body the backend received.
fn known(body: &[u8]) -> String {
    if body.is_empty() {
        "empty".into()
    } else if body == upload() {
        "upload".into()
    } else if body == payload() {
        "payload".into()
    } else if body == far() {
        "far".into()
    } else {
        format!("other({})", body.len())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The backends: an HTTP/1.1 app answering `/<kind>` (under `/app/` too) and a gRPC service over h2c.

fn seen(request: &http::Request<Bytes>, name: &str) -> String {
    request
        .headers()
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn answer(request: &http::Request<Bytes>) -> http::Response<Full<Bytes>> {
    let path = request.uri().path();
    let kind = path.trim_start_matches("/app").trim_matches('/');
    let body = payload();
    let (encoding, bytes): (&str, Vec<u8>) = match kind {
        "gzip" => ("gzip", gzip(&body)),
        "br" => ("br", brotli(&body)),
        "zstd" => ("zstd", zstd(&body)),
        "gzipbr" => ("gzip, br", gzip(&body)),
        "upper" => ("GZIP", gzip(&body)),
        "nt" => ("gzip", gzip(&body)),
        "bomb" => ("gzip", gzip(&vec![0u8; 1_000_000])),
        "far" => ("gzip", gzip(&far())),
        "broken" => ("gzip", body.clone()),
        _ => ("", body.clone()),
    };
    let mut response = http::Response::builder()
        .status(200)
        .header("content-type", "text/plain");
    if !encoding.is_empty() {
        response = response.header("content-encoding", encoding);
    }
    if kind == "nt" {
        response = response.header("cache-control", "no-transform");
    }
    response
        .header("x-seen-accept-encoding", seen(request, "accept-encoding"))
        .header("x-seen-content-encoding", seen(request, "content-encoding"))
        .header("x-seen-content-length", seen(request, "content-length"))
        .header("x-seen-body", known(request.body()))
        .header("x-seen-path", path)
        .header("x-seen-user-agent", seen(request, "user-agent"))
        .header(
            "x-seen-downstream-cluster",
            seen(request, "x-envoy-downstream-service-cluster"),
        )
        .header(
            "x-seen-downstream-node",
            seen(request, "x-envoy-downstream-service-node"),
        )
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

/// gRPC: `/svc.Echo/Ok` echoes the request message, `/svc.Echo/Fail` answers it with status 13 in trailers,
/// `/svc.Echo/Only` answers status 5 in its headers alone (trailers-only).
fn grpc_answer(
    request: &http::Request<Bytes>,
) -> http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let path = request.uri().path().to_string();
    let mut response = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("x-seen-path", request.uri().to_string())
        .header("x-seen-content-type", seen(request, "content-type"))
        .header("x-seen-content-length", seen(request, "content-length"))
        .header("x-seen-body", hex(request.body()));
    if path.ends_with("/Only") {
        response = response
            .header("grpc-status", "5")
            .header("grpc-message", "not here");
        return response.body(Full::new(Bytes::new()).boxed()).unwrap();
    }
    let mut trailers = http::HeaderMap::new();
    if path.ends_with("/Fail") {
        trailers.insert("grpc-status", "13".parse().unwrap());
        trailers.insert("grpc-message", "boom".parse().unwrap());
    } else {
        trailers.insert("grpc-status", "0".parse().unwrap());
    }
    // Past Envoy's default buffer limit (1 MiB), which the bridge holds the response in.
    let message = if path.ends_with("/Big") {
        Bytes::from(vec![b'm'; 1_200_000])
    } else {
        request.body().clone()
    };
    let frames = futures_util::stream::iter([
        Ok::<_, Infallible>(http_body::Frame::data(message)),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    response
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Backends {
    app: u16,
    grpc: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Backends {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn backends() -> Backends {
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ports = (
        app.local_addr().unwrap().port(),
        grpc.local_addr().unwrap().port(),
    );
    let app_task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = app.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                    let (parts, body) = request.into_parts();
                    let body = BodyExt::collect(body)
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, Infallible>(answer(&http::Request::from_parts(parts, body)))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    let grpc_task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = grpc.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                    let (parts, body) = request.into_parts();
                    let body = BodyExt::collect(body)
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, Infallible>(grpc_answer(&http::Request::from_parts(parts, body)))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
            });
        }
    });
    Backends {
        app: ports.0,
        grpc: ports.1,
        tasks: vec![app_task, grpc_task],
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The proxies.

struct Proxy {
    kind: &'static str,
    admin: u16,
    ports: BTreeMap<String, u16>,
    _backends: Backends,
    _envoy: Option<support::envoy::Envoy>,
    _sidecar: Option<support::sidecar::Sidecar>,
}

impl Proxy {
    /// The statistics of the filters under test.
    async fn stats(&self) -> BTreeMap<String, u64> {
        let reply = send(self.admin, "GET /stats HTTP/1.1\r\nconnection: close", b"").await;
        String::from_utf8(reply.raw)
            .unwrap()
            .lines()
            .filter(|l| {
                (l.contains("compressor.")
                    && LISTENERS
                        .iter()
                        .any(|p| l.starts_with(&format!("http.{p}."))))
                    || l.starts_with("cluster.grpc.grpc.")
            })
            .filter_map(|l| {
                let (name, value) = l.split_once(": ")?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }
}

async fn fill(dir: &Path, kind: &str) -> (String, u16, BTreeMap<String, u16>, Backends) {
    let backends = backends().await;
    let values = [
        ("app", backends.app.to_string()),
        ("grpc", backends.grpc.to_string()),
    ];
    let (yaml, admin, ports, _) = super::fill_ports(dir, kind, TEMPLATE, LISTENERS, &values);
    (yaml, admin, ports, backends)
}

async fn start(test: &str) -> Vec<Proxy> {
    let dir = std::env::temp_dir().join(format!("outrigger-decomp-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut proxies = Vec::new();
    if let Some(envoy) = support::peer("envoy") {
        let (_, admin, ports, backends) = fill(&dir, "envoy").await;
        let mut process = support::envoy::Envoy::start(&envoy, &dir.join("envoy.yaml"));
        for port in ports.values() {
            process.wait_for_port(*port);
        }
        process.wait_for_port(admin);
        proxies.push(Proxy {
            kind: "envoy",
            admin,
            ports,
            _backends: backends,
            _envoy: Some(process),
            _sidecar: None,
        });
    }
    let (yaml, admin, ports, backends) = fill(&dir, "outrigger").await;
    let sidecar = support::sidecar::Sidecar::start(&dir, "outrigger", &yaml, admin);
    for port in ports.values() {
        support::tcp::wait_until_listening(*port, "outrigger").await;
    }
    proxies.push(Proxy {
        kind: "outrigger",
        admin,
        ports,
        _backends: backends,
        _envoy: None,
        _sidecar: Some(sidecar),
    });
    proxies
}

// ---------------------------------------------------------------------------------------------------------------
// Probes and what is compared of their replies.

struct Probe {
    listener: &'static str,
    head: String,
    body: Vec<u8>,
}

fn probe(listener: &'static str, request_line: &str, headers: &[&str], body: Vec<u8>) -> Probe {
    let mut head = request_line.to_string();
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    if !body.is_empty() && !headers.iter().any(|h| h.starts_with("transfer-encoding")) {
        head.push_str(&format!("\r\ncontent-length: {}", body.len()));
    }
    Probe {
        listener,
        head,
        body,
    }
}

/// A body in two chunks of HTTP/1.1's chunked coding.
fn chunked(body: &[u8]) -> Vec<u8> {
    let (a, b) = body.split_at(body.len() / 2);
    let mut out = Vec::new();
    for part in [a, b] {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[derive(Debug, Clone, PartialEq)]
struct View {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// The reply's body as compared: a zstd body (from the zstd compressor, whose bytes differ between encoders)
/// decoded with the crate, any other as its bytes.
fn body_of(reply: &Reply) -> Vec<u8> {
    if reply.headers.get("content-encoding").map(String::as_str) == Some("zstd")
        && let Ok(decoded) = zstd::stream::decode_all(&reply.raw[..])
    {
        return decoded;
    }
    reply.raw.clone()
}

fn view(reply: &Reply) -> View {
    let body = body_of(reply);
    View {
        status: reply.status,
        headers: COMPARED
            .iter()
            .filter_map(|name| {
                let value = reply.headers.get(*name)?;
                // A length is compared by value when the bridge set it; otherwise only whether one was sent.
                let value =
                    if *name == "content-length" && !reply.headers.contains_key("grpc-status") {
                        "set".to_string()
                    } else {
                        value.clone()
                    };
                Some((name.to_string(), value))
            })
            .collect(),
        body: match known(&body).as_str() {
            other if other.starts_with("other") => hex(&body[..body.len().min(64)]) + other,
            name => name.to_string(),
        },
    }
}

async fn run(proxies: &[Proxy], probes: &[Probe]) -> Vec<Vec<Reply>> {
    let mut all = Vec::new();
    for proxy in proxies {
        let mut replies = Vec::new();
        for p in probes {
            replies.push(send(proxy.ports[p.listener], &p.head, &p.body).await);
        }
        all.push(replies);
    }
    all
}

/// Outrigger's views must equal Envoy's, probe by probe; `expect` holds Outrigger to what a probe must show
/// even without Envoy.
fn agree(proxies: &[Proxy], probes: &[Probe], replies: &[Vec<Reply>]) {
    if proxies.len() < 2 {
        return;
    }
    let mut wrong = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let envoy = view(&replies[0][i]);
        let ours = view(&replies[1][i]);
        if envoy != ours {
            wrong.push(format!(
                "{} {:?}:\n  envoy:     {envoy:?}\n  outrigger: {ours:?}",
                p.listener, p.head
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "Outrigger differs from Envoy 1.40:\n{}",
        wrong.join("\n")
    );
}

async fn agree_stats(proxies: &[Proxy]) {
    let mut all = Vec::new();
    for proxy in proxies {
        let stats: BTreeMap<String, u64> = proxy
            .stats()
            .await
            .into_iter()
            .map(|(name, value)| {
                // Only the zstd compressor's output differs between encoders.
                if name.starts_with("http.zst.compressor.") && name.ends_with("compressed_bytes") {
                    (name, u64::from(value > 0))
                } else {
                    (name, value)
                }
            })
            .collect();
        all.push((proxy.kind, stats));
    }
    if all.len() < 2 {
        return;
    }
    let (envoy, ours) = (&all[0].1, &all[1].1);
    let names: std::collections::BTreeSet<&String> = envoy.keys().chain(ours.keys()).collect();
    let wrong: Vec<String> = names
        .into_iter()
        .filter(|n| envoy.get(*n) != ours.get(*n))
        .map(|n| format!("{n}: envoy {:?}, outrigger {:?}", envoy.get(n), ours.get(n)))
        .collect();
    assert!(wrong.is_empty(), "statistics differ:\n{}", wrong.join("\n"));
}

/// What an HTTP/2 client (prior knowledge) gets: status, headers, body and trailers, as compared.
#[derive(Debug, PartialEq)]
struct H2Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    trailers: Vec<(String, String)>,
}

async fn h2_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> H2Reply {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let task = tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://filters.test{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let exchange = async {
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let kept = |map: &http::HeaderMap| -> Vec<(String, String)> {
            map.iter()
                .filter(|(name, _)| {
                    let name = name.as_str();
                    COMPARED.contains(&name) || name.starts_with("x-envoy-decompressor-")
                })
                .filter(|(name, _)| name.as_str() != "content-length")
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
                .collect()
        };
        let headers = kept(response.headers());
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().map(kept).unwrap_or_default();
        let body = collected.to_bytes();
        H2Reply {
            status,
            headers,
            body: known(&body),
            trailers,
        }
    };
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("no HTTP/2 response");
    task.abort();
    reply
}

fn outrigger_replies(replies: &[Vec<Reply>]) -> &[Reply] {
    replies.last().unwrap()
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompressor_like_envoy() {
    let proxies = start("decompressor").await;
    let post = "POST /plain HTTP/1.1";
    let probes = vec![
        probe("dec", post, &["content-encoding: gzip"], gzip(&upload())),
        probe("dec", post, &["content-encoding: br"], brotli(&upload())),
        probe(
            "dec",
            post,
            &["content-encoding: gzip", "transfer-encoding: chunked"],
            chunked(&gzip(&upload())),
        ),
        probe(
            "dec",
            post,
            &["content-encoding: br, gzip"],
            brotli(&upload()),
        ),
        probe("dec", post, &[], upload()),
        probe("dec", post, &["content-encoding: deflate"], upload()),
        probe(
            "dec",
            post,
            &["content-encoding: GZIP", "cache-control: no-transform"],
            gzip(&upload()),
        ),
        probe(
            "dec",
            "GET /plain HTTP/1.1",
            &["accept-encoding: gzip;q=0.5, deflate"],
            vec![],
        ),
        probe(
            "dec",
            "GET /plain HTTP/1.1",
            &["accept-encoding: GZIP, br"],
            vec![],
        ),
        probe("dec", "GET /gzip HTTP/1.1", &[], vec![]),
        probe("dec", "GET /br HTTP/1.1", &[], vec![]),
        probe("dec", "GET /gzipbr HTTP/1.1", &[], vec![]),
        probe("dec", "GET /upper HTTP/1.1", &[], vec![]),
        probe("dec", "GET /nt HTTP/1.1", &[], vec![]),
        probe("dec", "GET /zstd HTTP/1.1", &[], vec![]),
        probe("dec", "HEAD /gzip HTTP/1.1", &[], vec![]),
        probe("dec", "GET /broken HTTP/1.1", &[], vec![]),
        probe("dec", "GET /bomb HTTP/1.1", &[], vec![]),
    ];
    let replies = run(&proxies, &probes).await;
    let ours = outrigger_replies(&replies);
    // Without Envoy too: the backend got the upload decoded, the client the payload decoded.
    assert_eq!(ours[0].headers["x-seen-body"], "upload");
    assert_eq!(ours[0].headers["x-seen-content-encoding"], "");
    assert_eq!(ours[1].headers["x-seen-body"], "upload");
    assert_eq!(ours[2].headers["x-seen-body"], "upload");
    assert_eq!(ours[3].headers["x-seen-content-encoding"], "gzip");
    assert_eq!(ours[9].raw, payload());
    assert_eq!(ours[10].raw, payload());
    assert_eq!(ours[7].headers["x-seen-accept-encoding"], "deflate,gzip,br");
    agree(&proxies, &probes, &replies);
    agree_stats(&proxies).await;
    // Over HTTP/2 the client also gets the byte counts as trailers.
    let mut h2 = Vec::new();
    for proxy in &proxies {
        let port = proxy.ports["dec"];
        h2.push(vec![
            h2_exchange(port, "GET", "/gzip", &[], vec![]).await,
            h2_exchange(port, "GET", "/br", &[], vec![]).await,
            h2_exchange(
                port,
                "POST",
                "/plain",
                &[("content-encoding", "gzip")],
                gzip(&upload()),
            )
            .await,
        ]);
    }
    let ours = h2.last().unwrap();
    assert_eq!(ours[0].body, "payload");
    assert!(
        ours[0].trailers.contains(&(
            "x-envoy-decompressor-up-uncompressed-bytes".into(),
            payload().len().to_string()
        )),
        "{:?}",
        ours[0].trailers
    );
    if h2.len() == 2 {
        assert_eq!(h2[0], h2[1], "HTTP/2: Envoy 1.40 first, Outrigger second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompressor_options_like_envoy() {
    let proxies = start("options").await;
    let post = "POST /plain HTTP/1.1";
    let probes = vec![
        probe(
            "opts",
            post,
            &["content-encoding: gzip", "cache-control: no-transform"],
            gzip(&upload()),
        ),
        probe("opts", post, &["content-encoding: gzip"], gzip(&far())),
        probe("opts", post, &["content-encoding: br"], brotli(&upload())),
        probe(
            "opts",
            "GET /plain HTTP/1.1",
            &["accept-encoding: br"],
            vec![],
        ),
        probe("opts", "GET /nt HTTP/1.1", &[], vec![]),
        probe("opts", "GET /br HTTP/1.1", &[], vec![]),
        probe("opts", "GET /far HTTP/1.1", &[], vec![]),
        probe("opts", "GET /bomb HTTP/1.1", &[], vec![]),
        // The buffer filter's 413, made before the decompressors, still counts in their response statistics.
        probe(
            "opts",
            post,
            &["content-encoding: gzip"],
            vec![b'x'; 200_000],
        ),
    ];
    let replies = run(&proxies, &probes).await;
    let ours = outrigger_replies(&replies);
    assert_eq!(ours[0].headers["x-seen-body"], "upload");
    // No encoding advertised: the gzip decompressor is told not to, the brotli one decodes no responses.
    assert_eq!(ours[3].headers["x-seen-accept-encoding"], "br");
    assert_eq!(ours[4].raw, payload());
    assert_eq!(ours[5].headers["content-encoding"], "br");
    // The 512-byte window cannot decode what reaches further back; the bomb stops past 20 times its size.
    assert!(ours[6].raw.len() < far().len());
    assert!(ours[7].raw.len() < 1_000_000);
    agree(&proxies, &probes, &replies);
    agree_stats(&proxies).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_like_envoy() {
    let proxies = start("zstd").await;
    let post = "POST /plain HTTP/1.1";
    let probes = vec![
        probe(
            "zst",
            "GET /plain HTTP/1.1",
            &["accept-encoding: zstd"],
            vec![],
        ),
        probe("zst", "GET /zstd HTTP/1.1", &[], vec![]),
        probe("zst", post, &["content-encoding: zstd"], zstd(&upload())),
        probe(
            "zst",
            post,
            &["content-encoding: zstd", "transfer-encoding: chunked"],
            chunked(&zstd(&upload())),
        ),
    ];
    let replies = run(&proxies, &probes).await;
    let ours = outrigger_replies(&replies);
    // Outrigger's zstd, decoded by the crate (the reference C library)...
    assert_eq!(ours[0].headers["content-encoding"], "zstd");
    assert_eq!(
        zstd::stream::decode_all(&ours[0].raw[..]).unwrap(),
        payload()
    );
    // ... carries a checksum (`enable_checksum`).
    assert_eq!(ours[0].raw[4] & 0x04, 0x04);
    assert_eq!(ours[1].raw, payload());
    assert_eq!(ours[2].headers["x-seen-body"], "upload");
    assert_eq!(ours[3].headers["x-seen-body"], "upload");
    agree(&proxies, &probes, &replies);
    agree_stats(&proxies).await;
    if proxies.len() == 2 {
        // Each proxy's zstd decoded by the other's decompressor.
        let envoy_made = replies[0][0].raw.clone();
        let ours_made = ours[0].raw.clone();
        assert_eq!(
            zstd::stream::decode_all(&envoy_made[..]).unwrap(),
            payload()
        );
        for (proxy, body) in [(&proxies[0], ours_made), (&proxies[1], envoy_made)] {
            let headers = ["content-encoding: zstd"];
            let p = probe("zst", post, &headers, body);
            let reply = send(proxy.ports["zst"], &p.head, &p.body).await;
            assert_eq!(reply.headers["x-seen-body"], "payload", "{}", proxy.kind);
        }
    }
}

/// A gRPC message: no compression, its length, the bytes.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_http1_bridge_like_envoy() {
    let proxies = start("bridge").await;
    let grpc = ["content-type: application/grpc", "te: trailers"];
    let message = grpc_frame(b"hello");
    let probes = vec![
        probe(
            "bridge",
            "POST /svc.Echo/Ok HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "bridge",
            "POST /svc.Echo/Fail HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "bridge",
            "POST /svc.Echo/Only HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "bridge",
            "POST /svc.Echo/Ok HTTP/1.1",
            &["content-type: application/grpc+proto"],
            message.clone(),
        ),
        probe(
            "upgrade",
            "POST /svc.Echo/Ok?x=1 HTTP/1.1",
            &["content-type: application/x-protobuf"],
            b"hello".to_vec(),
        ),
        probe(
            "upgrade",
            "POST /svc.Echo/Fail HTTP/1.1",
            &["content-type: application/x-protobuf"],
            b"hello".to_vec(),
        ),
        probe(
            "upgrade",
            "POST /svc.Echo/Ok?y=2 HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "upgrade",
            "POST /svc.Echo/Ok?z=3 HTTP/1.1",
            &["content-type: text/plain"],
            message.clone(),
        ),
        probe(
            "bridge",
            "POST /svc.Echo/Ok?y=2 HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "ignoreq",
            "POST /svc.Echo/Ok?y=2 HTTP/1.1",
            &grpc,
            message.clone(),
        ),
        probe(
            "ignoreq",
            "POST /svc.Echo/Ok?y=2 HTTP/1.1",
            &["content-type: application/x-protobuf"],
            b"hello".to_vec(),
        ),
        probe(
            "bridge",
            "POST /svc.Echo/Big HTTP/1.1",
            &grpc,
            message.clone(),
        ),
    ];
    let replies = run(&proxies, &probes).await;
    let ours = outrigger_replies(&replies);
    assert_eq!(ours[0].status, 200);
    assert_eq!(ours[0].headers["grpc-status"], "0");
    assert_eq!(ours[0].raw, message);
    assert_eq!(ours[1].status, 503);
    assert_eq!(ours[1].headers["grpc-message"], "boom");
    assert_eq!(ours[4].raw, b"hello");
    assert_eq!(ours[4].headers["x-seen-body"], hex(&message));
    agree(&proxies, &probes, &replies);
    agree_stats(&proxies).await;
    // An HTTP/2 client is not bridged: the status and trailers stay as the backend sent them.
    let mut h2 = Vec::new();
    for proxy in &proxies {
        let headers = [("content-type", "application/grpc"), ("te", "trailers")];
        let port = proxy.ports["bridge"];
        h2.push(h2_exchange(port, "POST", "/svc.Echo/Fail", &headers, message.clone()).await);
    }
    let ours = h2.last().unwrap();
    assert_eq!(ours.status, 200);
    assert!(ours.trailers.contains(&("grpc-status".into(), "13".into())));
    if h2.len() == 2 {
        assert_eq!(h2[0], h2[1], "HTTP/2: Envoy 1.40 first, Outrigger second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_user_agent_like_envoy() {
    let proxies = start("user-agent").await;
    let probes = vec![
        probe("bridge", "GET /app/plain HTTP/1.1", &[], vec![]),
        probe(
            "bridge",
            "GET /app/plain HTTP/1.1",
            &["user-agent: curl/8"],
            vec![],
        ),
        probe(
            "bridge",
            "GET /app/plain HTTP/1.1",
            &[
                "user-agent:",
                "x-envoy-downstream-service-cluster: forged",
                "x-envoy-downstream-service-node: forged",
            ],
            vec![],
        ),
        probe(
            "dec",
            "GET /plain HTTP/1.1",
            &["user-agent: curl/8"],
            vec![],
        ),
    ];
    let replies = run(&proxies, &probes).await;
    let ours = outrigger_replies(&replies);
    assert_eq!(ours[0].headers["x-seen-user-agent"], "decomp-cluster");
    assert_eq!(
        ours[0].headers["x-seen-downstream-cluster"],
        "decomp-cluster"
    );
    assert_eq!(ours[0].headers["x-seen-downstream-node"], "decomp-node");
    assert_eq!(ours[1].headers["x-seen-user-agent"], "curl/8");
    assert_eq!(ours[3].headers["x-seen-downstream-cluster"], "");
    agree(&proxies, &probes, &replies);
}
