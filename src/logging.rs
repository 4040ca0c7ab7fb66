//! Logging to stderr, as text or JSON (`--log-format`): one line per
//! exchange plus the proxy's own notices. `RUST_LOG` narrows or widens it.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::record::Record;
use crate::record::entry::LogLine;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Flushes the log when dropped; keep it alive until the process ends.
#[must_use = "dropping the guard stops logging"]
pub struct Guard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber. Later calls change nothing.
///
/// Lines are written by a background thread through a buffer flushed
/// whenever the queue runs dry: under load many lines share one `write`, and
/// a slow stderr never stalls an exchange. The queue is not lossy: if it
/// fills up, the exchange that logs waits rather than lose a line.
pub fn init(format: LogFormat) -> Guard {
    if FORMAT.set(format).is_err() {
        return Guard { _worker: None };
    }
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The default queue (128k lines) preallocates megabytes; a few
        // thousand lines absorb any burst the writer thread cannot.
        .buffered_lines_limit(4096)
        .thread_name("authfault-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Guard {
        _worker: Some(guard),
    }
}

/// Logs one finished exchange: the SPEC's line in text, its fields in JSON.
pub(crate) fn exchange(record: &Record) {
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => tracing::info!("{}", LogLine(record)),
        LogFormat::Json => tracing::info!(
            id = record.id,
            method = %record.method,
            url = %record.url,
            status = record.response.status,
            ms = record.timing.total_ms,
            client = %record.client,
            rule = record.rule.as_deref().unwrap_or("-"),
            action = record.action.as_deref().unwrap_or("-"),
            verdict = record.verdict.as_str(),
            reason = %record.reason,
            error = record.error.as_deref().unwrap_or("-"),
            response_bytes = record.response.body_bytes,
            complete = record.response.complete,
            "exchange"
        ),
    }
}
