//! TLS contexts built from the configuration, and rebuilt when their files change: a rotated certificate serves
//! the next handshake, while connections already established keep the session they negotiated.

use super::identity::Identity;
use super::key_pair::certified_key;
use super::secrets::Secrets;
use super::source;
use super::verify::{DownstreamVerifier, UpstreamVerifier};
use outrigger_config::model::core::DataSource;
use outrigger_config::model::tls::{CommonTls, DownstreamTls, TlsVersion, UpstreamTls};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::ServerName;
use std::sync::{Arc, Mutex, RwLock};

/// The files (or inline values) one context is made of, read once.
struct Material {
    chain: Option<Arc<CertifiedKey>>,
    roots: Option<Arc<RootCertStore>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The sources of a context, in a fixed order: certificate chain, private key, trusted CA.
fn sources(common: &CommonTls) -> Vec<DataSource> {
    let mut list = Vec::new();
    if let Some(first) = common.certificates.first() {
        list.push(first.certificate_chain.clone());
        list.push(first.private_key.clone());
    }
    if let Some(ca) = common
        .validation
        .as_ref()
        .and_then(|v| v.trusted_ca.clone())
    {
        list.push(ca);
    }
    list
}

fn material(common: &CommonTls, bytes: &[Vec<u8>]) -> Result<Material, String> {
    let mut next = bytes.iter();
    let mut take = || next.next().map(Vec::as_slice).unwrap_or_default();
    let chain = match common.certificates.first() {
        Some(first) => {
            let chain = source::certificates(take(), &source::describe(&first.certificate_chain))?;
            let key = source::private_key(take(), &source::describe(&first.private_key))?;
            // A certificate and key that do not belong together (say, half-way through a rotation) must not be
            // served: the handshake would fail for every peer.
            Some(certified_key(
                chain,
                key,
                &provider(),
                &source::describe(&first.certificate_chain),
                &source::describe(&first.private_key),
            )?)
        }
        None => None,
    };
    let roots = match common
        .validation
        .as_ref()
        .and_then(|v| v.trusted_ca.as_ref())
    {
        Some(ca) => Some(Arc::new(source::roots(take(), &source::describe(ca))?)),
        None => None,
    };
    Ok(Material { chain, roots })
}

fn versions(common: &CommonTls) -> Vec<&'static SupportedProtocolVersion> {
    let mut list = Vec::new();
    if common.min_version <= TlsVersion::V1_3 && common.max_version >= TlsVersion::V1_3 {
        list.push(&rustls::version::TLS13);
    }
    if common.min_version <= TlsVersion::V1_2 && common.max_version >= TlsVersion::V1_2 {
        list.push(&rustls::version::TLS12);
    }
    list
}

fn alpn(protocols: &[String]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// A server-side context (a filter chain's `DownstreamTlsContext`).
pub struct ServerTls {
    pub config: DownstreamTls,
    current: Reloadable<ServerState>,
}

/// What a handshake uses, and what it tells about this side.
pub struct ServerState {
    pub config: Arc<ServerConfig>,
    /// The URI SAN of the certificate served (`By` in `x-forwarded-client-cert`).
    pub local_uri: Option<String>,
}

impl ServerTls {
    /// Reads its files (or its secrets' sources) now. A secret not delivered yet leaves it without a
    /// configuration (not ready) until [`ServerTls::prepare`] gets one.
    pub fn new(config: &DownstreamTls, secrets: &Secrets) -> Result<Self, String> {
        let resolved = secrets.resolve(&config.common)?;
        let ctx = config.clone();
        let build = move |common: &CommonTls, bytes: &[Vec<u8>]| server_config(&ctx, common, bytes);
        Ok(Self {
            config: config.clone(),
            current: Reloadable::new(resolved, Box::new(build))?,
        })
    }

    /// The configuration for the next handshake; `None` while a secret it names has not arrived.
    pub fn current(&self) -> Option<Arc<ServerState>> {
        self.current.get()
    }

    /// The rebuilt configuration when the secrets it names changed (applied by `commit`).
    pub fn prepare(&self, secrets: &Secrets) -> Result<Option<Prepared<ServerState>>, String> {
        self.current.prepare(secrets.resolve(&self.config.common)?)
    }

    pub fn commit(&self, prepared: Prepared<ServerState>) {
        self.current.commit(prepared, "server TLS context");
    }
}

/// `common` is the context's own with its secrets in place.
fn server_config(
    ctx: &DownstreamTls,
    common: &CommonTls,
    bytes: &[Vec<u8>],
) -> Result<ServerState, String> {
    let material = material(common, bytes)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(common))
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (&common.validation, &material.roots) {
        (Some(validation), Some(roots)) => {
            let mut chain = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
            if !ctx.require_client_certificate {
                chain = chain.allow_unauthenticated();
            }
            let chain = chain
                .build()
                .map_err(|e| format!("trusted_ca cannot verify client certificates: {e}"))?;
            builder.with_client_cert_verifier(Arc::new(DownstreamVerifier {
                chain,
                sans: validation.match_typed_subject_alt_names.clone(),
            }))
        }
        _ => builder.with_no_client_auth(),
    };
    let certified = material
        .chain
        .ok_or("a server-side TLS context needs a certificate")?;
    let local_uri = Identity::from_chain(&certified.cert).and_then(|i| i.uris.first().cloned());
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn(&common.alpn_protocols);
    Ok(ServerState {
        config: Arc::new(config),
        local_uri,
    })
}

/// Which application protocol an upstream connection will speak, when the context leaves ALPN to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alpn {
    /// The configured `alpn_protocols` (maybe none): TCP proxying.
    Configured,
    Http1,
    Http2,
}

/// Client-side configurations of one `UpstreamTlsContext`, by ALPN.
pub struct ClientConfigs {
    configured: Arc<ClientConfig>,
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
    /// The URI SAN of the client certificate, when there is one (Istio's `source_principal`).
    local_uri: Option<Arc<str>>,
}

/// A client-side context (a cluster's `UpstreamTlsContext`).
pub struct ClientTls {
    pub config: UpstreamTls,
    current: Reloadable<ClientConfigs>,
}

impl ClientTls {
    /// As [`ServerTls::new`].
    pub fn new(config: &UpstreamTls, secrets: &Secrets) -> Result<Self, String> {
        let resolved = secrets.resolve(&config.common)?;
        let ctx = config.clone();
        let build =
            move |common: &CommonTls, bytes: &[Vec<u8>]| client_configs(&ctx, common, bytes);
        Ok(Self {
            config: config.clone(),
            current: Reloadable::new(resolved, Box::new(build))?,
        })
    }

    /// The configuration for the next handshake (`None` while a secret it names has not arrived). HTTP offers
    /// `h2` or `http/1.1` by ALPN when the context configures no protocols, as Envoy does.
    pub fn current(&self, alpn: Alpn) -> Option<Arc<ClientConfig>> {
        let configs = self.current.get()?;
        Some(match alpn {
            Alpn::Configured => configs.configured.clone(),
            Alpn::Http1 => configs.http1.clone(),
            Alpn::Http2 => configs.http2.clone(),
        })
    }

    /// As [`ServerTls::prepare`].
    pub fn prepare(&self, secrets: &Secrets) -> Result<Option<Prepared<ClientConfigs>>, String> {
        self.current.prepare(secrets.resolve(&self.config.common)?)
    }

    /// The SPIFFE ID of the client certificate in force, when it has one.
    pub fn local_uri(&self) -> Option<Arc<str>> {
        self.current.get()?.local_uri.clone()
    }

    pub fn commit(&self, prepared: Prepared<ClientConfigs>) {
        self.current.commit(prepared, "upstream TLS context");
    }

    /// The name to put in the ClientHello. Without `sni`, none is sent (rustls does not send an IP address).
    pub fn server_name(&self, address: std::net::SocketAddr) -> ServerName<'static> {
        self.config
            .sni
            .as_ref()
            .and_then(|sni| ServerName::try_from(sni.clone()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(address.ip().into()))
    }
}

fn client_configs(
    ctx: &UpstreamTls,
    common: &CommonTls,
    bytes: &[Vec<u8>],
) -> Result<ClientConfigs, String> {
    let material = material(common, bytes)?;
    let provider = provider();
    let verifier = Arc::new(UpstreamVerifier {
        roots: material.roots.clone(),
        sans: common
            .validation
            .as_ref()
            .map(|v| v.match_typed_subject_alt_names.clone())
            .unwrap_or_default(),
        algorithms: provider.signature_verification_algorithms,
    });
    let build = |protocols: Vec<Vec<u8>>| -> Result<Arc<ClientConfig>, String> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(common))
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match &material.chain {
            Some(certified) => builder
                .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone()))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = protocols;
        // Envoy sends no SNI unless `sni` is set.
        config.enable_sni = ctx.sni.is_some();
        Ok(Arc::new(config))
    };
    let configured = alpn(&common.alpn_protocols);
    let or = |default: &str| {
        if configured.is_empty() {
            vec![default.as_bytes().to_vec()]
        } else {
            configured.clone()
        }
    };
    let local_uri = material
        .chain
        .as_ref()
        .and_then(|certified| Identity::from_chain(&certified.cert))
        .and_then(|i| i.uris.first().map(|u| Arc::from(u.as_str())));
    Ok(ClientConfigs {
        local_uri,
        configured: build(configured.clone())?,
        http1: build(or("http/1.1"))?,
        http2: build(or("h2"))?,
    })
}

type Build<T> = Box<dyn Fn(&CommonTls, &[Vec<u8>]) -> Result<T, String> + Send + Sync>;

/// What the current value was built from: the context with its secrets in place (`None` while one has not
/// arrived), the bytes its sources held, and the last bytes that failed to build.
struct Inputs {
    common: Option<CommonTls>,
    seen: Vec<Vec<u8>>,
    failed: Option<Vec<Vec<u8>>>,
}

/// A value built from a TLS context's sources, rebuilt by `reload` when their bytes change (file rotation), or
/// by `prepare` + `commit` when the secrets it names change (SDS). A rebuild that fails (a certificate written
/// before its key, a truncated file) keeps the previous value and says why, once.
pub struct Reloadable<T> {
    build: Build<T>,
    inputs: Mutex<Inputs>,
    current: RwLock<Option<Arc<T>>>,
}

/// A value built for new secrets, not in use yet.
pub struct Prepared<T> {
    common: CommonTls,
    bytes: Vec<Vec<u8>>,
    value: T,
}

impl<T> Reloadable<T> {
    fn new(common: Option<CommonTls>, build: Build<T>) -> Result<Self, String> {
        let (value, seen) = match &common {
            Some(common) => {
                let bytes = read_all(&sources(common))?;
                (Some(Arc::new(build(common, &bytes)?)), bytes)
            }
            None => (None, Vec::new()),
        };
        Ok(Self {
            build,
            inputs: Mutex::new(Inputs {
                common,
                seen,
                failed: None,
            }),
            current: RwLock::new(value),
        })
    }

    fn get(&self) -> Option<Arc<T>> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn inputs(&self) -> std::sync::MutexGuard<'_, Inputs> {
        match self.inputs.lock() {
            Ok(inputs) => inputs,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// True when any source is a file (inline values and environment variables do not change).
    fn watches_files(&self) -> bool {
        self.inputs().common.as_ref().is_some_and(|common| {
            sources(common)
                .iter()
                .any(|s| matches!(s, DataSource::Filename(_)))
        })
    }

    /// Builds the value for `common` (the context with its secrets in place) when it differs from the one in
    /// use. `None` (a secret gone) keeps the value in use, as Envoy keeps the last secret it had.
    fn prepare(&self, common: Option<CommonTls>) -> Result<Option<Prepared<T>>, String> {
        let Some(common) = common else {
            return Ok(None);
        };
        if self.inputs().common.as_ref() == Some(&common) {
            return Ok(None);
        }
        let bytes = read_all(&sources(&common))?;
        let value = (self.build)(&common, &bytes)?;
        Ok(Some(Prepared {
            common,
            bytes,
            value,
        }))
    }

    fn commit(&self, prepared: Prepared<T>, what: &str) {
        let mut inputs = self.inputs();
        let first = inputs.common.is_none();
        self.set(prepared.value);
        *inputs = Inputs {
            common: Some(prepared.common),
            seen: prepared.bytes,
            failed: None,
        };
        if first {
            tracing::info!("{what}: its secrets arrived; handshakes can start");
        } else {
            tracing::info!("{what}: secrets updated; new handshakes use them");
        }
    }

    fn set(&self, value: T) {
        match self.current.write() {
            Ok(mut current) => *current = Some(Arc::new(value)),
            Err(poisoned) => *poisoned.into_inner() = Some(Arc::new(value)),
        }
    }

    /// Rereads the sources; rebuilds when they changed. Returns true when a new value took over.
    fn reload(&self, what: &str) -> bool {
        let mut inputs = self.inputs();
        let Some(common) = inputs.common.clone() else {
            return false;
        };
        let Ok(bytes) = read_all(&sources(&common)) else {
            // A file missing for a moment during a rotation: try again on the next tick.
            return false;
        };
        if inputs.seen == bytes || inputs.failed.as_ref() == Some(&bytes) {
            return false;
        }
        match (self.build)(&common, &bytes) {
            Ok(value) => {
                self.set(value);
                inputs.seen = bytes;
                inputs.failed = None;
                tracing::info!("{what}: certificates reloaded; new handshakes use them");
                true
            }
            Err(e) => {
                tracing::warn!(
                    "{what}: changed certificate files are not usable yet, so the previous ones stay in use: {e}"
                );
                inputs.failed = Some(bytes);
                false
            }
        }
    }
}

fn read_all(sources: &[DataSource]) -> Result<Vec<Vec<u8>>, String> {
    sources.iter().map(source::read).collect()
}

/// Something that can reread its files.
pub trait Watched: Send + Sync {
    fn reload(&self) -> bool;
    /// True when its sources are files, or may become files (it names secrets).
    fn watches_files(&self) -> bool;
}

impl Watched for ServerTls {
    fn reload(&self) -> bool {
        self.current.reload("server TLS context")
    }
    fn watches_files(&self) -> bool {
        self.config.common.secrets().next().is_some() || self.current.watches_files()
    }
}

impl Watched for ClientTls {
    fn reload(&self) -> bool {
        self.current.reload("upstream TLS context")
    }
    fn watches_files(&self) -> bool {
        self.config.common.secrets().next().is_some() || self.current.watches_files()
    }
}
