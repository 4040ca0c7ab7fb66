//! The client towards upstreams: pooled connections, rustls verified against
//! the platform's roots, the webpki roots and `--upstream-ca`, HTTP/2 when the
//! upstream offers it, and the wait for response headers bounded by
//! `--upstream-timeout`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

use super::body::Body;
use super::error::ProxyError;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// HTTP/2 flow-control windows towards upstreams, shared with the client
/// side (`connect.rs`). One stream may have a whole 1 MiB answer in flight
/// without waiting for a WINDOW_UPDATE; the connection, which carries every
/// client's streams to that upstream, holds at most 4 MiB that clients have
/// not read yet (hyper's client defaults are 2 and 5 MiB). A 2 MiB
/// connection window saves about 2 MiB of peak RSS with 16 clients
/// downloading 1 MiB each (18.4 → 16.5 MiB in `cargo bench --bench proxy
/// -- https-1m`, no CPU cost once malloc stopped trimming, see main.rs),
/// but halves what one connection to a distant upstream can carry per
/// round trip (2 MiB per 100 ms is 20 MB/s for all its streams); kept at 4.
pub(crate) const H2_STREAM_WINDOW: u32 = 1024 * 1024;
pub(crate) const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// Largest HTTP/2 frame the peer may send: fewer, larger DATA frames per
/// body than the 16 KiB default, so less framing work per byte.
pub(crate) const H2_MAX_FRAME: u32 = 64 * 1024;

/// How the proxy reaches upstreams.
#[derive(Debug, Clone)]
pub struct Config {
    /// Extra roots trusted for upstream TLS (`--upstream-ca`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Skip certificate verification (`--insecure-upstream`).
    pub is_insecure: bool,
    /// Wait for the upstream's response headers at most this long.
    pub timeout: Duration,
    /// Wait for a TCP connection to an upstream at most this long.
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            extra_roots: Vec::new(),
            is_insecure: false,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

type Connector = HttpsConnector<HttpConnector>;

/// The pooled upstream clients.
pub struct Upstream {
    /// HTTP/2 or HTTP/1.1, as the upstream's ALPN says.
    client: Client<Connector, Body>,
    /// HTTP/1.1 only: a protocol switch (WebSocket) exists only there.
    upgrade_client: Client<Connector, Body>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Upstream {
    /// Builds the clients. Reading the platform's roots may take a few
    /// milliseconds; call it once at start-up.
    pub fn new(config: &Config, provider: Arc<CryptoProvider>) -> Result<Self, rustls::Error> {
        let tls = client_tls(config, provider)?;
        // The connector sets ALPN: h2 and http/1.1, or http/1.1 alone.
        let upgrade_tls = tls.clone();
        Ok(Self {
            client: pooled(connector(tls, true, config.connect_timeout)),
            upgrade_client: pooled(connector(upgrade_tls, false, config.connect_timeout)),
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
        })
    }

    /// Sends `req` (an absolute URI) and waits for the response headers.
    /// `authority` names the upstream in errors.
    pub async fn send(
        &self,
        req: Request<Body>,
        authority: &str,
        is_upgrade: bool,
    ) -> Result<Response<Incoming>, ProxyError> {
        let client = if is_upgrade {
            &self.upgrade_client
        } else {
            &self.client
        };
        match tokio::time::timeout(self.timeout, client.request(req)).await {
            Ok(Ok(res)) => Ok(res),
            Ok(Err(err)) => Err(ProxyError::from_upstream(
                authority,
                &err,
                self.connect_timeout,
            )),
            Err(_) => Err(ProxyError::UpstreamTimeout {
                authority: authority.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    /// Opens a plain TCP connection for a byte tunnel, within the timeout.
    pub async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
        let authority = format!("{host}:{port}");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ProxyError::ConnectTimeout {
                authority: authority.clone(),
                timeout: self.connect_timeout,
            })?
            .map_err(|err| ProxyError::UpstreamConnect {
                authority,
                reason: err.to_string(),
            })?;
        // Small writes (TLS records, handshakes) go out at once.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

fn pooled(connector: Connector) -> Client<Connector, Body> {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        .http2_max_frame_size(H2_MAX_FRAME)
        .build(connector)
}

fn connector(tls: ClientConfig, is_h2_allowed: bool, connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    if is_h2_allowed {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    }
}

fn client_tls(
    config: &Config,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut tls = if config.is_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(&config.extra_roots))
            .with_no_client_auth()
    };
    // hyper-rustls sets ALPN itself; resumption stays on (the default cache).
    tls.alpn_protocols.clear();
    Ok(tls)
}

fn roots(extra: &[CertificateDer<'static>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!("skipping a platform root store entry: {err}");
    }
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra.iter().cloned());
    roots
}

/// `--insecure-upstream`: accepts any certificate, still checks the
/// handshake signatures so the connection is at least to the key it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
