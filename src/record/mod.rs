//! What the proxy keeps of each exchange. On the hot path, `Exchange`
//! gathers raw facts and `tap` follows the response body as it streams,
//! capturing its first bytes; when the body ends, `writer`'s thread judges
//! the exchange (`verdict`), builds its `entry::Record` with every secret
//! masked (`redact`), logs it, adds it to the summary and appends it to the
//! recording file.

pub mod entry;
pub mod redact;
pub mod tap;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::credential::{Place, Token};
use crate::verdict::{Expectation, Verdict};

pub use entry::Record;
pub use tap::Tap;
pub use writer::Recorder;

/// Default number of response body bytes kept per exchange (`--record-body`).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Where and how much to record.
#[derive(Debug, Clone)]
pub struct Config {
    /// The JSON Lines file exchanges are appended to; `None` for `--record off`
    /// (exchanges are still judged, logged and summed up).
    pub path: Option<PathBuf>,
    /// Response body bytes kept per exchange.
    pub body_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: None,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// What is known of one exchange, filled in as it goes. Only raw facts:
/// judging, redaction and formatting happen on the recorder's thread.
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
    /// The same moment on the wall clock, for `ts`.
    pub started_at: SystemTime,
    /// The client's HTTP version.
    pub version: Version,
    /// The upstream's HTTP version, once it answered.
    pub upstream_version: Option<Version>,
    /// From sending the request upstream to its response headers.
    pub upstream_elapsed: Option<Duration>,
    /// The status sent to the client, once known.
    pub status: Option<StatusCode>,
    /// The code of an error the proxy answered itself (SPEC section 9).
    pub error: Option<&'static str>,
    /// Why the response body ended early, when it did: `upstream_protocol`,
    /// `upstream_timeout` (stalled) or `client_closed`. Recorded as `error`;
    /// the verdict still judges the response the client got.
    pub body_error: Option<&'static str>,
    /// The rule that owned the exchange and its action's name.
    pub rule: Option<(String, &'static str)>,
    /// Whether the owner's `when` held and its action was applied.
    pub fired: bool,
    /// The scenario in effect when the rule was chosen.
    pub scenario: Option<String>,
    /// The verdict where it is known without the response (`untouched`,
    /// `skipped`, `synthetic`), with its reason.
    pub verdict: Option<(Verdict, std::borrow::Cow<'static, str>)>,
    /// What the response is judged by, when the action fired and has one.
    pub expectation: Option<Arc<Expectation>>,
    /// The credential in the owning rule's place, before and after.
    pub credential: Option<Credential>,
    /// The request headers as forwarded (kept when recording to a file).
    pub request_headers: Option<HeaderMap>,
    /// Request body bytes forwarded so far (counted when recording).
    pub request_bytes: Option<Arc<AtomicU64>>,
    /// The response headers as sent (kept when recording or judging).
    pub response_headers: Option<HeaderMap>,
}

/// The credential of an exchange a rule owned. The tokens are secrets: they
/// are held only to fingerprint them and to mask them in what is written.
/// Their JWTs come decoded from matching and perturbing, where they were.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Where it lives (`header:authorization`).
    pub place: Place,
    /// The token the client sent, if any.
    pub before: Option<Token>,
    /// The token forwarded, if any (the same as `before` when the action did
    /// not fire).
    pub after: Option<Token>,
    /// Whether `after` was re-signed with a rule key.
    pub resigned: bool,
}

impl Credential {
    /// The credential of an exchange whose action did not change it.
    pub fn unchanged(place: Place, token: Option<Token>) -> Self {
        Self {
            place,
            after: token.clone(),
            before: token,
            resigned: false,
        }
    }
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

/// An exchange whose response has ended, on its way to the recorder.
#[derive(Debug)]
pub struct Finished {
    pub exchange: Exchange,
    pub end: BodyEnd,
    /// From the request's arrival to the body's end.
    pub elapsed: Duration,
    /// The first bytes of the response body, as sent.
    pub body: Bytes,
}

impl Exchange {
    /// Starts an exchange for a request to `url`.
    pub fn begin(method: Method, url: Uri, client: SocketAddr, version: Version) -> Self {
        Self {
            method,
            url,
            client,
            started: Instant::now(),
            started_at: SystemTime::now(),
            version,
            upstream_version: None,
            upstream_elapsed: None,
            status: None,
            error: None,
            body_error: None,
            rule: None,
            fired: false,
            scenario: None,
            verdict: None,
            expectation: None,
            credential: None,
            request_headers: None,
            request_bytes: None,
            response_headers: None,
        }
    }

    /// Sets the verdict known before any response.
    pub fn settle(&mut self, verdict: Verdict, reason: impl Into<std::borrow::Cow<'static, str>>) {
        self.verdict = Some((verdict, reason.into()));
    }
}
