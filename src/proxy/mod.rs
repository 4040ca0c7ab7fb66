//! The proxy: `listener` accepts and drains, `connect` answers CONNECT and
//! intercepts or tunnels, `exchange` carries one request to the upstream and
//! back, `upstream` is the pooled client, `error` the answers the proxy makes
//! itself. `Proxy::start` wires them and gives a `Running` handle.

pub mod body;
mod connect;
pub mod error;
mod exchange;
pub mod headers;
mod io;
mod listener;
pub mod target;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use http::HeaderMap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::host::HostGlobs;
use crate::record::{self, Recorder};
use crate::rules::set::RuleSet;
use crate::tls::{Ca, LeafCache};

pub use body::Body;
pub use error::ProxyError;

/// Default limit of a request's header section, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Everything the proxy needs to know to serve, checked by `cli`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Hosts whose TLS is terminated (`--intercept`).
    pub intercept: HostGlobs,
    /// Hosts tunnelled untouched (`--passthrough`); wins over `intercept`.
    pub passthrough: HostGlobs,
    /// How upstreams are reached.
    pub upstream: upstream::Config,
    /// Credentials clients must present (`--proxy-auth`).
    pub proxy_auth: Option<ProxyAuth>,
    /// A request whose header section is larger gets 431.
    pub max_header_bytes: usize,
    /// Time and count limits on client connections.
    pub limits: Limits,
    /// The rules consulted for every exchange; swapped whole on reload.
    pub rules: Arc<ArcSwap<RuleSet>>,
    /// Where exchanges are recorded.
    pub record: record::Config,
    /// Told of every change of the rules, their flags or the scenario
    /// (admin API, file reload), for `GET /events`.
    pub rule_changes: tokio::sync::broadcast::Sender<()>,
}

impl Config {
    /// A config that listens on `listen`, intercepts every host, and
    /// otherwise uses the defaults of SPEC section 3.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            intercept: HostGlobs::any(),
            passthrough: HostGlobs::none(),
            upstream: upstream::Config::default(),
            proxy_auth: None,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            limits: Limits::default(),
            rules: Arc::new(ArcSwap::from_pointee(RuleSet::empty(0))),
            record: record::Config::default(),
            rule_changes: tokio::sync::broadcast::channel(64).0,
        }
    }
}

/// Limits on client connections, each with a flag (README, "Command line").
#[derive(Debug, Clone)]
pub struct Limits {
    /// A client must send a request's whole header section within this
    /// time, else its connection is closed (`--header-timeout`).
    pub header_timeout: Duration,
    /// A client connection that moved no bytes for this long is closed
    /// once no exchange is in flight on it (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Client connections served at once; more are answered 503 and
    /// closed (`--max-connections`).
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per client connection, advertised in
    /// SETTINGS (`--max-streams`).
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_streams: 250,
        }
    }
}

/// `--proxy-auth USER:PASS`: the `user:pass` clients must send with
/// `Proxy-Authorization: Basic`.
#[derive(Clone)]
pub struct ProxyAuth {
    user_pass: Vec<u8>,
}

impl std::fmt::Debug for ProxyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyAuth(<redacted>)")
    }
}

impl ProxyAuth {
    /// Takes `USER:PASS`; `None` without a colon or with an empty user.
    pub fn parse(user_pass: &str) -> Option<Self> {
        let (user, _) = user_pass.split_once(':')?;
        (!user.is_empty()).then(|| Self {
            user_pass: user_pass.as_bytes().to_vec(),
        })
    }

    /// `user:pass`, percent-encoded for a proxy URL's userinfo.
    pub fn userinfo(&self) -> String {
        let text = String::from_utf8_lossy(&self.user_pass);
        let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!("{}:{}", enc(user), enc(pass))
    }

    /// Whether `headers` carry the right `Proxy-Authorization`, compared in
    /// constant time so a client cannot guess it byte by byte.
    pub fn is_satisfied_by(&self, headers: &HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let Some(value) = headers.get(http::header::PROXY_AUTHORIZATION) else {
            return false;
        };
        let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.trim().split_once(' '))
        else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
            return false;
        };
        given.ct_eq(&self.user_pass).into()
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr}: {source}; is another process using it? pick another with --listen"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Leaves(#[from] crate::tls::cache::Error),
    #[error("cannot set up upstream TLS: {0}")]
    UpstreamTls(#[source] rustls::Error),
    #[error(transparent)]
    Record(#[from] record::writer::Error),
}

/// Counts a client connection in the `client_connections` gauge while it
/// lives.
pub(crate) struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(shared: &Shared) -> Self {
        let gauge = shared.recorder.metrics().connections.clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// State every connection shares.
pub(crate) struct Shared {
    config: Config,
    local_addr: SocketAddr,
    leaves: LeafCache,
    upstream: upstream::Upstream,
    recorder: Arc<Recorder>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// One permit per client connection served (`--max-connections`).
    connections: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Whether `host:port` is this proxy's own listener: a request sent there
    /// would come back to us forever.
    fn is_self(&self, host: &str, port: u16) -> bool {
        if port != self.local_addr.port() {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let Ok(ip) = host.parse::<IpAddr>() else {
            return false;
        };
        let ours = self.local_addr.ip();
        ip == ours || (ip.is_loopback() && (ours.is_loopback() || ours.is_unspecified()))
    }
}

/// The proxy, ready to start.
pub struct Proxy;

impl Proxy {
    /// Binds the listener and starts serving in the background.
    pub async fn start(config: Config, ca: Arc<Ca>) -> Result<Running, StartError> {
        let provider = crate::tls::provider();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let upstream = upstream::Upstream::new(&config.upstream, provider.clone())
            .map_err(StartError::UpstreamTls)?;
        let leaves = LeafCache::new(ca.clone(), provider)?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let recorder = Recorder::start(&config.record, metrics)?;
        let connections = Arc::new(tokio::sync::Semaphore::new(
            config
                .limits
                .max_connections
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        ));
        let shared = Arc::new(Shared {
            config,
            local_addr,
            connections,
            leaves,
            upstream,
            recorder,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared
            .tasks
            .spawn(listener::accept(shared.clone(), listener));
        Ok(Running { shared, ca })
    }
}

/// A serving proxy. Dropping it does not stop it; call `shutdown`.
pub struct Running {
    shared: Arc<Shared>,
    ca: Arc<Ca>,
}

impl Running {
    /// The address the proxy listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle for the admin API.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
            ca: self.ca.clone(),
        }
    }

    /// `user:pass` for the proxy URL, when `--proxy-auth` is set.
    pub fn proxy_auth_userinfo(&self) -> Option<String> {
        self.shared
            .config
            .proxy_auth
            .as_ref()
            .map(ProxyAuth::userinfo)
    }

    /// The CA whose leaves clients see.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// How many hosts have a cached leaf certificate.
    pub fn leaf_count(&self) -> usize {
        self.shared.leaves.len()
    }

    /// The recording file, if exchanges are recorded to one.
    pub fn recording(&self) -> Option<&std::path::Path> {
        self.shared.recorder.path()
    }

    /// Stops accepting, lets in-flight exchanges finish for up to `grace`,
    /// then writes and syncs the recording. Idle keep-alive connections
    /// close at once; tunnels get the grace period.
    pub async fn shutdown(self, grace: Duration) -> Stopped {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let drained = tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_ok();
        let closed = self.shared.recorder.close().await;
        let (summary, written, failed, ids) = match closed {
            Some(c) => (c.summary, c.written, c.failed, c.ids),
            None => (crate::report::Summary::default(), 0, 0, 0..0),
        };
        Stopped {
            drained,
            summary,
            written,
            failed,
            ids,
        }
    }
}

/// What the admin API sees of a running proxy.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    ca: Arc<Ca>,
}

impl Handle {
    /// The rules, swapped whole by reloads.
    pub fn rules(&self) -> &Arc<ArcSwap<RuleSet>> {
        &self.shared.config.rules
    }

    /// Tells `GET /events` subscribers that the rules, a flag or the
    /// scenario changed.
    pub fn rules_changed(&self) {
        // No subscriber is no error.
        let _ = self.shared.config.rule_changes.send(());
    }

    /// A receiver of rule changes.
    pub fn follow_rules(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.shared.config.rule_changes.subscribe()
    }

    /// The recorder: live summary, recent exchanges, metrics.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.shared.recorder
    }

    /// How many hosts have a cached leaf certificate.
    pub fn leaf_count(&self) -> usize {
        self.shared.leaves.len()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Whether the proxy still accepts connections.
    pub fn is_serving(&self) -> bool {
        !self.shared.shutdown.is_cancelled()
    }
}

/// How the proxy stopped.
#[derive(Debug)]
pub struct Stopped {
    /// Whether every connection finished within the grace period.
    pub drained: bool,
    /// The run's verdicts.
    pub summary: crate::report::Summary,
    /// Exchanges written to the recording.
    pub written: u64,
    /// Exchanges that could not be written (each was logged).
    pub failed: u64,
    /// The ids of this run's exchanges in the recording.
    pub ids: std::ops::Range<u64>,
}
