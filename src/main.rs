//! The `authfault` binary: parse flags, start logging, run, exit.

// One `unsafe` call, in `tune_malloc`; the library forbids it outright.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_malloc();
    let args = authfault::cli::Args::parse(); // clap prints usage and exits 2 itself
    let log = authfault::logging::init(authfault::cli::log_format(&args));
    let result = authfault::cli::run(args);
    drop(log); // flushes the log lines before the final message
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("authfault: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// glibc hands the free top of a thread's heap back to the kernel once
/// 128 KiB of it is free, and the next allocation faults it back in,
/// zeroed. Bodies streaming through the proxy free and reallocate HTTP/2 and
/// TLS buffers all the time: on 1 MiB downloads that was about 100 page
/// faults and 0.3 `madvise` calls per request and a tenth of the proxy's
/// CPU (`perf stat -e page-faults` on `cargo bench --bench proxy --
/// https-1m`: 204,238 faults in 4 s, 421 with this). So the top of a heap
/// is trimmed only past 4 MiB, and allocations under 1 MiB come from the
/// heap (setting one threshold turns off glibc's own adjustment of the
/// other). A user's own `GLIBC_TUNABLES` or `MALLOC_*_` settings win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    if !malloc_left_to_us(|name| std::env::var_os(name)) {
        return;
    }
    // SAFETY: `mallopt` only sets malloc's parameters; it is called first
    // thing in `main`, before this process starts any other thread.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// Whether the environment leaves malloc's thresholds to authfault: not when
/// the user tuned glibc's malloc already.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn malloc_left_to_us(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    let tunables = var("GLIBC_TUNABLES").unwrap_or_default();
    !tunables.to_string_lossy().contains("glibc.malloc.")
        && var("MALLOC_TRIM_THRESHOLD_").is_none()
        && var("MALLOC_MMAP_THRESHOLD_").is_none()
}

#[cfg(test)]
mod tests {
    use super::malloc_left_to_us;
    use std::ffi::OsString;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn malloc_is_tuned_unless_the_user_tuned_it() {
        assert!(malloc_left_to_us(env(&[])));
        assert!(malloc_left_to_us(env(&[(
            "GLIBC_TUNABLES",
            "glibc.pthread.rseq=0"
        )])));
        assert!(!malloc_left_to_us(env(&[(
            "GLIBC_TUNABLES",
            "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=0"
        )])));
        assert!(!malloc_left_to_us(env(&[("MALLOC_TRIM_THRESHOLD_", "0")])));
        assert!(!malloc_left_to_us(env(&[(
            "MALLOC_MMAP_THRESHOLD_",
            "65536"
        )])));
    }
}
