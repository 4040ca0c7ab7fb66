//! The proxy under test: the release binary as a child process, pinned to
//! its own CPU, and its CPU time and memory read from `/proc`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running authfault, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
}

/// CPU time (user + system) of a process, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Cpu(u64);

impl Cpu {
    /// Microseconds of CPU between `self` and `later`.
    pub fn micros_until(self, later: Cpu) -> f64 {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        later.0.saturating_sub(self.0) as f64 * 1e6 / hz
    }
}

impl Proxy {
    /// Starts `bin run` on a free port with `--record off` and no rules
    /// unless `extra` says otherwise; `cpu` pins it with taskset.
    pub fn start(
        bin: &Path,
        dir: &Path,
        upstream_ca: &Path,
        cpu: Option<usize>,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let ca_dir = dir.join("ca");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--admin".into(),
            "off".into(),
            "--ca-dir".into(),
            ca_dir.display().to_string(),
            "--upstream-ca".into(),
            upstream_ca.display().to_string(),
        ];
        if !extra.iter().any(|a| a == "--record") {
            args.extend(["--record".into(), "off".into()]);
        }
        if !extra.iter().any(|a| a == "--rules") {
            // An empty rule folder: no ./rules picked up from where the bench runs.
            let empty = dir.join("no-rules");
            std::fs::create_dir_all(&empty)?;
            args.extend(["--rules".into(), empty.display().to_string()]);
        }
        args.extend(extra.iter().cloned());
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let log = std::fs::File::create(dir.join("proxy.log"))?;
        let child = command
            .args(&args)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut proxy = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            ca_pem: ca_dir.join("ca.pem"),
        };
        proxy.wait_ready(dir)?;
        Ok(proxy)
    }

    fn wait_ready(&mut self, dir: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
                bail!("the proxy exited at start ({status}):\n{log}");
            }
            let ca_ready = std::fs::metadata(&self.ca_pem).is_ok_and(|m| m.len() > 0);
            if ca_ready && TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the proxy did not listen on {} within 30 s", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime so far.
    pub fn cpu(&self) -> anyhow::Result<Cpu> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name, which is in parentheses.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("odd /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after state.
        let utime: u64 = fields.get(11).context("no utime")?.parse()?;
        let stime: u64 = fields.get(12).context("no stime")?.parse()?;
        Ok(Cpu(utime + stime))
    }

    /// Current resident set, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid())
    }

    /// Peak resident set since start, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM:").map(|k| k * 1024)
    }
}

/// Current resident set of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc status"))?;
    Ok(line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
