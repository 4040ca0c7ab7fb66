//! `authfault exec`: one command run through the proxy. Its environment
//! points every common HTTP client at the proxy and at a CA bundle that
//! trusts both the system roots and authfault's CA (SPEC section 3).
//!
//! Signals: Ctrl-C on a terminal reaches the command directly (it is in the
//! same process group); authfault waits for it to exit and then drains.
//! SIGTERM and SIGHUP sent to authfault are passed on to the command.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use tokio::signal::unix::{SignalKind, signal};

use crate::proxy::Running;
use crate::tls::Ca;

/// The file name of the bundle, next to the CA certificate.
pub const BUNDLE: &str = "ca-bundle.pem";

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildStatus {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
}

impl ChildStatus {
    /// The status a shell would report: the exit code, or 128 plus the
    /// signal's number.
    pub fn code(self) -> u8 {
        match (self.code, self.signal) {
            (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
            (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
            (None, None) => 1,
        }
    }
}

impl From<std::process::ExitStatus> for ChildStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

/// Writes `ca-bundle.pem` in `dir`: the system's roots, then the CA.
/// Replaced atomically, so a client never reads half a bundle.
pub fn write_bundle(ca: &Ca, dir: &Path) -> anyhow::Result<PathBuf> {
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::warn!("while reading the system's root certificates: {err}");
    }
    if native.certs.is_empty() {
        tracing::warn!(
            "no system root certificates found: the bundle trusts only the authfault CA, so hosts outside --intercept will fail TLS in the command"
        );
    }
    let mut pem = String::new();
    for cert in &native.certs {
        pem.push_str(&pem_block(cert.as_ref()));
    }
    pem.push_str(ca.cert_pem());
    let path = dir.join(BUNDLE);
    let tmp = dir.join(format!("{BUNDLE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("cannot write the CA bundle {}", path.display()))?;
    Ok(path)
}

/// One certificate as PEM.
fn pem_block(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The variables the command gets (SPEC section 3). `NO_PROXY` is left as
/// the user had it.
pub fn child_env(
    proxy_url: &str,
    admin_url: Option<&str>,
    bundle: &Path,
    ca_cert: &Path,
) -> Vec<(&'static str, OsString)> {
    let mut env: Vec<(&'static str, OsString)> =
        ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
            .into_iter()
            .map(|name| (name, OsString::from(proxy_url)))
            .collect();
    for name in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        env.push((name, bundle.as_os_str().to_owned()));
    }
    env.push(("NODE_EXTRA_CA_CERTS", ca_cert.as_os_str().to_owned()));
    // Node's built-in fetch ignores the proxy variables without it.
    env.push(("NODE_USE_ENV_PROXY", OsString::from("1")));
    if let Some(admin_url) = admin_url {
        env.push(("AUTHFAULT_ADMIN_URL", OsString::from(admin_url)));
    }
    env
}

/// The proxy's URL as clients are given it, with `--proxy-auth`
/// credentials when the proxy needs them.
fn proxy_url(running: &Running) -> String {
    match running.proxy_auth_userinfo() {
        Some(userinfo) => format!("http://{userinfo}@{}", running.local_addr()),
        None => format!("http://{}", running.local_addr()),
    }
}

/// Runs the command with the proxy's environment and waits for it, passing
/// on SIGTERM and SIGHUP.
pub async fn run_child(
    command: &[OsString],
    running: &Running,
    admin: Option<std::net::SocketAddr>,
    ca_dir: &Path,
) -> anyhow::Result<ChildStatus> {
    let (program, args) = command
        .split_first()
        .context("exec needs a command after `--`")?;
    let bundle = write_bundle(running.ca(), ca_dir)?;
    let admin_url = admin.map(|a| format!("http://{a}"));
    let env = child_env(
        &proxy_url(running),
        admin_url.as_deref(),
        &bundle,
        running.ca().cert_path(),
    );
    tracing::info!(
        "running {} through the proxy at http://{}",
        program.to_string_lossy(),
        running.local_addr()
    );
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    // Listening for SIGINT keeps authfault alive through Ctrl-C, which the
    // terminal also sends to the command: the command decides when to stop.
    // Installed before the command starts, so no signal finds authfault
    // with the default (fatal) disposition while the command runs.
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run `{}`; is it installed and on PATH?",
                program.to_string_lossy()
            )
        })?;
    let pid = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the command")?,
            _ = term.recv() => forward(pid, nix::sys::signal::Signal::SIGTERM),
            _ = hup.recv() => forward(pid, nix::sys::signal::Signal::SIGHUP),
            _ = int.recv() => tracing::info!("interrupted: waiting for the command to exit, then draining"),
        }
    };
    let status = ChildStatus::from(status);
    tracing::info!(
        "the command exited with status {}; draining the proxy",
        status.code()
    );
    Ok(status)
}

fn forward(pid: Option<u32>, sig: nix::sys::signal::Signal) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    tracing::info!("passing {sig} on to the command");
    if let Err(err) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
        tracing::warn!("cannot pass {sig} on to the command: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_the_exit_code_or_128_plus_the_signal() {
        let exited = ChildStatus {
            code: Some(7),
            signal: None,
        };
        assert_eq!(exited.code(), 7);
        let killed = ChildStatus {
            code: None,
            signal: Some(15),
        };
        assert_eq!(killed.code(), 143);
    }

    #[test]
    fn a_pem_block_wraps_at_64_columns() {
        let pem = pem_block(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert!(lines[1..lines.len() - 1].iter().all(|l| l.len() <= 64));
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[lines.len() - 1], "-----END CERTIFICATE-----");
    }
}
