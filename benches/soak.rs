//! Soak: a mixed load against the release binary for a set time, then a
//! report. Run it with benches/soak.sh (which builds the release binary):
//!
//!   benches/soak.sh 600          # ten minutes
//!
//! Load, from several tasks at once: HTTP/1.1 plain, HTTPS through CONNECT
//! over HTTP/1.1 and HTTP/2, requests a rule perturbs (an expired JWT),
//! upstreams that fail (a closed port, a reset mid-body), and clients that
//! abort a download. Reported: requests served, errors by kind, the
//! proxy's RSS and open descriptors at start and end, and recorded
//! exchanges against completed ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RULES: &str = r#"
rules:
  - name: expire-soak
    match: { path: "^/perturb", credential: jwt }
    action: { expire: { by: 1h } }
"#;

#[derive(Default)]
struct Tally {
    served: u64,
    errors: BTreeMap<String, u64>,
    /// Requests whose whole response reached the client.
    completed: u64,
    aborted: u64,
}

impl Tally {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

type Shared = Arc<Mutex<Tally>>;

/// Where each kind of request in the mix goes.
struct Urls {
    plain: String,
    tls: String,
    big: String,
    perturb: String,
    closed: String,
    resetting: String,
}

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An HTTP upstream: small answers, a 1 MiB download, and a body that
/// resets midway (on a raw connection).
async fn upstream(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = match req.uri().path() {
                        "/big" => Bytes::from(vec![b'b'; 1 << 20]),
                        _ => Bytes::from_static(b"{\"ok\":true}"),
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

/// Answers 200 with a promised 100 kB, sends 1 kB, then resets.
async fn resetting_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                    .await;
                let _ = stream.write_all(&[b'r'; 1000]).await;
                let _ = stream.set_zero_linger();
            });
        }
    });
    addr
}

fn self_signed() -> Arc<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn jwt() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(br#"{"sub":"soak","exp":4000000000}"#);
    format!("{header}.{claims}.c29hay1zaWduYXR1cmU")
}

/// The proxy's RSS in KiB and its open descriptors.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

fn client(proxy: &str, ca: &[u8], h2: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls({
            let mut roots = rustls::RootCertStore::empty();
            for der in rustls_pemfile_certs(ca) {
                roots.add(der).expect("root");
            }
            let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            tls.alpn_protocols = if h2 {
                vec![b"h2".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            tls
        })
        .proxy(reqwest::Proxy::all(proxy).expect("proxy"))
        .timeout(Duration::from_secs(30));
    if !h2 {
        builder = builder.http1_only();
    }
    builder.build().expect("client")
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

async fn one(tally: &Shared, client: &reqwest::Client, url: &str, auth: Option<&str>) {
    let mut req = client.get(url);
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let code = res
                .headers()
                .get("x-authfault-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match res.bytes().await {
                Ok(_) => {
                    let mut t = lock(tally);
                    t.served += 1;
                    t.completed += 1;
                    if let Some(code) = code {
                        t.error(format!("{status} {code}"));
                    }
                }
                Err(_) => {
                    let mut t = lock(tally);
                    t.served += 1;
                    t.error(format!("{status} body cut off"));
                }
            }
        }
        Err(err) => lock(tally).error(if err.is_timeout() {
            "client timeout".to_string()
        } else {
            "transport error".to_string()
        }),
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let binary = std::env::var("AUTHFAULT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/release/authfault"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("soak.yaml"), RULES).expect("rules");

    let plain = upstream(None).await;
    let tls = upstream(Some(self_signed())).await;
    let resetting = resetting_upstream().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut proxy = tokio::process::Command::new(&binary)
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin",
            "off",
        ])
        .args([
            "--rules",
            "soak.yaml",
            "--record",
            "soak.jsonl",
            "--insecure-upstream",
        ])
        .args([
            "--ca-dir",
            "certs",
            "--log-format",
            "json",
            "--upstream-timeout",
            "5",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it with cargo build --release",
                binary.display()
            )
        });
    let pid = proxy.id().expect("pid");
    let proxy_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ca = std::fs::read(dir.path().join("certs/ca.pem")).expect("CA");
    let h1 = client(&proxy_url, &ca, false);
    let h2 = client(&proxy_url, &ca, true);
    let tally: Shared = Arc::default();

    // The URLs of the mix, made once.
    let urls = Arc::new(Urls {
        plain: format!("http://{plain}/"),
        tls: format!("https://localhost:{}/", tls.port()),
        big: format!("https://localhost:{}/big", tls.port()),
        perturb: format!("https://localhost:{}/perturb", tls.port()),
        closed: format!("http://{closed}/"),
        resetting: format!("http://{resetting}/"),
    });

    // Warm up, then the baseline.
    for _ in 0..20 {
        one(&tally, &h1, &urls.plain, None).await;
        one(&tally, &h2, &urls.tls, None).await;
    }
    let (rss_start, fds_start) = usage(pid);
    let token = jwt();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for worker in 0..12u32 {
        let (tally, h1, h2, token, urls) = (
            tally.clone(),
            h1.clone(),
            h2.clone(),
            token.clone(),
            urls.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                match (worker % 6, i % 50) {
                    // Some failures and aborts in every worker's mix.
                    (_, 0) => one(&tally, &h1, &urls.closed, None).await,
                    (_, 25) => one(&tally, &h1, &urls.resetting, None).await,
                    (_, 40) => {
                        // Starts a 1 MiB download through TLS and leaves.
                        if let Ok(mut res) = h1.get(&urls.big).send().await {
                            let _ = res.chunk().await;
                        }
                        lock(&tally).aborted += 1;
                    }
                    (0 | 1, _) => one(&tally, &h1, &urls.plain, None).await,
                    (2, _) => one(&tally, &h1, &urls.tls, None).await,
                    (3 | 4, _) => one(&tally, &h2, &urls.tls, None).await,
                    _ => one(&tally, &h2, &urls.perturb, Some(&token)).await,
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    drop((h1, h2));
    // Idle client connections close on the clients' side; give the proxy a
    // moment to see it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_end, fds_end) = usage(pid);

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = proxy.wait().await.expect("exit");
    let recording = std::fs::read_to_string(dir.path().join("soak.jsonl")).unwrap_or_default();
    let recorded = recording.lines().count() as u64;
    let t = lock(&tally);
    println!("soak: {seconds} s against {}", binary.display());
    println!("  requests served      {}", t.served);
    println!("  downloads aborted    {}", t.aborted);
    for (kind, n) in &t.errors {
        println!("  error {kind:<22} {n}");
    }
    println!("  RSS start / end      {} / {} KiB", rss_start, rss_end);
    println!("  descriptors start / end  {fds_start} / {fds_end}");
    println!(
        "  recorded / completed {recorded} / {} (+{} aborted, +{} failed at the transport)",
        t.completed,
        t.aborted,
        t.errors.get("transport error").copied().unwrap_or(0)
    );
    println!("  proxy exit           {status}");
    let missing = t.completed > recorded;
    if missing {
        eprintln!("soak: fewer exchanges recorded than completed");
        std::process::exit(1);
    }
}
