//! Keeping secrets out of what authfault writes. URLs lose the values of
//! query parameters whose names say they carry a credential; recorded
//! headers lose the values of credential headers; and the exchange's own
//! tokens, before and after the action, are masked wherever else they
//! appear (`Masker`): an API that echoes a token must not leak it.

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, Uri, header};
use memchr::memmem;

use super::Credential;
use super::entry::{HeaderValues, Headers};
use crate::credential::{Fingerprint, Place, Token};

/// Query parameter names (lowercase substrings) whose values are secrets.
const SECRET_PARAMS: [&str; 8] = [
    "token", "key", "secret", "password", "passwd", "auth", "sig", "session",
];

/// What a redacted value is replaced by.
pub const REDACTED: &str = "<redacted>";

/// `url` with the values of secret-looking query parameters replaced by
/// `<redacted>`; borrowed unchanged when there is nothing to hide.
pub fn url(url: &str) -> Cow<'_, str> {
    url_at(url, None)
}

/// `url` as `url()` redacts it, and also the query parameter the rule's
/// credential lives in, whatever its name.
pub fn url_at<'a>(url: &'a str, place: Option<&Place>) -> Cow<'a, str> {
    let param = match place {
        Some(Place::Query(name)) => Some(name.as_str()),
        _ => None,
    };
    let is_secret_name = |name: &str| param == Some(name) || is_secret_name(name);
    let is_secret_pair = |pair: &str| is_secret_pair_named(pair, is_secret_name);
    let Some((base, query)) = url.split_once('?') else {
        return Cow::Borrowed(url);
    };
    if !query.split('&').any(is_secret_pair) {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

/// Displays a URI as `url` would redact it, without allocating when there
/// is nothing to hide.
pub struct Url<'a>(pub &'a Uri);

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        let has_secret = uri
            .query()
            .is_some_and(|q| q.split('&').any(is_secret_pair));
        if has_secret {
            f.write_str(&url(&uri.to_string()))
        } else {
            write!(f, "{uri}")
        }
    }
}

fn is_secret_pair(pair: &str) -> bool {
    is_secret_pair_named(pair, is_secret_name)
}

/// Whether `name=value` has a value and a name `is_secret` picks.
fn is_secret_pair_named(pair: &str, is_secret: impl Fn(&str) -> bool) -> bool {
    pair.split_once('=')
        .is_some_and(|(name, value)| !value.is_empty() && is_secret(name))
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "code" || SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// `<redacted sha256:0b7d55e1c2a9>`: a secret's stand-in, which still lets a
/// reader follow one token through a run.
pub fn stand_in(secret: &str) -> String {
    stand_in_for(Fingerprint::of(secret))
}

fn stand_in_for(fingerprint: Fingerprint) -> String {
    format!("<redacted {fingerprint}>")
}

/// Recorded headers: credential headers (`authorization`,
/// `proxy-authorization`, `cookie`, `set-cookie` and the rule's own header)
/// become stand-ins; other values are masked.
pub fn headers(map: &HeaderMap, place: Option<&Place>, masker: &Masker) -> Headers {
    let mut out = Headers::with_capacity(map.keys_len());
    for name in map.keys() {
        let is_credential = matches!(
            *name,
            header::AUTHORIZATION
                | header::PROXY_AUTHORIZATION
                | header::COOKIE
                | header::SET_COOKIE
        ) || matches!(place, Some(Place::Header(h)) if h == name);
        let is_schemed = matches!(*name, header::AUTHORIZATION | header::PROXY_AUTHORIZATION);
        let record = |value: &http::HeaderValue| -> String {
            let text = match value.to_str() {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(value.as_bytes()),
            };
            if !is_credential {
                return masker.text(&text).into_owned();
            }
            // `Bearer abc`: the fingerprint is the token's, as in
            // `credential`; the scheme stays readable.
            match text.split_once(' ') {
                Some((scheme, token)) if is_schemed && !token.trim().is_empty() => {
                    format!("{scheme} {}", masker.stand_in(token.trim()))
                }
                _ => masker.stand_in(&text),
            }
        };
        let mut values = map.get_all(name).iter();
        let first = values.next().map(record).unwrap_or_default();
        let values = match values.next() {
            None => HeaderValues::One(first),
            Some(second) => {
                let mut all = vec![first, record(second)];
                all.extend(values.map(record));
                HeaderValues::Many(all)
            }
        };
        out.push(name.as_str(), values);
    }
    out
}

/// The exchange's tokens and their stand-ins, to mask them in text and
/// bodies.
pub struct Masker {
    secrets: Vec<Secret>,
    /// Each token once, with its fingerprint: the record shows the same
    /// tokens again (credential, `Authorization`), and hashing each anew
    /// cost the recorder a SHA-256 per appearance.
    known: Vec<(String, Fingerprint)>,
}

/// A token in one form and its stand-in.
struct Secret {
    text: String,
    replacement: String,
}

/// Bodies at least this long get a prepared searcher per token; shorter
/// text (headers, small bodies) is scanned for the token's first byte, which
/// costs less than preparing one (that preparation was 3% of the recorder's
/// time per exchange).
const FINDER_FROM: usize = 4096;

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8], finder: Option<&memmem::Finder<'_>>) -> Option<usize> {
    if let Some(finder) = finder {
        return finder.find(hay);
    }
    let (&first, rest) = needle.split_first()?;
    memchr::memchr_iter(first, hay).find(|&at| hay[at + 1..].starts_with(rest))
}

/// Tokens shorter than this are not searched for: masking every `a` in a
/// body would hide nothing and ruin the record.
const MIN_SECRET: usize = 3;

/// A truncated capture that ends with this much of a token loses it.
const MIN_PREFIX: usize = 4;

impl Masker {
    /// A masker for the credentials of an exchange: the rule's credential
    /// before and after, and whatever the forwarded request carried in
    /// `Authorization`, `Proxy-Authorization` and cookies, rule or none.
    pub fn new(credential: Option<&Credential>, request: Option<&HeaderMap>) -> Self {
        let mut tokens: Vec<&str> = Vec::new();
        if let Some(credential) = credential {
            tokens.extend(
                [&credential.before, &credential.after]
                    .into_iter()
                    .flatten()
                    .map(Token::as_str),
            );
        }
        if let Some(request) = request {
            for name in [header::AUTHORIZATION, header::PROXY_AUTHORIZATION] {
                for value in request.get_all(&name) {
                    let Ok(value) = value.to_str() else { continue };
                    tokens.push(value.split_once(' ').map_or(value, |(_, token)| token));
                }
            }
            for value in request.get_all(header::COOKIE) {
                let Ok(value) = value.to_str() else { continue };
                tokens.extend(
                    value
                        .split(';')
                        .filter_map(|pair| pair.split_once('=').map(|(_, v)| v)),
                );
            }
        }
        let mut secrets: Vec<Secret> = Vec::new();
        let mut known: Vec<(String, Fingerprint)> = Vec::new();
        for token in tokens {
            let token = token.trim();
            // The forwarded `Authorization` usually holds `after` again.
            if token.len() < MIN_SECRET || known.iter().any(|(t, _)| t == token) {
                continue;
            }
            let fingerprint = Fingerprint::of(token);
            let replacement = stand_in_for(fingerprint);
            let encoded: String =
                percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            for text in [token.to_string(), encoded] {
                if !secrets.iter().any(|s| s.text == text) {
                    let replacement = replacement.clone();
                    secrets.push(Secret { text, replacement });
                }
            }
            known.push((token.to_string(), fingerprint));
        }
        // Longest first: a token that contains another is replaced whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.text.len()));
        Self { secrets, known }
    }

    /// The fingerprint of `token`, hashed once per exchange.
    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        self.known
            .iter()
            .find(|(t, _)| t == token)
            .map_or_else(|| Fingerprint::of(token), |(_, f)| *f)
    }

    /// `stand_in(token)`, from the fingerprint already taken.
    pub fn stand_in(&self, token: &str) -> String {
        stand_in_for(self.fingerprint(token))
    }

    /// `text` with every token replaced by its stand-in.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes(), false) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Tokens and stand-ins are whole UTF-8 strings, so replacing one
            // inside UTF-8 text leaves UTF-8.
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// `body` with every token replaced by its stand-in. When the body was
    /// cut (`is_truncated`), a token's beginning at the very end is cut too.
    pub fn bytes<'a>(&self, body: &'a [u8], is_truncated: bool) -> Cow<'a, [u8]> {
        let mut out = Cow::Borrowed(body);
        for secret in &self.secrets {
            let needle = secret.text.as_bytes();
            let finder = (out.len() >= FINDER_FROM).then(|| memmem::Finder::new(needle));
            let mut next = find(&out, needle, finder.as_ref());
            if next.is_none() {
                continue;
            }
            let mut replaced = Vec::with_capacity(out.len());
            let mut rest: &[u8] = &out;
            while let Some(at) = next {
                replaced.extend_from_slice(&rest[..at]);
                replaced.extend_from_slice(secret.replacement.as_bytes());
                rest = &rest[at + needle.len()..];
                next = find(rest, needle, finder.as_ref());
            }
            replaced.extend_from_slice(rest);
            out = Cow::Owned(replaced);
        }
        if is_truncated {
            let cut = self
                .secrets
                .iter()
                .filter_map(|secret| partial_tail(&out, secret.text.as_bytes()))
                .max();
            if let Some(cut) = cut {
                let mut owned = out.into_owned();
                owned.truncate(owned.len() - cut);
                owned.extend_from_slice(b"<redacted>");
                out = Cow::Owned(owned);
            }
        }
        out
    }
}

/// The length of the longest proper prefix of `secret` (at least
/// `MIN_PREFIX`) that `body` ends with.
fn partial_tail(body: &[u8], secret: &[u8]) -> Option<usize> {
    (MIN_PREFIX.min(secret.len())..secret.len())
        .rev()
        .find(|&n| body.ends_with(&secret[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(before: &str, after: Option<&str>) -> Masker {
        masker_with(before, after, None)
    }

    /// A masker for a rule's credential and, when given, the forwarded
    /// request's headers.
    fn masker_with(before: &str, after: Option<&str>, request: Option<&HeaderMap>) -> Masker {
        Masker::new(
            Some(&Credential {
                place: Place::default(),
                before: Some(Token::new(before)),
                after: after.map(Token::new),
                resigned: false,
            }),
            request,
        )
    }

    /// A header map, in order; a name given twice has both values.
    fn request_with(headers: &[(&'static str, &str)]) -> HeaderMap {
        let mut request = HeaderMap::new();
        for (name, value) in headers {
            request.append(*name, value.parse().expect("value"));
        }
        request
    }

    #[test]
    fn without_a_rule_the_requests_own_credentials_are_masked() {
        let request = request_with(&[
            ("authorization", "Bearer bearer-secret-1"),
            ("cookie", "theme=dark; session=cookie-secret-2"),
        ]);
        let m = Masker::new(None, Some(&request));
        let body = b"bearer-secret-1 and cookie-secret-2 and dark";
        let masked = String::from_utf8(m.bytes(body, false).into_owned()).expect("utf8");
        assert_eq!(
            masked,
            format!(
                "{} and {} and {}",
                stand_in("bearer-secret-1"),
                stand_in("cookie-secret-2"),
                stand_in("dark")
            )
        );
    }

    #[test]
    fn tokens_are_masked_in_text_and_bodies_with_their_fingerprints() {
        let m = masker("tok-before-123", Some("tok-after-456"));
        let body = br#"{"you_sent":"tok-after-456","was":"tok-before-123"}"#;
        let masked = m.bytes(body, false);
        let text = String::from_utf8(masked.into_owned()).expect("utf8");
        assert!(!text.contains("tok-after-456") && !text.contains("tok-before-123"));
        assert!(text.contains(&stand_in("tok-after-456")), "{text}");
        assert_eq!(
            m.text("x tok-before-123 y"),
            format!("x {} y", stand_in("tok-before-123"))
        );
        assert!(matches!(m.text("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_token_seen_twice_is_hashed_once_and_stands_in_the_same_everywhere() {
        // `after` again in the forwarded Authorization, as after an action.
        let request = request_with(&[("authorization", "Bearer tok-after-456")]);
        let m = masker_with("tok-before-123", Some("tok-after-456"), Some(&request));
        assert_eq!(m.known.len(), 2, "each token once");
        for token in ["tok-before-123", "tok-after-456", "never-seen-789"] {
            assert_eq!(m.fingerprint(token), Fingerprint::of(token));
            assert_eq!(m.stand_in(token), stand_in(token));
        }
        let recorded = headers(&request, Some(&Place::default()), &m);
        assert_eq!(
            recorded["authorization"],
            HeaderValues::One(format!("Bearer {}", stand_in("tok-after-456")))
        );
    }

    #[test]
    fn a_token_cut_by_the_capture_limit_loses_its_start_too() {
        let m = masker("abcdefghijklmnop", None);
        let masked = m.bytes(b"{\"echo\":\"abcdefgh", true);
        assert_eq!(&*masked, b"{\"echo\":\"<redacted>");
        // A complete body ending the same way is not cut: it is not a token.
        let whole = m.bytes(b"abcd", false);
        assert_eq!(&*whole, b"abcd");
    }

    #[test]
    fn credential_headers_become_stand_ins_and_others_are_masked() {
        let m = masker("s3cr3t-token", None);
        let map = request_with(&[
            ("authorization", "Bearer s3cr3t-token"),
            ("x-api-key", "k-123456"),
            ("x-echo", "got s3cr3t-token"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let place = Place::Header(http::HeaderName::from_static("x-api-key"));
        let out = headers(&map, Some(&place), &m);
        assert_eq!(
            out["authorization"],
            HeaderValues::One(format!("Bearer {}", stand_in("s3cr3t-token")))
        );
        assert_eq!(out["x-api-key"], HeaderValues::One(stand_in("k-123456")));
        assert_eq!(
            out["x-echo"],
            HeaderValues::One(format!("got {}", stand_in("s3cr3t-token")))
        );
        assert_eq!(
            out["set-cookie"],
            HeaderValues::Many(vec![stand_in("a=1"), stand_in("b=2")])
        );
    }

    #[test]
    fn the_rules_query_parameter_is_redacted_whatever_its_name() {
        let place = Place::Query("k".to_string());
        assert_eq!(
            url_at("https://a.test/x?k=v1&q=2", Some(&place)),
            "https://a.test/x?k=<redacted>&q=2"
        );
    }

    #[test]
    fn secret_query_values_are_redacted_and_others_kept() {
        assert_eq!(
            url("https://a.test/v1?page=2&api_key=s3cr3t&access_token=abc"),
            "https://a.test/v1?page=2&api_key=<redacted>&access_token=<redacted>"
        );
    }

    #[test]
    fn a_displayed_uri_is_redacted_like_a_string() {
        let uri: Uri = "http://a.test/x?token=abc&q=1".parse().expect("uri");
        assert_eq!(
            Url(&uri).to_string(),
            "http://a.test/x?token=<redacted>&q=1"
        );
        let plain: Uri = "http://a.test/x?q=1".parse().expect("uri");
        assert_eq!(Url(&plain).to_string(), "http://a.test/x?q=1");
    }

    #[test]
    fn a_url_without_secrets_is_borrowed_unchanged() {
        let u = "https://a.test/v1/orders?page=2";
        assert!(matches!(url(u), Cow::Borrowed(s) if s == u));
    }
}
