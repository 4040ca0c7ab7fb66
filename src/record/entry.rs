//! One line of the recording (SPEC section 7): `Record`, written by the
//! recorder and read back by `authfault report`. `Record::build` is where an
//! exchange is judged and every secret in it is masked.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use http::{HeaderMap, Version};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Finished;
use super::redact::{self, Masker};
use crate::credential::{Jwt, Place, Token};
use crate::verdict::{self, Verdict};

/// One finished exchange as the recording keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number within the run, from 1.
    pub id: u64,
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub ts: String,
    /// Written as `ip:port`, as `Display` writes it (serde's own format).
    pub client: std::net::SocketAddr,
    /// Borrowed for the standard methods, like the other fields that are
    /// usually one of a few names: the recorder builds a record per
    /// exchange, and each allocation it does not make is one it does not
    /// free either.
    pub method: Cow<'static, str>,
    /// The URL with credentials masked.
    pub url: String,
    /// The client's side (`HTTP/1.1`, `HTTP/2`).
    pub http_version: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_http_version: Option<Cow<'static, str>>,
    /// The rule that owned the exchange.
    pub rule: Option<String>,
    /// That rule's action.
    pub action: Option<Cow<'static, str>>,
    /// Whether the rule's `when` held and the action was applied.
    #[serde(default)]
    pub fired: bool,
    /// The scenario in effect.
    pub scenario: Option<String>,
    /// Boxed: most exchanges have none, and the admin ring keeps 10,000
    /// records (inline it made each 728 bytes instead of 456).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Box<CredentialRecord>>,
    pub request: RequestRecord,
    pub response: ResponseRecord,
    /// The code of an error the proxy answered itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub timing: Timing,
    pub verdict: Verdict,
    pub reason: Cow<'static, str>,
}

/// The credential before and after the action, without its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// `header:authorization`, `query:api_key`, `cookie:session`.
    pub location: String,
    pub before: Option<TokenRecord>,
    pub after: Option<TokenRecord>,
}

/// A token as the recording shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// `sha256:` and 12 hex digits.
    pub fingerprint: String,
    /// `jwt` or `opaque`.
    pub kind: String,
    /// A JWT's claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
    /// On `after`: whether authfault re-signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resigned: Option<bool>,
}

/// Header values by lowercase name, in the message's order; a repeated
/// header is a list. Written as a JSON object. A list rather than a map:
/// names come unique from `HeaderMap`, and hashing them again per exchange
/// cost the recorder measurable time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(Vec<(Cow<'static, str>, HeaderValues)>);

impl Headers {
    /// Room for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Adds a header; the caller keeps names unique.
    pub fn push(&mut self, name: &str, values: HeaderValues) {
        self.0.push((common_name(Cow::Borrowed(name)), values));
    }

    /// The values of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&HeaderValues> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Each name and its values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HeaderValues)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }
}

/// Header names most exchanges carry, sorted: a record (10,000 of them in
/// the admin ring) points at these instead of holding a copy of each.
const COMMON_NAMES: [&str; 36] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "access-control-allow-origin",
    "age",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-language",
    "content-length",
    "content-security-policy",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expires",
    "host",
    "last-modified",
    "location",
    "origin",
    "pragma",
    "proxy-authorization",
    "referer",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
    "x-content-type-options",
    "x-request-id",
];

/// `name`, borrowed from `COMMON_NAMES` when it is one of them; otherwise
/// owned, copied only if it was not already (a name read from a file).
fn common_name(name: Cow<'_, str>) -> Cow<'static, str> {
    match COMMON_NAMES.binary_search(&&*name) {
        Ok(at) => Cow::Borrowed(COMMON_NAMES[at]),
        Err(_) => Cow::Owned(name.into_owned()),
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = HeaderValues;

    /// The values of `name`; panics when it is absent, like a map's index.
    fn index(&self, name: &str) -> &HeaderValues {
        match self.get(name) {
            Some(values) => values,
            None => panic!("no header `{name}` in the record"),
        }
    }
}

impl Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, values) in &self.0 {
            map.serialize_entry(name, values)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = IndexMap::<String, HeaderValues>::deserialize(deserializer)?;
        Ok(Self(
            map.into_iter()
                .map(|(name, values)| (common_name(Cow::Owned(name)), values))
                .collect(),
        ))
    }
}

/// One header's value or values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    One(String),
    Many(Vec<String>),
}

impl HeaderValues {
    /// Each value.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::Many(values) => values,
        };
        slice.iter().map(String::as_str)
    }
}

/// The request as forwarded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub body_bytes: u64,
}

/// The response as the client got it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// 0 when no response was sent (the client left first).
    pub status: u16,
    #[serde(default)]
    pub headers: Headers,
    /// The captured start of the body, as text, credentials masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The same, base64, when the body is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Why the body was not kept (a compressed body cannot be masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_omitted: Option<String>,
    /// The whole body's size, however much of it was kept.
    #[serde(default)]
    pub body_bytes: u64,
    /// Whether more was sent than kept.
    #[serde(default)]
    pub body_truncated: bool,
    /// False when the body stopped early (client gone, upstream broke off).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

/// Timings in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// From the request's arrival to the response body's end.
    pub total_ms: f64,
    /// From sending upstream to the upstream's response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
}

impl Record {
    /// Judges a finished exchange and builds its record with every secret
    /// masked. `keep_body` is false when bodies are not recorded.
    /// The tokens' JWTs are taken out of `finished` into the record.
    pub fn build(finished: &mut Finished, id: u64, keep_body: bool) -> Self {
        // Decoded already when a rule matched on them or an action rewrote
        // them; the record keeps their claims without copying.
        let claims = finished.exchange.credential.as_mut().map(|c| {
            let claims = |t: &mut Option<Token>| t.as_mut().and_then(Token::take_jwt);
            (claims(&mut c.before), claims(&mut c.after))
        });
        let finished = &*finished;
        let exchange = &finished.exchange;
        let (verdict, reason) = judge(finished);
        let masker = Masker::new(
            exchange.credential.as_ref(),
            exchange.request_headers.as_ref(),
        );
        let place = exchange.credential.as_ref().map(|c| &c.place);
        let credential = exchange.credential.as_ref().zip(claims).map(|(c, claims)| {
            Box::new(CredentialRecord {
                location: c.place.to_string(),
                before: c
                    .before
                    .as_ref()
                    .map(|t| token_record(t, claims.0, None, &masker)),
                after: c
                    .after
                    .as_ref()
                    .map(|t| token_record(t, claims.1, Some(c.resigned), &masker)),
            })
        });
        let response_headers = exchange.response_headers.as_ref();
        let mut response = ResponseRecord {
            status: exchange.status.map_or(0, |s| s.as_u16()),
            headers: response_headers
                .map(|h| redact::headers(h, place, &masker))
                .unwrap_or_default(),
            body_bytes: finished.end.bytes,
            complete: finished.end.is_complete,
            ..ResponseRecord::default()
        };
        if keep_body && !finished.body.is_empty() {
            keep(&mut response, finished, response_headers, &masker);
        }
        Self {
            id,
            ts: timestamp(exchange.started_at),
            client: exchange.client,
            method: method_name(&exchange.method),
            url: masked_url(exchange.url.to_string(), place, &masker),
            http_version: Cow::Borrowed(version_name(exchange.version)),
            upstream_http_version: exchange
                .upstream_version
                .map(|v| Cow::Borrowed(version_name(v))),
            rule: exchange.rule.as_ref().map(|(name, _)| name.clone()),
            action: exchange
                .rule
                .as_ref()
                .map(|(_, action)| Cow::Borrowed(*action)),
            fired: exchange.fired,
            scenario: exchange.scenario.clone(),
            credential,
            request: RequestRecord {
                headers: exchange
                    .request_headers
                    .as_ref()
                    .map(|h| redact::headers(h, place, &masker))
                    .unwrap_or_default(),
                body_bytes: exchange
                    .request_bytes
                    .as_ref()
                    .map_or(0, |n| n.load(std::sync::atomic::Ordering::Relaxed)),
            },
            response,
            error: exchange.error.or(exchange.body_error).map(str::to_string),
            timing: Timing {
                total_ms: millis(finished.elapsed),
                upstream_ms: exchange.upstream_elapsed.map(millis),
            },
            verdict,
            reason,
        }
    }
}

/// `url` with its secrets redacted and masked; itself, not a copy, when it
/// has none (nearly always).
fn masked_url(url: String, place: Option<&Place>, masker: &Masker) -> String {
    let changed = {
        let redacted = redact::url_at(&url, place);
        let masked = masker.text(&redacted);
        let is_unchanged =
            matches!(redacted, Cow::Borrowed(_)) && matches!(masked, Cow::Borrowed(_));
        (!is_unchanged).then(|| masked.into_owned())
    };
    changed.unwrap_or(url)
}

/// The verdict of SPEC section 6 and its reason.
fn judge(finished: &Finished) -> (Verdict, Cow<'static, str>) {
    let exchange = &finished.exchange;
    if let Some((verdict, reason)) = &exchange.verdict {
        return (*verdict, reason.clone());
    }
    let Some(expectation) = &exchange.expectation else {
        return (Verdict::Untouched, Cow::Borrowed("no expectation"));
    };
    if let Some(code) = exchange.error {
        return (
            Verdict::Error,
            Cow::Owned(format!("no response from the upstream ({code})")),
        );
    }
    let Some(status) = exchange.status else {
        return (
            Verdict::Error,
            Cow::Borrowed("no response: the client left first"),
        );
    };
    let empty = HeaderMap::new();
    let judged = verdict::judge(
        expectation,
        &verdict::Observed {
            status: status.as_u16(),
            headers: exchange.response_headers.as_ref().unwrap_or(&empty),
            body: &finished.body,
        },
    );
    (judged.verdict, Cow::Owned(judged.reason))
}

/// Puts the captured body into the record: masked, as text when it is UTF-8,
/// base64 otherwise; omitted when compressed (masking cannot see inside).
fn keep(
    response: &mut ResponseRecord,
    finished: &Finished,
    headers: Option<&HeaderMap>,
    masker: &Masker,
) {
    let encoding = headers
        .and_then(|h| h.get(http::header::CONTENT_ENCODING))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    if let Some(encoding) = encoding {
        response.body_omitted = Some(format!(
            "content-encoding {encoding}: a compressed body is not recorded, so no credential in it can leak"
        ));
        return;
    }
    let is_truncated = finished.end.bytes > finished.body.len() as u64;
    response.body_truncated = is_truncated;
    let masked = masker.bytes(&finished.body, is_truncated);
    match std::str::from_utf8(&masked) {
        Ok(text) => response.body = Some(text.to_string()),
        // Cut mid-character by the capture limit: still text.
        Err(err) if is_truncated && err.error_len().is_none() => {
            let text = std::str::from_utf8(&masked[..err.valid_up_to()]).unwrap_or_default();
            response.body = Some(text.to_string());
        }
        Err(_) => {
            response.body_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&masked));
        }
    }
}

fn token_record(
    token: &Token,
    jwt: Option<Jwt>,
    resigned: Option<bool>,
    masker: &Masker,
) -> TokenRecord {
    let claims = jwt.map(|jwt| jwt.claims);
    TokenRecord {
        fingerprint: masker.fingerprint(token).to_string(),
        kind: if claims.is_some() { "jwt" } else { "opaque" }.to_string(),
        claims,
        resigned,
    }
}

fn millis(duration: std::time::Duration) -> f64 {
    // Three decimals: microseconds, no float noise in the file.
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `HTTP/1.1`, `HTTP/2`.
pub fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// A request method's name, borrowed when it is a standard one.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    let name = method.as_str();
    match STANDARD.iter().find(|standard| **standard == name) {
        Some(standard) => Cow::Borrowed(standard),
        None => Cow::Owned(name.to_string()),
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-11-28T07:20:00.123Z`.
pub fn timestamp(at: std::time::SystemTime) -> String {
    let mut out = String::with_capacity(24);
    let _ = write_timestamp(&mut out, at, Precision::Millis);
    out
}

/// Digits after the second in `write_timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `.123Z`: the recording's `ts`.
    Millis,
    /// `.123456Z`: the log's timestamps, as tracing-subscriber writes them.
    Micros,
}

/// 10000-01-01T00:00:00Z in seconds since the epoch: humantime formats
/// the instants before it.
const YEAR_10000: u64 = 253_402_300_800;

/// Writes `at` in RFC 3339, UTC. The recorder and the log write one per
/// exchange each; humantime's formatter fills a buffer in a few hundred
/// instructions where `format!` of seven padded numbers took about 3,000.
/// A clock before 1970 or past 9999 takes the slow path, never a panic.
pub fn write_timestamp(
    out: &mut impl fmt::Write,
    at: std::time::SystemTime,
    precision: Precision,
) -> fmt::Result {
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH);
    if since_epoch.as_ref().is_ok_and(|d| d.as_secs() < YEAR_10000) {
        return match precision {
            Precision::Millis => write!(out, "{}", humantime::format_rfc3339_millis(at)),
            Precision::Micros => write!(out, "{}", humantime::format_rfc3339_micros(at)),
        };
    }
    let nanos = match since_epoch {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    write_timestamp_slowly(out, nanos, precision)
}

/// `write_timestamp` for any instant, nanoseconds from the epoch, through
/// the `time` crate; beyond its years ±9999, the nearest it can write.
fn write_timestamp_slowly(
    out: &mut impl fmt::Write,
    nanos: i128,
    precision: Precision,
) -> fmt::Result {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if nanos < 0 {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    });
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )?;
    match precision {
        Precision::Millis => write!(out, "{:03}Z", at.millisecond()),
        Precision::Micros => write!(out, "{:06}Z", at.microsecond()),
    }
}

/// The log line of SPEC section 9:
/// `GET https://api.example.com/v1/orders 401 12ms rule=expire-orders action=expire verdict=enforced`.
pub struct LogLine<'a>(pub &'a Record);

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.0;
        write!(
            f,
            "{} {} {} {}ms rule={} action={} verdict={}",
            record.method,
            record.url,
            record.response.status,
            // Whole milliseconds, as an integer: what a float's Display
            // printed for it, at a fraction of the cost.
            record.timing.total_ms.round() as u64,
            record.rule.as_deref().unwrap_or("-"),
            record.action.as_deref().unwrap_or("-"),
            record.verdict,
        )?;
        if let Some(code) = &record.error {
            write!(f, " error={code}")?;
        }
        if !record.response.complete {
            f.write_str(" body=incomplete")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn timestamps_are_written_as_the_time_crate_writes_them(
            secs in 0..YEAR_10000,
            subsec in 0u32..1_000_000_000,
        ) {
            let since = std::time::Duration::new(secs, subsec);
            let at = std::time::UNIX_EPOCH + since;
            let nanos = i128::try_from(since.as_nanos()).expect("fits");
            for precision in [Precision::Millis, Precision::Micros] {
                let (mut fast, mut slow) = (String::new(), String::new());
                write_timestamp(&mut fast, at, precision).expect("fast");
                write_timestamp_slowly(&mut slow, nanos, precision).expect("slow");
                proptest::prop_assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn a_standard_method_is_borrowed_and_any_other_kept_as_sent() {
        for name in [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ] {
            let method = http::Method::from_bytes(name.as_bytes()).expect("method");
            assert!(
                matches!(method_name(&method), Cow::Borrowed(n) if n == name),
                "{name}"
            );
        }
        let purge = http::Method::from_bytes(b"PURGE").expect("method");
        assert!(matches!(method_name(&purge), Cow::Owned(n) if n == "PURGE"));
    }

    #[test]
    fn timestamps_of_a_clock_far_off_are_written_not_a_panic() {
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_millis(1_500);
        assert_eq!(timestamp(before), "1969-12-31T23:59:58.500Z");
        let after = std::time::UNIX_EPOCH + std::time::Duration::from_secs(YEAR_10000 + 61);
        assert_eq!(timestamp(after), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_314_400_123)),
            "2025-11-28T07:20:00.123Z"
        );
    }

    #[test]
    fn the_log_line_gives_whole_milliseconds() {
        let line = |micros: u64| {
            let mut finished = Finished {
                exchange: super::super::Exchange::begin(
                    http::Method::GET,
                    "http://a.test/x".parse().expect("uri"),
                    "127.0.0.1:1".parse().expect("addr"),
                    Version::HTTP_11,
                ),
                end: super::super::BodyEnd {
                    bytes: 0,
                    is_complete: true,
                },
                elapsed: std::time::Duration::from_micros(micros),
                body: bytes::Bytes::new(),
            };
            LogLine(&Record::build(&mut finished, 1, false)).to_string()
        };
        assert!(line(12_400).starts_with("GET http://a.test/x 0 12ms rule=- action=- verdict="));
        assert!(line(12_500).contains(" 13ms "), "{}", line(12_500));
        assert!(line(200).contains(" 0ms "), "{}", line(200));
    }

    #[test]
    fn a_record_without_a_credential_stays_small_in_the_ring() {
        // The admin ring holds 10,000 records; most have no credential.
        assert!(
            std::mem::size_of::<Record>() <= 512,
            "Record is {} bytes",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn common_header_names_are_shared_and_others_copied() {
        assert!(
            COMMON_NAMES.windows(2).all(|w| w[0] < w[1]),
            "sorted and unique, for the binary search"
        );
        for name in COMMON_NAMES {
            assert!(matches!(common_name(Cow::Borrowed(name)), Cow::Borrowed(n) if n == name));
        }
        assert!(matches!(common_name(Cow::Borrowed("x-tenant")), Cow::Owned(n) if n == "x-tenant"));
        let mut headers = Headers::default();
        headers.push("content-type", HeaderValues::One("text/plain".into()));
        headers.push("x-tenant", HeaderValues::One("acme".into()));
        let json = serde_json::to_string(&headers).expect("serializes");
        assert_eq!(json, r#"{"content-type":"text/plain","x-tenant":"acme"}"#);
        let back: Headers = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, headers);
        assert!(matches!(back.0[0].0, Cow::Borrowed("content-type")));
    }
}
