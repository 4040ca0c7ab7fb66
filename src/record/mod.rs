//! What the proxy keeps of each exchange: `tap` follows the response body as
//! it streams and closes the exchange at its end; `redact` keeps secrets out
//! of everything written. Verdicts are `verdict`'s job.

pub mod redact;
pub mod tap;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode, Uri};

pub use tap::Tap;

/// What is known of one exchange, filled in as it goes and logged once,
/// when its response body ends (or the client goes away).
#[derive(Debug)]
pub struct Exchange {
    /// The request method.
    pub method: Method,
    /// The absolute URL; redacted wherever it is written.
    pub url: Uri,
    /// The client's address.
    pub client: SocketAddr,
    /// When the request arrived.
    pub started: Instant,
    /// The status sent to the client, once known.
    pub status: Option<StatusCode>,
    /// The code of an error the proxy answered itself (SPEC section 9).
    pub error: Option<&'static str>,
    /// The rule that owned the exchange, if any.
    pub rule: Option<String>,
    /// The action of that rule, when its `when` fired.
    pub action: Option<&'static str>,
    /// The verdict, where it is known without judging the response
    /// (`untouched`, `skipped`, `synthetic`); judging is issue #4's.
    pub verdict: Option<crate::verdict::Verdict>,
}

/// How the response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyEnd {
    /// Bytes of response body sent to the client.
    pub bytes: u64,
    /// False when the body stopped early: the client left or the upstream
    /// broke off.
    pub is_complete: bool,
}

impl Exchange {
    /// Starts an exchange for a request to `url`.
    pub fn begin(method: Method, url: Uri, client: SocketAddr) -> Self {
        Self {
            method,
            url,
            client,
            started: Instant::now(),
            status: None,
            error: None,
            rule: None,
            action: None,
            verdict: None,
        }
    }

    /// Closes the exchange: writes its log line.
    pub fn finish(self, end: BodyEnd) {
        crate::logging::exchange(&self, end, self.started.elapsed());
    }
}

/// The one-line summary of SPEC section 9, written without building a
/// string first:
/// `GET https://api.example.com/v1/orders 401 12ms rule=- action=- verdict=-`.
pub struct LogLine<'a> {
    pub exchange: &'a Exchange,
    pub end: BodyEnd,
    pub elapsed: Duration,
}

impl std::fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exchange = self.exchange;
        write!(
            f,
            "{} {} {} {}ms rule={} action={} verdict={}",
            exchange.method,
            redact::Url(&exchange.url),
            exchange.status.map_or(0, |s| s.as_u16()),
            self.elapsed.as_millis(),
            exchange.rule.as_deref().unwrap_or("-"),
            exchange.action.unwrap_or("-"),
            exchange
                .verdict
                .map_or("-", crate::verdict::Verdict::as_str),
        )?;
        if let Some(code) = exchange.error {
            write!(f, " error={code}")?;
        }
        if !self.end.is_complete {
            f.write_str(" body=incomplete")?;
        }
        Ok(())
    }
}
