//! The command line: subcommands and `--flag`/`AUTHFAULT_*` options into one
//! checked `proxy::Config`, then the command's life from start to exit code.
//! Sockets after start-up are the proxy's business.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::host::HostGlobs;
use crate::logging::LogFormat;
use crate::proxy::{self, Proxy, ProxyAuth};
use crate::rules::set::RuleSet;
use crate::tls::ca;

/// An intercepting HTTP(S) proxy that perturbs credentials, to test what
/// clients and APIs do when a token goes bad.
#[derive(Debug, Parser)]
#[command(name = "authfault", version, about, propagate_version = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy until SIGINT or SIGTERM.
    Run(Box<RunArgs>),
    /// Check rule files; print FILE:LINE:COLUMN: message per problem (exit 2 if any).
    Check {
        /// Rule files, or folders of *.yaml.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Decode tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage the certificate authority that signs intercepted hosts' certificates.
    Ca {
        #[command(subcommand)]
        action: CaAction,
        /// Folder of ca.pem and ca-key.pem.
        #[arg(long, env = "AUTHFAULT_CA_DIR", default_value = "certs", global = true)]
        ca_dir: PathBuf,
    },
}

/// What `authfault token` does.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Show a JWT's header, claims and expiry in words; nothing is verified.
    Inspect {
        /// The token (a `Bearer ` prefix is fine), or `-` to read it from
        /// stdin and keep it out of the shell history.
        token: String,
    },
}

/// What `authfault ca` does.
#[derive(Debug, Subcommand)]
pub enum CaAction {
    /// Make the CA; an existing one is kept (exit 0) unless --force.
    Init {
        /// Replace an existing CA (clients must then trust the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print the path of the CA certificate.
    Path,
    /// Print the CA certificate (PEM) to stdout.
    Export,
}

/// Options of `run` (SPEC section 3), each also read from its environment
/// variable, for containers.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Proxy address; port 0 picks a free port.
    #[arg(
        long,
        env = "AUTHFAULT_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,
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
    /// Largest request header section in bytes; larger ones get 431.
    #[arg(long, env = "AUTHFAULT_MAX_HEADER_BYTES", default_value_t = proxy::DEFAULT_MAX_HEADER_BYTES, value_name = "BYTES")]
    pub max_header_bytes: usize,
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
    /// Exchange recording: `off` until recording lands (issue #4).
    #[arg(
        long,
        env = "AUTHFAULT_RECORD",
        value_name = "FILE|off",
        default_value = "off"
    )]
    pub record: String,
}

/// How a command ended, turned into the process's exit status by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went as asked: exit 0.
    Success,
    /// The input was found invalid and the problems were printed: exit 2.
    Invalid,
}

impl Outcome {
    /// The exit status of SPEC section 3.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Success => ExitCode::SUCCESS,
            Self::Invalid => ExitCode::from(2),
        }
    }
}

/// Runs a parsed command line. An `Err` is a usage or configuration error:
/// `main` prints it and exits 2.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Command::Run(run) => run_proxy(*run),
        Command::Ca { action, ca_dir } => run_ca(&action, &ca_dir),
        Command::Check { paths } => run_check(&paths),
        Command::Token {
            action: TokenAction::Inspect { token },
        } => run_inspect(&token),
    }
}

/// The log format a command asks for, so `main` can start logging first.
pub fn log_format(args: &Args) -> LogFormat {
    match &args.command {
        Command::Run(run) => run.log_format,
        Command::Ca { .. } | Command::Check { .. } | Command::Token { .. } => LogFormat::Text,
    }
}

fn run_inspect(token: &str) -> anyhow::Result<Outcome> {
    let token = if token == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the token from stdin")?;
        text
    } else {
        token.to_string()
    };
    match crate::inspect::report(&token, crate::credential::jwt::now_secs()) {
        Ok(report) => {
            print!("{report}");
            Ok(Outcome::Success)
        }
        Err(reason) => bail!("{reason}"),
    }
}

fn run_check(paths: &[PathBuf]) -> anyhow::Result<Outcome> {
    let env = |name: &str| std::env::var(name).ok();
    let mut out = std::io::stdout().lock();
    match crate::rules::load::load(paths, &env) {
        Ok(files) => {
            let rules: usize = files.iter().map(|f| f.file.rules.len()).sum();
            let scenarios: usize = files.iter().map(|f| f.file.scenarios.len()).sum();
            writeln!(
                out,
                "ok: {} file(s), {rules} rule(s), {scenarios} scenario(s)",
                files.len()
            )?;
            Ok(Outcome::Success)
        }
        Err(errors) => {
            for error in &errors {
                writeln!(out, "{error}")?;
            }
            eprintln!("authfault: {} problem(s) in the rule files", errors.len());
            Ok(Outcome::Invalid)
        }
    }
}

fn run_ca(action: &CaAction, dir: &Path) -> anyhow::Result<Outcome> {
    let (cert_path, _) = ca::paths(dir);
    let mut out = std::io::stdout().lock();
    match action {
        CaAction::Init { force } => match ca::init(dir, *force)? {
            ca::InitOutcome::Created => writeln!(out, "created {}", cert_path.display())?,
            ca::InitOutcome::Kept => writeln!(
                out,
                "kept the existing CA at {} (--force replaces it)",
                cert_path.display()
            )?,
        },
        CaAction::Path => {
            if !cert_path.exists() {
                bail!(
                    "no CA at {}; run `authfault ca init --ca-dir {}` to make one",
                    cert_path.display(),
                    dir.display()
                );
            }
            writeln!(out, "{}", cert_path.display())?;
        }
        CaAction::Export => {
            let ca = ca::load(dir)?;
            out.write_all(ca.cert_pem().as_bytes())?;
        }
    }
    Ok(Outcome::Success)
}

/// Checks the options and turns them into the proxy's config.
pub fn proxy_config(args: &RunArgs) -> anyhow::Result<proxy::Config> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "--listen {} is not a loopback address: anyone who can reach it could use authfault as an open proxy; \
             add --allow-remote (and --proxy-auth USER:PASS) to allow it",
            args.listen
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
    if args.record != "off" {
        bail!(
            "--record {}: recording exchanges is not available yet (issue #4); use --record off",
            args.record
        );
    }
    let rules = load_rules(args)?;
    let mut config = proxy::Config::new(args.listen);
    config.rules = Arc::new(arc_swap::ArcSwap::from_pointee(rules));
    config.intercept = intercept;
    config.passthrough = passthrough;
    config.proxy_auth = proxy_auth;
    config.max_header_bytes = args.max_header_bytes;
    config.upstream.is_insecure = args.insecure_upstream;
    config.upstream.timeout = args.upstream_timeout;
    config.upstream.extra_roots = load_roots(&args.upstream_ca)?;
    Ok(config)
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

fn run_proxy(args: RunArgs) -> anyhow::Result<Outcome> {
    let config = proxy_config(&args)?;
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
        let reloader = Arc::new(crate::rules::watch::Reloader::new(
            paths.clone(),
            config.rules.load().seed(),
            config.rules.clone(),
        ));
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
        let running = Proxy::start(config, ca).await?;
        print_banner(&running);
        shutdown_signal().await;
        tracing::info!(
            "shutting down: letting in-flight exchanges finish (up to {}s)",
            args.grace.as_secs_f64()
        );
        if !running.shutdown(args.grace).await {
            tracing::warn!("grace period over; connections still open were cut");
        }
        Ok(Outcome::Success)
    })
}

fn print_banner(running: &proxy::Running) {
    let addr = running.local_addr();
    let url = format!("http://{addr}");
    let cert = running.ca().cert_path();
    let mut out = std::io::stdout().lock();
    // The banner is the one thing on stdout: scripts read the real port here.
    let _ = writeln!(
        out,
        "authfault {} ready\n  proxy  {url}\n  admin  off (the admin API is not available yet)\n  CA     {}\n  hint   export HTTPS_PROXY={url} HTTP_PROXY={url}",
        env!("CARGO_PKG_VERSION"),
        cert.display(),
    );
    let _ = out.flush();
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!("cannot watch SIGTERM ({err}); only Ctrl-C stops the proxy");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Parses a number of seconds (`10`, `0.5`).
fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{value}` is not a non-negative number of seconds"))
}
