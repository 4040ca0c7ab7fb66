//! The upstream the benchmark talks to, in-process on its own thread and
//! single-threaded runtime: plain HTTP and HTTPS (HTTP/1.1 and HTTP/2 by
//! ALPN) on 127.0.0.1, with a test CA the proxy is told to trust.
//!
//! Paths: `/small` (a 358-byte JSON body), `/1m` (1 MiB), `/stream?bytes=N`
//! (N bytes in 64 KiB frames), `/upload` (reads the request body, answers
//! its length).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The small response: 358 bytes of JSON, as the shared harness serves.
pub fn small_body() -> Bytes {
    let mut body = String::from(r#"{"id":"ord_1","status":"ok","items":["#);
    while body.len() < 340 {
        body.push_str(r#"{"sku":"A1"},"#);
    }
    body.pop();
    body.push_str("],\"pad\":\"");
    while body.len() < 356 {
        body.push('x');
    }
    body.push_str("\"}");
    Bytes::from(body)
}

pub const ONE_MIB: usize = 1024 * 1024;
const FRAME: usize = 64 * 1024;

/// A body of `left` bytes sent as 64 KiB frames of one shared buffer: no
/// copy, no allocation per frame. Serves both the upstream's downloads and
/// the client's uploads.
pub struct Repeat {
    chunk: Bytes,
    left: u64,
}

impl Repeat {
    pub fn new(bytes: u64) -> Self {
        Self {
            chunk: Bytes::from(vec![b'r'; FRAME]),
            left: bytes,
        }
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(FRAME as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The upstream's answers: a whole buffer or a repeated frame.
pub enum Answer {
    Full(Option<Bytes>),
    Repeat(Repeat),
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Answer::Repeat(r) => Pin::new(r).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Full(data) => data.is_none(),
            Answer::Repeat(r) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Answer::Repeat(r) => r.size_hint(),
        }
    }
}

/// The running upstream.
pub struct Upstream {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// The test CA's certificate (trust it to reach `https` directly).
    pub ca_pem: PathBuf,
    pub ca_der: CertificateDer<'static>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the upstream on a thread of its own; its CA goes into `dir`.
pub fn start(dir: &Path) -> anyhow::Result<Upstream> {
    let (ca_der, ca_pem_text, tls) = test_pki()?;
    let ca_pem = dir.join("upstream-ca.pem");
    std::fs::write(&ca_pem, ca_pem_text).context("writing the upstream CA")?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?;
    let https = std::net::TcpListener::bind("127.0.0.1:0")?;
    http.set_nonblocking(true)?;
    https.set_nonblocking(true)?;
    let (http_addr, https_addr) = (http.local_addr()?, https.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("upstream".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => return eprintln!("upstream runtime: {err}"),
            };
            runtime.block_on(async move {
                let (Ok(http), Ok(https)) =
                    (TcpListener::from_std(http), TcpListener::from_std(https))
                else {
                    return eprintln!("upstream listeners could not be registered");
                };
                let acceptor = TlsAcceptor::from(tls);
                tokio::select! {
                    _ = stopped => {}
                    () = serve(http, None) => {}
                    () = serve(https, Some(acceptor)) => {}
                }
            });
        })?;
    Ok(Upstream {
        http: http_addr,
        https: https_addr,
        ca_pem,
        ca_der,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>) {
    let small = small_body();
    let one_mib = Bytes::from(vec![b'm'; ONE_MIB]);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (small, one_mib, tls) = (small.clone(), one_mib.clone(), tls.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, small.clone(), one_mib.clone()));
            let builder = auto::Builder::new(TokioExecutor::new());
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(_) => return,
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    small: Bytes,
    one_mib: Bytes,
) -> Result<Response<Answer>, Infallible> {
    let body = match req.uri().path() {
        "/small" => Answer::Full(Some(small)),
        "/1m" => Answer::Full(Some(one_mib)),
        "/stream" => {
            let bytes = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Answer::Repeat(Repeat::new(bytes))
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut read = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            Answer::Full(Some(Bytes::from(read.to_string())))
        }
        _ => Answer::Full(Some(Bytes::from_static(b"not found"))),
    };
    let mut res = Response::new(body);
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// A CA, and a server config for `localhost` and 127.0.0.1 signed by it.
fn test_pki() -> anyhow::Result<(CertificateDer<'static>, String, Arc<rustls::ServerConfig>)> {
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "authfault bench upstream CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((ca.der().clone(), ca.pem(), Arc::new(config)))
}
