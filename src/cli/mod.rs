//! The command line: subcommands and `--flag`/`AUTHFAULT_*` options into one
//! checked `proxy::Config`, then the command's life from start to exit code.
//! Sockets after start-up are the proxy's business.

mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::logging::LogFormat;
use crate::tls::ca;

pub use serve::{ExecArgs, Mode, RunArgs, proxy_config, rule_paths};

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
    /// Run one command through the proxy, then report (exit 3 on violations, else the command's status).
    Exec(Box<ExecArgs>),
    /// Report on recordings (several merge): text, json, junit or har (exit 3 on violations).
    Report {
        /// Recording files (JSON Lines).
        #[arg(required = true, value_name = "RECORDING")]
        recordings: Vec<PathBuf>,
        /// The report's format.
        #[arg(long, value_enum, default_value = "text")]
        format: crate::report::Format,
        /// Write the report here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check rule files; print FILE:LINE:COLUMN: message per problem (exit 2 if any).
    Check {
        /// Rule files, or folders of *.yaml.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Exit 0 when the admin API answers /healthz (for container health checks).
    Health {
        /// The admin API's URL [default: from AUTHFAULT_ADMIN, else http://127.0.0.1:8081]; `/healthz` is added when the URL has no path.
        #[arg(value_name = "URL")]
        url: Option<String>,
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

/// How a command ended, turned into the process's exit status by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went as asked: exit 0.
    Success,
    /// The input was found invalid and the problems were printed: exit 2.
    Invalid,
    /// The run had violations (`bypassed`, `mismatch`, `error`): exit 3.
    Violations,
    /// `exec`'s command exited with this status.
    Status(u8),
    /// `health`: the admin API did not answer `/healthz` with 200: exit 1.
    Unhealthy,
}

impl Outcome {
    /// The exit status of SPEC section 3.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Success => ExitCode::SUCCESS,
            Self::Invalid => ExitCode::from(2),
            Self::Violations => ExitCode::from(3),
            Self::Status(code) => ExitCode::from(code),
            Self::Unhealthy => ExitCode::from(1),
        }
    }
}

/// Runs a parsed command line. An `Err` is a usage or configuration error:
/// `main` prints it and exits 2.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    match args.command {
        Command::Run(run) => serve::run_proxy(*run),
        Command::Exec(exec) => serve::run_exec(*exec),
        Command::Report {
            recordings,
            format,
            output,
        } => run_report(&recordings, format, output.as_deref()),
        Command::Health { url } => crate::health::run(url.as_deref()),
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
        Command::Exec(exec) => exec.run.log_format,
        Command::Ca { .. }
        | Command::Check { .. }
        | Command::Token { .. }
        | Command::Report { .. }
        | Command::Health { .. } => LogFormat::Text,
    }
}

fn run_report(
    recordings: &[PathBuf],
    format: crate::report::Format,
    output: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let (records, bad) = crate::report::read(recordings)?;
    for line in &bad {
        eprintln!("authfault: {line}");
    }
    let color = output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let text = crate::report::render(&records, format, color)?;
    match output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the report {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    let summary = crate::report::Summary::of(&records);
    Ok(if summary.has_violations() {
        Outcome::Violations
    } else {
        Outcome::Success
    })
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
