//! Shared test fixtures: a test CA for upstreams, HTTP and HTTPS upstreams on
//! 127.0.0.1:0 with a few routes, the proxy in-process or as the built
//! binary, and clients that trust the proxy's CA. No fixed ports, no
//! committed keys, no inherited `SSL_CERT_FILE`.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authfault::credential::jwt;
use authfault::proxy::{self, Proxy, Running};
use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub type TestBody = UnsyncBoxBody<Bytes, Infallible>;

/// Makes sure a test that hangs fails instead of blocking CI forever.
pub const GUARD: Duration = Duration::from_secs(30);

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A throwaway CA for upstream servers: the proxy trusts it through
/// `--upstream-ca`; clients never see it except through passthrough.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> Arc<Self> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign");
        Arc::new(Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A server config for `names` (DNS names or IPs) with the given ALPN.
    pub fn server_config(&self, names: &[&str], alpn: Alpn) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        config.alpn_protocols = alpn.protocols();
        Arc::new(config)
    }

    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("upstream-ca.pem");
        std::fs::write(&path, &self.pem).expect("write upstream CA");
        path
    }
}

/// Which protocols a TLS peer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H1,
    H2,
    Both,
}

impl Alpn {
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Self::H1 => vec![b"http/1.1".to_vec()],
            Self::H2 => vec![b"h2".to_vec()],
            Self::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

#[derive(Default)]
struct UpstreamState {
    hits: AtomicUsize,
    connections: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
}

/// A real upstream server on 127.0.0.1 with these routes:
/// `/echo` (reads the body, answers its SHA-256, size and HTTP version as
/// JSON), `/bytes/N` (N pattern bytes, streamed), `/headers`, `/trailers`,
/// `/slow/MS` (a first chunk, MS milliseconds of silence, the rest), `/ws`
/// (WebSocket echo), anything else `200 ok`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub ca: Option<Arc<TestCa>>,
    state: Arc<UpstreamState>,
}

impl Upstream {
    pub async fn http() -> Self {
        Self::start(None, None).await
    }

    /// HTTPS for `localhost` and 127.0.0.1, signed by its own test CA.
    pub async fn https(alpn: Alpn) -> Self {
        let ca = TestCa::new("upstream test CA");
        Self::https_signed(ca, &["localhost", "127.0.0.1"], alpn).await
    }

    pub async fn https_signed(ca: Arc<TestCa>, names: &[&str], alpn: Alpn) -> Self {
        let config = ca.server_config(names, alpn);
        Self::start(Some(ca), Some(config)).await
    }

    async fn start(ca: Option<Arc<TestCa>>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(UpstreamState::default());
        let acceptor = tls.map(TlsAcceptor::from);
        let task_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                task_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = task_state.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve_upstream(TokioIo::new(tls), state).await;
                            }
                        }
                        None => serve_upstream(TokioIo::new(stream), state).await,
                    }
                });
            }
        });
        Self { addr, ca, state }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:PORT/path` for TLS upstreams, else `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        match self.ca {
            Some(_) => format!("https://localhost:{}{path}", self.port()),
            None => format!("http://127.0.0.1:{}{path}", self.port()),
        }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> HeaderMap {
        self.state
            .last_headers
            .lock()
            .expect("lock")
            .clone()
            .expect("the upstream saw a request")
    }
}

async fn serve_upstream<I>(io: TokioIo<I>, state: Arc<UpstreamState>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(req, state).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await;
}

fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into()).boxed_unsync()
}

/// Deterministic bytes for `/bytes/N`, so a client can check what arrived.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn route(mut req: Request<Incoming>, state: Arc<UpstreamState>) -> Response<TestBody> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    *state.last_headers.lock().expect("lock") = Some(req.headers().clone());
    let path = req.uri().path().to_string();
    let version = format!("{:?}", req.version());
    if path == "/echo" {
        let mut hasher = Sha256::new();
        let mut bytes = 0usize;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                hasher.update(data);
                bytes += data.len();
            }
        }
        let json = serde_json::json!({
            "sha256": hex::encode(hasher.finalize()),
            "bytes": bytes,
            "version": version,
        });
        return Response::new(full(json.to_string()));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        let data = Bytes::from(pattern(n));
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = (0..n)
            .step_by(64 * 1024)
            .map(|i| Ok(Frame::data(data.slice(i..(i + 64 * 1024).min(n)))))
            .collect();
        return Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync());
    }
    if path.starts_with("/inspect") {
        let headers: Vec<serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| serde_json::json!([k.as_str(), v.to_str().unwrap_or("")]))
            .collect();
        let uri = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        return Response::new(full(
            serde_json::json!({"uri": uri, "headers": headers}).to_string(),
        ));
    }
    if path == "/token" {
        let mut res = Response::new(full(
            r#"{"access_token":"at-1","expires_in":3600,"token_type":"Bearer","scope":"a b"}"#,
        ));
        res.headers_mut()
            .insert("content-type", "application/json".parse().expect("value"));
        return res;
    }
    if path == "/headers" {
        let map: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
                )
            })
            .collect();
        return Response::new(full(serde_json::Value::Object(map).to_string()));
    }
    if path == "/trailers" {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("value"));
        trailers.insert("x-checksum", "abc123".parse().expect("value"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"trailers"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut res =
            Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync());
        res.headers_mut()
            .insert("trailer", "grpc-status, x-checksum".parse().expect("value"));
        return res;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        let stream = futures_util::stream::unfold(0u8, move |step| async move {
            match step {
                0 => Some((Ok(Frame::data(Bytes::from_static(b"start-"))), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Some((Ok(Frame::data(Bytes::from_static(b"end"))), 2))
                }
                _ => None,
            }
        });
        return Response::new(StreamBody::new(stream).boxed_unsync());
    }
    if path == "/ws" {
        return websocket_echo(&mut req);
    }
    if let Some(status) = path.strip_prefix("/answer/") {
        return answer(&req, status);
    }
    Response::new(full("ok"))
}

/// `/answer/STATUS[?challenge]`: that status, with a `WWW-Authenticate`
/// challenge when asked; the body echoes the `Authorization` it received,
/// as a careless API might.
fn answer(req: &Request<Incoming>, status: &str) -> Response<TestBody> {
    let status = status
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let seen = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = serde_json::json!({"status": status.as_u16(), "you_sent": seen}).to_string();
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", "application/json".parse().expect("value"));
    if req.uri().query().is_some_and(|q| q.contains("challenge")) {
        res.headers_mut().insert(
            "www-authenticate",
            r#"Bearer error="invalid_token""#.parse().expect("value"),
        );
    }
    res
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<TestBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full("not a websocket handshake"))
            .expect("response");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .expect("response")
}

/// Sends `GET /headers` with `Authorization: Bearer token` through `client`
/// and returns the `Authorization` the upstream received, if any.
pub async fn authorization_seen(
    client: &reqwest::Client,
    upstream: &Upstream,
    token: &str,
) -> Option<String> {
    let seen: serde_json::Value = client
        .get(upstream.url("/headers"))
        .bearer_auth(token)
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("the upstream's JSON");
    seen["authorization"].as_str().map(str::to_string)
}

/// A JWT for sub `ada` with scopes `orders:read orders:write`, signed with
/// HS256 and `test-secret`, expiring `exp_offset` seconds from now.
pub fn test_jwt(exp_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let header = jwt::B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = jwt::B64.encode(
        serde_json::json!({"sub": "ada", "iat": now - 60, "exp": now + exp_offset, "scope": "orders:read orders:write"})
            .to_string(),
    );
    let input = format!("{header}.{claims}");
    let key = jsonwebtoken::EncodingKey::from_secret(b"test-secret").expect("key");
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .expect("sign");
    format!("{input}.{sig}")
}

/// A rule set compiled from YAML text, for `TestProxy::start_with`.
pub fn rules(yaml: &str) -> Arc<arc_swap::ArcSwap<authfault::rules::set::RuleSet>> {
    let env = |name: &str| (name == "TEST_JWT_SECRET").then(|| "test-secret".to_string());
    let parsed = authfault::rules::load::parse_text(Path::new("test.yaml"), yaml, &env)
        .expect("rule file parses");
    let set = authfault::rules::set::RuleSet::compile(&[parsed], &env, 7).expect("rules compile");
    Arc::new(arc_swap::ArcSwap::from_pointee(set))
}

/// The proxy, started in-process with a fresh CA in a temporary folder and
/// trusting the given upstream CAs.
pub struct TestProxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl TestProxy {
    pub async fn start(upstream_cas: &[&TestCa]) -> Self {
        Self::start_with(upstream_cas, |_| {}).await
    }

    pub async fn start_with(
        upstream_cas: &[&TestCa],
        tune: impl FnOnce(&mut proxy::Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Arc::new(authfault::tls::ca::load_or_create(dir.path()).expect("CA"));
        let ca_pem = ca.cert_pem().to_string();
        let mut config = proxy::Config::new("127.0.0.1:0".parse().expect("addr"));
        config.upstream.extra_roots = upstream_cas.iter().map(|ca| ca.der.clone()).collect();
        config.upstream.timeout = Duration::from_secs(10);
        config.record.path = Some(dir.path().join("recording.jsonl"));
        tune(&mut config);
        let running = Proxy::start(config, ca).await.expect("proxy starts");
        Self {
            addr: running.local_addr(),
            running: Some(running),
            dir,
            ca_pem,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A reqwest client through the proxy that trusts only the proxy's CA,
    /// offering `alpn` in its TLS handshakes.
    pub fn client(&self, alpn: Alpn) -> reqwest::Client {
        client_via(&self.url(), &self.ca_pem, alpn, None)
    }

    /// TLS towards the proxy's leaves: trusts only its CA.
    pub fn tls(&self, alpn: Alpn) -> TlsConnector {
        tls_trusting(&[&self.ca_pem], alpn)
    }

    pub async fn shutdown(mut self) -> bool {
        self.stop().await.drained
    }

    /// Shuts down and returns how: drained, the summary, what was written.
    /// The folder (CA, recording) stays until the `TestProxy` is dropped.
    pub async fn stop(&mut self) -> proxy::Stopped {
        let running = self.running.take().expect("running");
        running.shutdown(Duration::from_secs(5)).await
    }

    /// Starts the admin API for this proxy on a free loopback port.
    pub async fn admin(&self, token: Option<&str>) -> authfault::admin::Admin {
        let running = self.running.as_ref().expect("running");
        authfault::admin::Admin::start(
            "127.0.0.1:0".parse().expect("addr"),
            running.handle(),
            token.and_then(authfault::admin::AdminToken::new),
            7,
        )
        .await
        .expect("admin starts")
    }

    /// Where the proxy records (every test proxy does, as `run` does by
    /// default).
    pub fn recording(&self) -> PathBuf {
        self.dir.path().join("recording.jsonl")
    }

    /// The records written so far, in order.
    pub fn records(&self) -> Vec<authfault::record::Record> {
        let (records, bad) = authfault::report::read(&[self.recording()]).expect("recording");
        assert!(bad.is_empty(), "every line is a record: {bad:?}");
        records
    }
}

/// A client that talks to 127.0.0.1 directly (the admin API), no proxy.
pub fn direct_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(client_tls(&[], Alpn::Both))
        .build()
        .expect("client")
}

pub fn client_via(
    proxy_url: &str,
    ca_pem: &str,
    alpn: Alpn,
    auth: Option<(&str, &str)>,
) -> reqwest::Client {
    let mut proxy = reqwest::Proxy::all(proxy_url).expect("proxy url");
    if let Some((user, pass)) = auth {
        proxy = proxy.basic_auth(user, pass);
    }
    let mut builder = reqwest::Client::builder()
        .proxy(proxy)
        .tls_backend_preconfigured(client_tls(&[ca_pem], alpn))
        .timeout(GUARD);
    if alpn == Alpn::H1 {
        builder = builder.http1_only();
    }
    builder.build().expect("client")
}

pub fn client_tls(ca_pems: &[&str], alpn: Alpn) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for pem in ca_pems {
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("pem")).expect("root");
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.protocols();
    config
}

pub fn tls_trusting(ca_pems: &[&str], alpn: Alpn) -> TlsConnector {
    TlsConnector::from(Arc::new(client_tls(ca_pems, alpn)))
}

/// Opens a CONNECT tunnel to `target` through the proxy; returns the stream
/// after the proxy's `200`.
pub async fn connect_tunnel(proxy: SocketAddr, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.expect("connect to proxy");
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("write CONNECT");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read CONNECT answer");
        assert_eq!(n, 1, "proxy closed during CONNECT");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "CONNECT answered: {head}");
    stream
}

/// A TLS session over a CONNECT tunnel, for clients reqwest cannot be.
pub async fn tls_tunnel(
    proxy: SocketAddr,
    target: &str,
    server_name: &str,
    tls: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let stream = connect_tunnel(proxy, target).await;
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    tls.connect(name, stream)
        .await
        .expect("TLS through the tunnel")
}

/// Sends one request over an HTTP/2 connection on `io` and returns the
/// response with its body frames collected (trailers included).
pub async fn h2_request<I>(
    io: I,
    req: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes, Option<HeaderMap>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let res = sender.send_request(req).await.expect("h2 response");
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.expect("h2 body");
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes(), trailers)
}

/// The built binary, started with `args` (and `--listen 127.0.0.1:0` unless
/// given), its port read from the banner.
pub struct BinProxy {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// The admin API's address, from the banner (`None` with `--admin off`).
    pub admin: Option<SocketAddr>,
    pub banner: String,
    /// What it printed on stdout after the banner (the summary).
    stdout: Arc<Mutex<String>>,
    drain: tokio::task::JoinHandle<()>,
}

impl BinProxy {
    pub async fn spawn(args: &[&str], cwd: &Path) -> Self {
        let mut command = bin_command(cwd);
        command.arg("run");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--admin") {
            command.args(["--admin", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn authfault");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let mut admin = None;
        let addr = tokio::time::timeout(GUARD, async {
            let mut addr = None;
            while let Some(line) = lines.next_line().await.expect("read banner") {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = line.trim().strip_prefix("proxy") {
                    let url = url.trim().trim_start_matches("http://");
                    addr = Some(url.parse::<SocketAddr>().expect("banner address"));
                }
                if let Some(url) = line.trim().strip_prefix("admin") {
                    admin = url.trim().trim_start_matches("http://").parse().ok();
                }
                // The hint closes the banner.
                if line.trim().starts_with("hint") {
                    return addr.expect("the banner names the proxy address");
                }
            }
            panic!("authfault exited before its banner: {banner}");
        })
        .await
        .expect("banner in time");
        // Keep draining stdout so the child never blocks on a full pipe.
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        let drain = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut out = sink.lock().expect("lock");
                out.push_str(&line);
                out.push('\n');
            }
        });
        Self {
            child,
            addr,
            admin,
            banner,
            stdout,
            drain,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the exit; returns the status and everything on stderr.
    pub async fn wait(self) -> (std::process::ExitStatus, String) {
        let (status, log, _) = self.wait_all().await;
        (status, log)
    }

    /// Waits for the exit; returns the status, stderr, and stdout after
    /// the banner.
    pub async fn wait_all(mut self) -> (std::process::ExitStatus, String, String) {
        let mut stderr = self.child.stderr.take().expect("stderr");
        let mut log = String::new();
        let status = tokio::time::timeout(GUARD, async {
            stderr.read_to_string(&mut log).await.expect("read stderr");
            let status = self.child.wait().await.expect("wait");
            let _ = (&mut self.drain).await;
            status
        })
        .await
        .expect("authfault exits in time");
        let out = self.stdout.lock().expect("lock").clone();
        (status, log, out)
    }
}

/// Runs the built binary to its end: exit code, stdout, stderr.
pub async fn run_to_end(args: &[&str], cwd: &std::path::Path) -> (i32, String, String) {
    let out = tokio::time::timeout(GUARD, bin_command(cwd).args(args).output())
        .await
        .expect("exits in time")
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command for the built binary with a clean environment: no proxy or CA
/// variables inherited from the machine.
pub fn bin_command(cwd: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_authfault"));
    command.current_dir(cwd).kill_on_drop(true);
    clear_env(&mut command);
    command
}

pub fn clear_env(command: &mut tokio::process::Command) {
    for (key, _) in std::env::vars() {
        let upper = key.to_ascii_uppercase();
        if upper.starts_with("AUTHFAULT_")
            || upper.ends_with("_PROXY")
            || matches!(
                upper.as_str(),
                "SSL_CERT_FILE"
                    | "SSL_CERT_DIR"
                    | "REQUESTS_CA_BUNDLE"
                    | "CURL_CA_BUNDLE"
                    | "NODE_EXTRA_CA_CERTS"
            )
        {
            command.env_remove(key);
        }
    }
}

/// Reads a whole HTTP/1.1 response from a raw stream that the server closes
/// or that carries `Content-Length` (for requests reqwest cannot make).
pub async fn raw_exchange(proxy: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks status, code and header of a proxy-made answer; returns `detail`.
pub async fn assert_proxy_error(res: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(res.status(), status);
    assert_eq!(
        res.headers()
            .get("x-authfault-error")
            .map(|v| v.to_str().expect("ascii")),
        Some(code)
    );
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii")),
        Some("application/json")
    );
    let json: serde_json::Value = res.json().await.expect("a JSON body");
    assert_eq!(json["error"], code);
    json["detail"].as_str().expect("a detail").to_string()
}
