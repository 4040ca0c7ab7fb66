//! The load side's connections: straight to the upstream, or through the
//! proxy (absolute-form requests for http, CONNECT then TLS with the proxy's
//! CA for https), as HTTP/1.1 or HTTP/2.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::upstream::{Repeat, Upstream};

/// How a client reaches the upstream.
#[derive(Clone)]
pub struct Route {
    /// `None`: directly.
    pub proxy: Option<SocketAddr>,
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// TLS towards whoever answers the handshake (the upstream, or the proxy's
    /// leaf), HTTP/1.1 only or HTTP/2 only. Each keeps the default session
    /// cache, so reconnecting clients resume as curl and browsers do.
    h1: TlsConnector,
    h2: TlsConnector,
}

impl Route {
    pub fn direct(upstream: &Upstream) -> anyhow::Result<Self> {
        Self::new(None, upstream, upstream.ca_der.clone())
    }

    /// Through the proxy at `proxy`, trusting the CA in `ca_pem`.
    pub fn proxied(proxy: SocketAddr, upstream: &Upstream, ca_pem: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(ca_pem).with_context(|| format!("reading {}", ca_pem.display()))?;
        let der = rustls_pemfile_first(&pem)?;
        Self::new(Some(proxy), upstream, der)
    }

    fn new(
        proxy: Option<SocketAddr>,
        upstream: &Upstream,
        root: CertificateDer<'static>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root)?;
        let config = |alpn: &[u8]| -> anyhow::Result<TlsConnector> {
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            proxy,
            http: upstream.http,
            https: upstream.https,
            h1: config(b"http/1.1")?,
            h2: config(b"h2")?,
        })
    }

    /// A plain HTTP/1.1 connection: to the upstream, or to the proxy.
    pub async fn http1(&self) -> anyhow::Result<Http1> {
        let stream = TcpStream::connect(self.proxy.unwrap_or(self.http)).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Http1 {
            send,
            absolute: self.proxy.is_some(),
            authority: self.http.to_string(),
        })
    }

    /// A TLS connection to `localhost` on the https port, through a CONNECT
    /// tunnel when proxied.
    async fn tls(&self, h2: bool) -> anyhow::Result<TlsStream<TcpStream>> {
        let authority = format!("localhost:{}", self.https.port());
        let mut stream = TcpStream::connect(self.proxy.unwrap_or(self.https)).await?;
        stream.set_nodelay(true)?;
        if self.proxy.is_some() {
            connect_tunnel(&mut stream, &authority).await?;
        }
        let connector = if h2 { &self.h2 } else { &self.h1 };
        let name = ServerName::try_from("localhost")?;
        Ok(connector.connect(name, stream).await?)
    }

    /// HTTP/1.1 over TLS.
    pub async fn https1(&self) -> anyhow::Result<Http1> {
        let tls = self.tls(false).await?;
        let (send, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Http1 {
            send,
            absolute: false,
            authority: format!("localhost:{}", self.https.port()),
        })
    }

    /// HTTP/2 over TLS; clone the handle for concurrent streams.
    pub async fn https2(&self) -> anyhow::Result<Http2> {
        let tls = self.tls(true).await?;
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1024 * 1024)
            .initial_connection_window_size(4 * 1024 * 1024)
            .handshake(TokioIo::new(tls))
            .await?;
        tokio::spawn(conn);
        Ok(Http2 {
            send,
            base: format!("https://localhost:{}", self.https.port()),
        })
    }
}

fn rustls_pemfile_first(pem: &[u8]) -> anyhow::Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::pem_slice_iter(pem)
        .next()
        .context("no certificate in the proxy's CA file")??;
    Ok(cert)
}

/// Sends CONNECT and reads the answer's header section.
async fn connect_tunnel(stream: &mut TcpStream, authority: &str) -> anyhow::Result<()> {
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the header section may be read here, it
    // belongs to TLS. A CONNECT answer is short.
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            bail!("the proxy closed the connection after CONNECT");
        }
        head.push(byte[0]);
        if head.len() > 8192 {
            bail!("CONNECT answer too long");
        }
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        bail!(
            "CONNECT refused: {}",
            String::from_utf8_lossy(&head).lines().next().unwrap_or("")
        );
    }
    Ok(())
}

/// Reads a response body to its end; returns its length.
pub async fn drain(res: hyper::Response<Incoming>) -> anyhow::Result<u64> {
    if !res.status().is_success() {
        bail!("status {}", res.status());
    }
    let mut body = res.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        n += frame?.data_ref().map_or(0, |d| d.len() as u64);
    }
    Ok(n)
}

/// An HTTP/1.1 connection (plain or TLS).
pub struct Http1 {
    send: http1::SendRequest<ReqBody>,
    /// Absolute-form request targets (to a forward proxy).
    absolute: bool,
    authority: String,
}

/// The request bodies the load sends: none, or an upload.
pub type ReqBody = http_body_util::Either<Empty<Bytes>, Repeat>;

impl Http1 {
    fn request(&self, method: &str, path: &str, body: ReqBody) -> anyhow::Result<Request<ReqBody>> {
        let uri: Uri = if self.absolute {
            format!("http://{}{path}", self.authority).parse()?
        } else {
            path.parse()?
        };
        Ok(Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::HOST, &self.authority)
            .header(http::header::AUTHORIZATION, crate::BEARER)
            .body(body)?)
    }

    /// GET `path`; the body read to its end.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<u64> {
        let req = self.request("GET", path, http_body_util::Either::Left(Empty::new()))?;
        self.send.ready().await?;
        drain(self.send.send_request(req).await?).await
    }

    /// POST `bytes` to `/upload`.
    pub async fn upload(&mut self, bytes: u64) -> anyhow::Result<u64> {
        let req = self.request(
            "POST",
            "/upload",
            http_body_util::Either::Right(Repeat::new(bytes)),
        )?;
        self.send.ready().await?;
        drain(self.send.send_request(req).await?).await
    }
}

/// An HTTP/2 connection; clones share it.
#[derive(Clone)]
pub struct Http2 {
    send: http2::SendRequest<ReqBody>,
    base: String,
}

impl Http2 {
    pub async fn get(&mut self, path: &str) -> anyhow::Result<u64> {
        let req = Request::get(format!("{}{path}", self.base))
            .header(http::header::AUTHORIZATION, crate::BEARER)
            .body(http_body_util::Either::Left(Empty::new()))?;
        self.send.ready().await?;
        drain(self.send.send_request(req).await?).await
    }
}
