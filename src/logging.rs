//! Logging to stderr, as text or JSON (`--log-format`): one line per
//! exchange plus the proxy's own notices. `RUST_LOG` narrows or widens it.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_appender::non_blocking::NonBlocking;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::record::Record;
use crate::record::entry::{LogLine, Precision, write_timestamp};

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
    let _ = LOG.set(writer);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Writer)
        .with_timer(Timer)
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

/// The log's timestamps, as tracing-subscriber's `SystemTime` timer writes
/// them (`2026-11-28T07:20:00.123456Z`), in a fraction of its instructions:
/// every exchange's line carries one.
struct Timer;

impl tracing_subscriber::fmt::time::FormatTime for Timer {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write_timestamp(w, std::time::SystemTime::now(), Precision::Micros)
    }
}

thread_local! {
    /// Lines a batching thread (the recorder) holds until `flush_held`.
    static HELD: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// From now on, this thread's log lines are held and written by
/// `flush_held`, many in one `write`. The recorder logs a burst of exchange
/// lines per batch; handing each to the log thread woke that thread once
/// per line, a context switch per exchange on the proxy's CPU.
pub(crate) fn hold_lines() {
    HELD.with(|held| *held.borrow_mut() = Some(Vec::with_capacity(16 * 1024)));
}

/// Hands the lines this thread holds to the log thread as one message: one
/// wake-up of that thread per batch, and a stderr nobody reads stalls the
/// log thread, never this one (until the log queue fills, as for any line).
pub(crate) fn flush_held() {
    HELD.with(|held| {
        if let Some(buf) = held.borrow_mut().as_mut()
            && !buf.is_empty()
        {
            if let Some(log) = LOG.get() {
                let _ = log.clone().write_all(buf);
            }
            buf.clear();
        }
    });
}

/// The log thread's queue: every line goes there, one at a time from the
/// subscriber or a batch at a time from `flush_held`.
static LOG: OnceLock<NonBlocking> = OnceLock::new();

/// The subscriber's writer: held lines on a batching thread, the log thread
/// everywhere else.
struct Writer;

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

struct Line;

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let is_held = HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(lines) => {
                lines.extend_from_slice(buf);
                true
            }
            None => false,
        });
        match LOG.get() {
            Some(log) if !is_held => log.clone().write(buf),
            _ => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

    #[test]
    fn the_log_timer_writes_what_tracing_subscribers_timer_writes() {
        let write = |timer: &dyn FormatTime| {
            let mut out = String::new();
            timer.format_time(&mut Writer::new(&mut out)).expect("time");
            out
        };
        let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").expect("regex");
        let theirs = write(&SystemTime);
        let ours = write(&super::Timer);
        assert!(shape.is_match(&theirs), "{theirs}");
        assert!(shape.is_match(&ours), "{ours}");
        // The same clock read a moment later: in this format, text order is
        // time order.
        assert!(ours >= theirs, "{ours} is before {theirs}");
    }
}
