//! `run` and `exec`: the options they share, checked into one
//! `proxy::Config`, and the life of the proxy from start to report.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Outcome;
use crate::host::HostGlobs;
use crate::logging::LogFormat;
use crate::proxy::{self, Proxy, ProxyAuth};
use crate::record::Record;
use crate::report::{self, Format, Summary};
use crate::rules::set::RuleSet;
use crate::tls::ca;

/// Options of `run` (SPEC section 3), each also read from its environment
/// variable, for containers.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Proxy address; port 0 picks a free port [default: 127.0.0.1:8080; exec: 127.0.0.1:0].
    #[arg(long, env = "AUTHFAULT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin API address, or `off` [default: 127.0.0.1:8081; exec: a free loopback port].
    #[arg(long, env = "AUTHFAULT_ADMIN", value_name = "ADDR|off")]
    pub admin: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on the admin API (all but /healthz).
    #[arg(
        long,
        env = "AUTHFAULT_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Folder of the CA certificate and key; created on first use.
    #[arg(
        long,
        env = "AUTHFAULT_CA_DIR",
        default_value = "certs",
        value_name = "DIR"
    )]
    pub ca_dir: PathBuf,
    /// Hosts whose TLS is terminated (repeatable; default every host).
    #[arg(
        long,
        env = "AUTHFAULT_INTERCEPT",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub intercept: Vec<String>,
    /// Hosts tunnelled untouched, for certificate-pinned clients (repeatable).
    #[arg(
        long,
        env = "AUTHFAULT_PASSTHROUGH",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub passthrough: Vec<String>,
    /// Extra root certificates (PEM) trusted for upstream TLS (repeatable).
    #[arg(
        long = "upstream-ca",
        env = "AUTHFAULT_UPSTREAM_CA",
        value_name = "PEM",
        value_delimiter = ','
    )]
    pub upstream_ca: Vec<PathBuf>,
    /// Do not verify upstream certificates (logged loudly).
    #[arg(long, env = "AUTHFAULT_INSECURE_UPSTREAM")]
    pub insecure_upstream: bool,
    /// Allow listening on a non-loopback address (pair it with --proxy-auth).
    #[arg(long, env = "AUTHFAULT_ALLOW_REMOTE")]
    pub allow_remote: bool,
    /// Require `Proxy-Authorization: Basic` with these credentials.
    #[arg(
        long,
        env = "AUTHFAULT_PROXY_AUTH",
        value_name = "USER:PASS",
        hide_env_values = true
    )]
    pub proxy_auth: Option<String>,
    /// Log lines as text or JSON, on stderr.
    #[arg(long, env = "AUTHFAULT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Seconds to let in-flight exchanges finish on shutdown.
    #[arg(long, env = "AUTHFAULT_GRACE", default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    pub grace: Duration,
    /// Seconds to wait for an upstream's response headers before answering 504.
    #[arg(long, env = "AUTHFAULT_UPSTREAM_TIMEOUT", default_value = "30", value_name = "SECONDS", value_parser = seconds)]
    pub upstream_timeout: Duration,
    /// Seconds to wait for a TCP connection to an upstream before answering 504.
    #[arg(long, env = "AUTHFAULT_CONNECT_TIMEOUT", default_value = "10", value_name = "SECONDS", value_parser = positive_seconds)]
    pub connect_timeout: Duration,
    /// Largest request header section in bytes; larger ones get 431.
    #[arg(long, env = "AUTHFAULT_MAX_HEADER_BYTES", default_value_t = proxy::DEFAULT_MAX_HEADER_BYTES, value_name = "BYTES")]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's whole header section; then its connection is closed.
    #[arg(long, env = "AUTHFAULT_HEADER_TIMEOUT", default_value = "30", value_name = "SECONDS", value_parser = positive_seconds)]
    pub header_timeout: Duration,
    /// Seconds a client connection may move no bytes before it is closed (an exchange in flight finishes first).
    #[arg(long, env = "AUTHFAULT_IDLE_TIMEOUT", default_value = "60", value_name = "SECONDS", value_parser = positive_seconds)]
    pub idle_timeout: Duration,
    /// Client connections served at once; more are answered 503.
    #[arg(long, env = "AUTHFAULT_MAX_CONNECTIONS", default_value = "10000", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Concurrent HTTP/2 streams per client connection.
    #[arg(long, env = "AUTHFAULT_MAX_STREAMS", default_value = "250", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// Rule file or folder of *.yaml (repeatable; default ./rules if it exists).
    #[arg(
        long = "rules",
        env = "AUTHFAULT_RULES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub rules: Vec<PathBuf>,
    /// Start with only this scenario's rules active.
    #[arg(long, env = "AUTHFAULT_SCENARIO", value_name = "NAME")]
    pub scenario: Option<String>,
    /// Seed for `probability` rules, for reproducible runs (default: random, logged).
    #[arg(long, env = "AUTHFAULT_SEED", value_name = "N")]
    pub seed: Option<u64>,
    /// Exchange recording, JSON Lines, appended [default: ./recordings/<UTC time>.jsonl]; `off` records nothing.
    #[arg(long, env = "AUTHFAULT_RECORD", value_name = "FILE|off")]
    pub record: Option<String>,
    /// Response body bytes kept per recorded exchange.
    #[arg(long, env = "AUTHFAULT_RECORD_BODY", default_value_t = crate::record::DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub record_body: usize,
    /// Also write the run's report as JUnit XML when it ends.
    #[arg(long, env = "AUTHFAULT_JUNIT", value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the run's exchanges as HAR 1.2 when it ends.
    #[arg(long, env = "AUTHFAULT_HAR", value_name = "FILE")]
    pub har: Option<PathBuf>,
}

/// `exec`: the options of `run`, then the command after `--`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The command to run through the proxy, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Which command the options serve: they differ in the default address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Exec,
}

/// Checks the options and turns them into the proxy's config.
pub fn proxy_config(args: &RunArgs, mode: Mode) -> anyhow::Result<proxy::Config> {
    let listen = args.listen.unwrap_or(match mode {
        Mode::Run => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Mode::Exec => SocketAddr::from(([127, 0, 0, 1], 0)),
    });
    if !listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "--listen {listen} is not a loopback address: anyone who can reach it could use authfault as an open proxy; \
             add --allow-remote (and --proxy-auth USER:PASS) to allow it"
        );
    }
    let intercept = if args.intercept.is_empty() {
        HostGlobs::any()
    } else {
        HostGlobs::new(&args.intercept).context("--intercept")?
    };
    let passthrough = HostGlobs::new(&args.passthrough).context("--passthrough")?;
    let proxy_auth = match &args.proxy_auth {
        None => None,
        Some(value) => Some(ProxyAuth::parse(value).context(
            "--proxy-auth must be USER:PASS with a non-empty user (the value is not shown)",
        )?),
    };
    let record_path = record_path(args);
    if record_path.is_none() && (args.junit.is_some() || args.har.is_some()) {
        bail!(
            "--junit and --har are written from the recording; drop --record off, or make them afterwards with `authfault report`"
        );
    }
    let rules = load_rules(args)?;
    let mut config = proxy::Config::new(listen);
    config.record = crate::record::Config {
        path: record_path,
        body_limit: args.record_body,
    };
    config.rules = Arc::new(arc_swap::ArcSwap::from_pointee(rules));
    config.intercept = intercept;
    config.passthrough = passthrough;
    config.proxy_auth = proxy_auth;
    config.max_header_bytes = args.max_header_bytes;
    config.limits = proxy::Limits {
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_streams: args.max_streams,
    };
    config.upstream.is_insecure = args.insecure_upstream;
    config.upstream.timeout = args.upstream_timeout;
    config.upstream.connect_timeout = args.connect_timeout;
    config.upstream.extra_roots = load_roots(&args.upstream_ca)?;
    Ok(config)
}

/// The admin API's address: `--admin`, `None` for `off`; loopback unless
/// `--allow-remote`, like the proxy's.
fn admin_addr(args: &RunArgs, mode: Mode) -> anyhow::Result<Option<SocketAddr>> {
    let addr = match args.admin.as_deref() {
        Some("off") => return Ok(None),
        Some(text) => text.parse::<SocketAddr>().with_context(|| {
            format!("--admin `{text}` is not an address like 127.0.0.1:8081 (or `off`)")
        })?,
        None => match mode {
            Mode::Run => SocketAddr::from(([127, 0, 0, 1], 8081)),
            Mode::Exec => SocketAddr::from(([127, 0, 0, 1], 0)),
        },
    };
    if !addr.ip().is_loopback() && !args.allow_remote {
        bail!(
            "--admin {addr} is not a loopback address: anyone who can reach it could switch authfault's rules; \
             add --allow-remote (and --admin-token TOKEN) to allow it"
        );
    }
    Ok(Some(addr))
}

/// The recording file: `--record`, `None` for `off`, else a new file in
/// `./recordings` named after the time.
fn record_path(args: &RunArgs) -> Option<PathBuf> {
    match args.record.as_deref() {
        Some("off") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => {
            let now = crate::record::entry::timestamp(std::time::SystemTime::now());
            // `2026-11-28T07-20-00Z`: no colons, which some file systems refuse.
            let name = format!("{}Z.jsonl", now[..19].replace(':', "-"));
            Some(Path::new("recordings").join(name))
        }
    }
}

/// The rule paths `run` uses: `--rules`, else `./rules` when it exists.
pub fn rule_paths(args: &RunArgs) -> Vec<PathBuf> {
    if !args.rules.is_empty() {
        return args.rules.clone();
    }
    let default = PathBuf::from("rules");
    if default.is_dir() {
        vec![default]
    } else {
        Vec::new()
    }
}

fn load_rules(args: &RunArgs) -> anyhow::Result<RuleSet> {
    let seed = args.seed.unwrap_or_else(random_seed);
    let paths = rule_paths(args);
    let env = |name: &str| std::env::var(name).ok();
    let compiled = crate::rules::load::load(&paths, &env)
        .and_then(|files| RuleSet::compile(&files, &env, seed));
    let set = match compiled {
        Ok(set) => set,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!(
                "the rule files have {} problem(s); `authfault check` shows the same list:\n{}",
                errors.len(),
                lines.join("\n")
            );
        }
    };
    if let Some(scenario) = &args.scenario {
        set.set_scenario(Some(scenario)).context("--scenario")?;
    }
    tracing::info!(
        "{} rule(s) from {}; probability seed {seed} (pass --seed {seed} to repeat the run)",
        set.rules().len(),
        if paths.is_empty() {
            "no rule files".to_string()
        } else {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(set)
}

fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    // Without an RNG the seed is 0: still a valid, logged, repeatable seed.
    let _ = crate::tls::fill_random(&mut bytes);
    u64::from_le_bytes(bytes)
}

fn load_roots(paths: &[PathBuf]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut roots = Vec::new();
    for path in paths {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .with_context(|| {
                format!(
                    "--upstream-ca {}: cannot read PEM certificates",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            bail!(
                "--upstream-ca {}: no PEM certificate in the file",
                path.display()
            );
        }
        roots.extend(certs);
    }
    Ok(roots)
}

/// `authfault run`: serves until SIGINT or SIGTERM, then drains, writes the
/// recording and prints the summary.
pub fn run_proxy(args: RunArgs) -> anyhow::Result<Outcome> {
    serve(args, Mode::Run, |running, admin| async move {
        // Listening before the banner: a script that reads the banner and
        // sends SIGTERM at once must get a drain, not the default death.
        let stop = StopSignals::install();
        print_banner(&running, admin);
        stop.wait().await;
        (running, None)
    })
}

/// `authfault exec`: runs the command through the proxy, then drains, writes
/// the recording and prints the report on stderr. The exit status is 3 on
/// violations, else the command's.
pub fn run_exec(args: ExecArgs) -> anyhow::Result<Outcome> {
    let command = args.command.clone();
    let ca_dir = args.run.ca_dir.clone();
    serve(args.run, Mode::Exec, move |running, admin| async move {
        let status = crate::exec::run_child(&command, &running, admin, &ca_dir).await;
        (running, Some(status))
    })
}

/// What `run` and `exec` share: config, CA, rules and their watcher, the
/// proxy, then after `body` the shutdown, the summary and the reports.
fn serve<F, Fut>(args: RunArgs, mode: Mode, body: F) -> anyhow::Result<Outcome>
where
    F: FnOnce(proxy::Running, Option<SocketAddr>) -> Fut,
    Fut: Future<
        Output = (
            proxy::Running,
            Option<anyhow::Result<crate::exec::ChildStatus>>,
        ),
    >,
{
    let config = proxy_config(&args, mode)?;
    raise_fd_limit(config.limits.max_connections);
    let admin_addr = admin_addr(&args, mode)?;
    let admin_token = match &args.admin_token {
        Some(token) => Some(
            crate::admin::AdminToken::new(token)
                .context("--admin-token must not be empty (the value is not shown)")?,
        ),
        None => None,
    };
    let ca = Arc::new(ca::load_or_create(&args.ca_dir)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if args.insecure_upstream {
            tracing::warn!(
                "--insecure-upstream: upstream certificates are NOT verified; anyone on the path to an upstream can read and change this traffic"
            );
        }
        let paths = rule_paths(&args);
        let reloader = Arc::new(
            crate::rules::watch::Reloader::new(
                paths.clone(),
                config.rules.load().seed(),
                config.rules.clone(),
            )
            .notify(config.rule_changes.clone()),
        );
        // Kept alive until shutdown: dropping it stops the watching.
        let _watch = if paths.is_empty() {
            None
        } else {
            match crate::rules::watch::watch(reloader) {
                Ok(watch) => Some(watch),
                Err(err) => {
                    tracing::warn!("cannot watch the rule files ({err}); changes need a restart");
                    None
                }
            }
        };
        let seed = config.rules.load().seed();
        let running = Proxy::start(config, ca).await?;
        let admin = match admin_addr {
            Some(addr) => Some(
                crate::admin::Admin::start(addr, running.handle(), admin_token, seed).await?,
            ),
            None => None,
        };
        let recording = running.recording().map(Path::to_path_buf);
        let (running, child) = body(running, admin.as_ref().map(crate::admin::Admin::local_addr)).await;
        tracing::info!(
            "shutting down: letting in-flight exchanges finish (up to {}s)",
            args.grace.as_secs_f64()
        );
        let stopped = running.shutdown(args.grace).await;
        if let Some(admin) = admin {
            admin.stop().await;
        }
        if !stopped.drained {
            tracing::warn!("grace period over; connections still open were cut");
        }
        if let Some(path) = &recording {
            tracing::info!(
                "recorded {} exchange(s) in {}{}",
                stopped.written,
                path.display(),
                if stopped.failed > 0 {
                    format!("; {} could not be written (see above)", stopped.failed)
                } else {
                    String::new()
                }
            );
        }
        let summary = &stopped.summary;
        match mode {
            Mode::Run => {
                let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(report::text::render(summary, color).as_bytes());
                let _ = out.flush();
            }
            Mode::Exec => {
                let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(report::text::render(summary, color).as_bytes());
            }
        }
        if let Some(path) = &recording {
            write_reports(&args, path, &stopped.ids)?;
        }
        let child = child.transpose()?;
        Ok(outcome(mode, summary, child))
    })
}

/// The exit status of SPEC section 3: `run` succeeds after a clean
/// shutdown; `exec` exits 3 on violations, else with the command's status.
fn outcome(mode: Mode, summary: &Summary, child: Option<crate::exec::ChildStatus>) -> Outcome {
    match (mode, child) {
        (Mode::Run, _) => Outcome::Success,
        (Mode::Exec, _) if summary.has_violations() => Outcome::Violations,
        (Mode::Exec, Some(status)) => Outcome::Status(status.code()),
        (Mode::Exec, None) => Outcome::Success,
    }
}

/// Writes `--junit` and `--har` from this run's part of the recording.
fn write_reports(
    args: &RunArgs,
    recording: &Path,
    ids: &std::ops::Range<u64>,
) -> anyhow::Result<()> {
    if args.junit.is_none() && args.har.is_none() {
        return Ok(());
    }
    let (records, bad) = report::read(&[recording])?;
    for line in &bad {
        tracing::warn!("{line}");
    }
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| ids.contains(&r.id))
        .collect();
    for (path, format) in [(&args.junit, Format::Junit), (&args.har, Format::Har)] {
        if let Some(path) = path {
            let text = report::render(&records, format, false)?;
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the report {}", path.display()))?;
            tracing::info!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn print_banner(running: &proxy::Running, admin: Option<SocketAddr>) {
    let addr = running.local_addr();
    let url = format!("http://{addr}");
    let cert = running.ca().cert_path();
    let mut out = std::io::stdout().lock();
    // The banner is the one thing on stdout: scripts read the real port here.
    let recording = running
        .recording()
        .map_or_else(|| "off".to_string(), |p| p.display().to_string());
    let admin = admin.map_or_else(|| "off".to_string(), |a| format!("http://{a}"));
    let _ = writeln!(
        out,
        "authfault {} ready\n  proxy  {url}\n  admin  {admin}\n  CA     {}\n  record {recording}\n  hint   export HTTPS_PROXY={url} HTTP_PROXY={url}",
        env!("CARGO_PKG_VERSION"),
        cert.display(),
    );
    let _ = out.flush();
}

/// SIGINT and SIGTERM, listened for from `install` on.
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(
                    "cannot watch {name} ({err}); it will stop the proxy without a drain"
                );
                None
            }
        };
        Self {
            int: listen(SignalKind::interrupt(), "SIGINT"),
            term: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Waits for either signal.
    async fn wait(mut self) {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(self.int.as_mut()) => {}
            () = next(self.term.as_mut()) => {}
        }
    }
}

/// Parses a number of seconds (`10`, `0.5`).
/// Raises the soft limit on open files to the hard one: each client
/// connection takes a descriptor (and its upstream, pooled, often another).
/// Warns when even that is short of `--max-connections`.
fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(64);
    if limit < needed {
        tracing::warn!(
            "the open-file limit is {limit}, short of the {needed} that --max-connections {max_connections} can use; past it, new connections wait (raise `ulimit -n`, or lower --max-connections)"
        );
    }
}

/// Seconds above zero: a zero timeout would close every connection.
fn positive_seconds(value: &str) -> Result<Duration, String> {
    match seconds(value)? {
        Duration::ZERO => Err(format!("`{value}`: the timeout must be above 0 seconds")),
        duration => Ok(duration),
    }
}

pub(crate) fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{value}` is not a non-negative number of seconds"))
}
