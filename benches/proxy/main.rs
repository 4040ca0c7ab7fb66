//! End to end: the same load straight to an upstream and through authfault,
//! in one run, on 127.0.0.1.
//!
//!   cargo bench --bench proxy                        # everything, 3 runs
//!   cargo bench --bench proxy -- --runs 1 https-ka   # one scenario, once
//!
//! Scenarios: `http-ka`, `https-ka`, `https-newconn`, `https-1m`, `h2`,
//! `rules` (https-ka with 100 rules, one firing, and recording with 64 KiB
//! body capture) and `memory`. Options: `--runs N` (3), `--duration S` (5),
//! `--warmup S` (1), `--conc N` (16 connections; h2: streams), `--conns N`
//! (5000 idle connections), `--no-pin`. `AUTHFAULT_BENCH_BIN` measures
//! another build of authfault (an A/B of a change).
//!
//! The upstream (hyper, in-process) and the load (hyper clients, one
//! thread) share CPU 1; the proxy, a child process, is pinned to CPU 0, so
//! its CPU time per request is read apart from theirs (`/proc/PID/stat`).
//! A fresh proxy per scenario and run gives peak RSS per scenario. Medians
//! over the runs are printed; per-run figures go to stderr.

mod client;
mod memory;
mod process;
mod upstream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::task::{JoinSet, LocalSet};

use client::Route;
use process::Proxy;
use upstream::Upstream;

/// The credential every load request carries (a JWT the `rules` scenario's
/// firing rule expires).
pub const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZGEiLCJleHAiOjQxMDI0NDQ4MDAsInNjb3BlIjoib3JkZXJzOnJlYWQifQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2ln";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    HttpKa,
    HttpsKa,
    HttpsNewconn,
    Https1m,
    H2,
    /// https-ka with rules and recording on, against https-ka with neither.
    Rules,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::HttpKa,
        Scenario::HttpsKa,
        Scenario::HttpsNewconn,
        Scenario::Https1m,
        Scenario::H2,
        Scenario::Rules,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::HttpKa => "http-ka",
            Scenario::HttpsKa => "https-ka",
            Scenario::HttpsNewconn => "https-newconn",
            Scenario::Https1m => "https-1m",
            Scenario::H2 => "h2",
            Scenario::Rules => "rules",
        }
    }
}

pub struct Options {
    runs: usize,
    duration: Duration,
    warmup: Duration,
    conc: usize,
    pub idle_connections: usize,
    pin: bool,
    scenarios: Vec<Scenario>,
    memory: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        runs: 3,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        conc: 16,
        idle_connections: 5000,
        pin: true,
        scenarios: Vec::new(),
        memory: false,
    };
    let mut args = std::env::args().skip(1);
    let mut any = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--runs" => o.runs = value("--runs")?.max(1) as usize,
            "--duration" => o.duration = Duration::from_secs(value("--duration")?.max(1)),
            "--warmup" => o.warmup = Duration::from_secs(value("--warmup")?),
            "--conc" => o.conc = value("--conc")?.max(1) as usize,
            "--conns" => o.idle_connections = value("--conns")?.max(1) as usize,
            "--no-pin" => o.pin = false,
            "memory" => {
                o.memory = true;
                any = true;
            }
            name => match Scenario::ALL.iter().find(|s| s.name() == name) {
                Some(s) => {
                    o.scenarios.push(*s);
                    any = true;
                }
                None => bail!(
                    "unknown argument `{name}`; scenarios: http-ka https-ka https-newconn https-1m h2 rules memory"
                ),
            },
        }
    }
    if !any {
        o.scenarios = Scenario::ALL.to_vec();
        o.memory = true;
    }
    Ok(o)
}

/// What one run of one scenario against one target measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    ok: u64,
    errors: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    /// Proxy CPU per successful request (proxied runs only).
    cpu_us: Option<f64>,
    peak_rss: Option<u64>,
}

impl Sample {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }
}

pub struct Bench {
    pub options: Options,
    pub upstream: Upstream,
    bin: PathBuf,
    dir: tempfile::TempDir,
    rules_dir: PathBuf,
}

impl Bench {
    /// A fresh proxy in a fresh folder, pinned to CPU 0.
    pub fn proxy(&self, label: &str, extra: &[String]) -> anyhow::Result<Proxy> {
        let dir = self.dir.path().join(format!(
            "{label}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)?;
        Proxy::start(
            &self.bin,
            &dir,
            &self.upstream.ca_pem,
            self.options.pin.then_some(0),
            extra,
        )
    }

    fn rules_args(&self) -> Vec<String> {
        vec![
            "--rules".into(),
            self.rules_dir.display().to_string(),
            "--record".into(),
            self.dir.path().join("rules.jsonl").display().to_string(),
            "--record-body".into(),
            "65536".into(),
        ]
    }
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    if options.pin {
        pin_to(1)?;
    }
    raise_fd_limit();
    let dir = tempfile::tempdir()?;
    let upstream = upstream::start(dir.path())?;
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    std::fs::write(rules_dir.join("bench.yaml"), rule_file(100))?;
    let bin = std::env::var_os("AUTHFAULT_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_authfault")),
        PathBuf::from,
    );
    let bench = Bench {
        options,
        upstream,
        bin,
        dir,
        rules_dir,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&runtime, run(&bench))
}

async fn run(bench: &Bench) -> anyhow::Result<()> {
    let o = &bench.options;
    eprintln!(
        "authfault: {}\n{} run(s) of {} s after {} s warm-up, {} connections; proxy on CPU 0, load and upstream on CPU 1{}",
        bench.bin.display(),
        o.runs,
        o.duration.as_secs(),
        o.warmup.as_secs(),
        o.conc,
        if o.pin { "" } else { " (not pinned)" }
    );
    let mut table = Vec::new();
    for &scenario in &o.scenarios {
        let mut direct = Vec::new();
        let mut proxied = Vec::new();
        let mut baseline = Vec::new();
        for run in 1..=o.runs {
            if scenario == Scenario::Rules {
                // Neither, then both, each in a fresh proxy.
                let neither = measure_proxied(bench, Scenario::HttpsKa, &[]).await?;
                report_run(scenario, "no rules, no recording", run, &neither);
                baseline.push(neither);
                let both = measure_proxied(bench, Scenario::HttpsKa, &bench.rules_args()).await?;
                report_run(scenario, "100 rules + recording", run, &both);
                proxied.push(both);
            } else {
                let route = Route::direct(&bench.upstream)?;
                let d = measure(&route, scenario, o, None).await?;
                report_run(scenario, "direct", run, &d);
                direct.push(d);
                let p = measure_proxied(bench, scenario, &[]).await?;
                report_run(scenario, "authfault", run, &p);
                proxied.push(p);
            }
        }
        table.push((
            scenario,
            median_of(&direct),
            median_of(&baseline),
            median_of(&proxied),
        ));
    }
    if !table.is_empty() {
        print_table(&table, o.runs);
    }
    if o.memory {
        let rows = memory::run(bench).await?;
        println!("\nmemory (authfault, --record off, no rules)\n");
        println!("| what | MiB | how |");
        println!("|---|---:|---|");
        for row in rows {
            println!("| {} | {:.1} | {} |", row.what, row.mib, row.note);
        }
    }
    Ok(())
}

async fn measure_proxied(
    bench: &Bench,
    scenario: Scenario,
    extra: &[String],
) -> anyhow::Result<Sample> {
    let proxy = bench.proxy(scenario.name(), extra)?;
    let route = Route::proxied(proxy.addr, &bench.upstream, &proxy.ca_pem)?;
    let mut sample = measure(&route, scenario, &bench.options, Some(&proxy)).await?;
    sample.peak_rss = Some(proxy.peak_rss()?);
    Ok(sample)
}

/// Requests timed inside the window count; the warm-up and requests that
/// straddle the window's edges do not.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs one scenario's load against `route`; with `proxy`, reads its CPU
/// time at the window's edges.
async fn measure(
    route: &Route,
    scenario: Scenario,
    o: &Options,
    proxy: Option<&Proxy>,
) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let window = Window {
        from: start + o.warmup,
        until: start + o.warmup + o.duration,
    };
    let mut workers = JoinSet::new();
    match scenario {
        Scenario::HttpKa => {
            for _ in 0..o.conc {
                let route = route.clone();
                workers.spawn_local(worker(
                    window,
                    async move || route.http1().await,
                    async |c| c.get("/small").await,
                ));
            }
        }
        Scenario::HttpsKa | Scenario::Rules => {
            for _ in 0..o.conc {
                let route = route.clone();
                workers.spawn_local(worker(
                    window,
                    async move || route.https1().await,
                    async |c| c.get("/small").await,
                ));
            }
        }
        Scenario::Https1m => {
            for _ in 0..o.conc {
                let route = route.clone();
                workers.spawn_local(worker(
                    window,
                    async move || route.https1().await,
                    async |c| c.get("/1m").await,
                ));
            }
        }
        Scenario::HttpsNewconn => {
            for _ in 0..o.conc {
                let route = route.clone();
                workers.spawn_local(worker(
                    window,
                    async || anyhow::Ok(()),
                    async move |_| route.https1().await?.get("/small").await,
                ));
            }
        }
        Scenario::H2 => {
            // A few connections, many streams on each: 4 × conc streams.
            for _ in 0..4 {
                let conn = route.https2().await?;
                for _ in 0..o.conc {
                    let conn = conn.clone();
                    let route = route.clone();
                    let mut first = Some(conn);
                    workers.spawn_local(worker(
                        window,
                        async move || match first.take() {
                            Some(conn) => Ok(conn),
                            None => route.https2().await,
                        },
                        async |c| c.get("/small").await,
                    ));
                }
            }
        }
    }
    tokio::time::sleep_until(window.from.into()).await;
    let cpu_before = proxy.map(Proxy::cpu).transpose()?;
    tokio::time::sleep_until(window.until.into()).await;
    let cpu_after = proxy.map(Proxy::cpu).transpose()?;
    let mut all = Tally::default();
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        if all.first_error.is_none() {
            all.first_error = tally.first_error;
        }
    }
    if let Some(err) = &all.first_error {
        eprintln!("  {} error(s), the first: {err}", all.errors);
    }
    let ok = all.latencies_us.len() as u64;
    if ok == 0 {
        bail!("{}: no request succeeded", scenario.name());
    }
    all.latencies_us.sort_unstable();
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(a.micros_until(b) / ok as f64),
        _ => None,
    };
    Ok(Sample {
        ok,
        errors: all.errors,
        secs: o.duration.as_secs_f64(),
        p50_us: percentile(&all.latencies_us, 0.50),
        p99_us: percentile(&all.latencies_us, 0.99),
        cpu_us,
        peak_rss: None,
    })
}

/// One client: opens its connection (untimed), then sends requests one
/// after another until the window closes, reopening after an error.
async fn worker<C>(
    window: Window,
    open: impl AsyncFnMut() -> anyhow::Result<C>,
    mut call: impl AsyncFnMut(&mut C) -> anyhow::Result<u64>,
) -> Tally {
    let mut open = open;
    let mut tally = Tally::default();
    let mut conn = None;
    while Instant::now() < window.until {
        let c = match &mut conn {
            Some(c) => c,
            None => match open().await {
                Ok(c) => conn.insert(c),
                Err(err) => {
                    tally.error(err);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let result = call(c).await;
        let done = Instant::now();
        match result {
            Ok(_) if sent >= window.from && done <= window.until => {
                let us = done.duration_since(sent).as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Ok(_) => {}
            Err(err) => {
                if done <= window.until {
                    tally.error(err);
                }
                conn = None;
            }
        }
    }
    tally
}

impl Tally {
    fn error(&mut self, err: anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{err:#}"));
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Each figure's median over the runs (an empty list gives `None`).
fn median_of(samples: &[Sample]) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let secs = samples[0].secs;
    Some(Sample {
        ok: (m(&|s| s.ok as f64)) as u64,
        errors: samples.iter().map(|s| s.errors).sum(),
        secs,
        p50_us: m(&|s| s.p50_us),
        p99_us: m(&|s| s.p99_us),
        cpu_us: samples[0]
            .cpu_us
            .map(|_| m(&|s| s.cpu_us.unwrap_or(f64::NAN))),
        peak_rss: samples[0]
            .peak_rss
            .map(|_| m(&|s| s.peak_rss.unwrap_or(0) as f64) as u64),
    })
}

fn report_run(scenario: Scenario, target: &str, run: usize, s: &Sample) {
    eprintln!(
        "{:<14} {:<24} run {run}: {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  err {}{}{}",
        scenario.name(),
        target,
        s.rps(),
        s.p50_us / 1000.0,
        s.p99_us / 1000.0,
        s.errors,
        s.cpu_us
            .map_or(String::new(), |c| format!("  cpu {c:.1} us/req")),
        s.peak_rss
            .map_or(String::new(), |r| format!("  peak {:.1} MiB", mib(r))),
    );
}

type Row = (Scenario, Option<Sample>, Option<Sample>, Option<Sample>);

fn print_table(table: &[Row], runs: usize) {
    println!("\nmedians of {runs} run(s); cpu = authfault's CPU time per request\n");
    println!(
        "| scenario | target | req/s | p50 ms | p99 ms | errors | cpu µs/req | peak RSS MiB | req/s ÷ direct | p50 ÷ direct |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (scenario, direct, baseline, proxied) in table {
        if let Some(d) = direct {
            println!(
                "| {} | direct | {:.0} | {:.3} | {:.3} | {} | | | | |",
                scenario.name(),
                d.rps(),
                d.p50_us / 1000.0,
                d.p99_us / 1000.0,
                d.errors
            );
        }
        if let Some(b) = baseline {
            println!(
                "| {} | authfault, no rules, no recording | {:.0} | {:.3} | {:.3} | {} | {:.1} | {:.1} | | |",
                scenario.name(),
                b.rps(),
                b.p50_us / 1000.0,
                b.p99_us / 1000.0,
                b.errors,
                b.cpu_us.unwrap_or(f64::NAN),
                mib(b.peak_rss.unwrap_or(0)),
            );
        }
        if let Some(p) = proxied {
            let (label, ratios) = match (direct, baseline) {
                (Some(d), _) => (
                    "authfault",
                    format!("{:.2} | {:.2}", p.rps() / d.rps(), p.p50_us / d.p50_us),
                ),
                (None, Some(b)) => (
                    "authfault, 100 rules + recording",
                    format!(
                        "cpu ÷ no rules: {:.2} | ",
                        p.cpu_us.unwrap_or(f64::NAN) / b.cpu_us.unwrap_or(f64::NAN)
                    ),
                ),
                _ => ("authfault", " | ".to_string()),
            };
            println!(
                "| {} | {label} | {:.0} | {:.3} | {:.3} | {} | {:.1} | {:.1} | {ratios} |",
                scenario.name(),
                p.rps(),
                p.p50_us / 1000.0,
                p.p99_us / 1000.0,
                p.errors,
                p.cpu_us.unwrap_or(f64::NAN),
                mib(p.peak_rss.unwrap_or(0)),
            );
        }
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 99 rules for other hosts and paths, and one that expires the JWT on
/// `/small` at localhost.
fn rule_file(n: usize) -> String {
    let mut yaml = String::from("rules:\n");
    for i in 0..n - 1 {
        yaml.push_str(&format!(
            "  - name: r{i}\n    match: {{ host: \"*.svc{i}.test\", method: [GET, POST], path: \"^/v{i}/orders\", headers: {{ x-tenant: \"^t{i}$\" }} }}\n    action: {{ expire: {{ by: 1h }} }}\n"
        ));
    }
    yaml.push_str(
        "  - name: expire-small\n    match: { host: localhost, path: \"^/small\", credential: jwt }\n    action: { expire: { by: 1h } }\n",
    );
    yaml
}

/// Pins this process's threads (made from now on) to `cpu`.
fn pin_to(cpu: usize) -> anyhow::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu)
        .context("pinning: no such CPU (use --no-pin)")?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .context("pinning the load to CPU 1 failed (use --no-pin)")?;
    Ok(())
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
