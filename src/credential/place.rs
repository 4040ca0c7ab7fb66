//! Where a credential lives in a request: a header (by default
//! `Authorization`), a query parameter or a cookie; and, in `Authorization`,
//! the scheme versus the token (SPEC section 4). Reading and rewriting it
//! here is what every action builds on.

use std::fmt;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::Token;

/// Characters escaped in a query value we write: everything that would end
/// or change the parameter (RFC 3986 §3.4 plus `&`, `=`, `+`, `#`).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>');

/// A place a credential can live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A request header; in `Authorization` the token follows a scheme.
    Header(HeaderName),
    /// A query parameter, by name.
    Query(String),
    /// A cookie of the `Cookie` header, by name.
    Cookie(String),
}

impl Default for Place {
    fn default() -> Self {
        Self::Header(header::AUTHORIZATION)
    }
}

impl fmt::Display for Place {
    /// `header:authorization`, `query:api_key`, `cookie:session`: the
    /// recording's `credential.location`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Query(name) => write!(f, "query:{name}"),
            Self::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

/// A credential found in a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Found {
    /// The `Authorization` scheme as sent (`Bearer`, `bearer`, `Basic`).
    pub scheme: Option<String>,
    /// The token: what fingerprints hash and actions change.
    pub token: Token,
}

impl fmt::Debug for Found {
    // The token is a secret: Debug shows its fingerprint only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Found")
            .field("scheme", &self.scheme)
            .field("token", &self.token)
            .finish()
    }
}

impl Place {
    /// Whether this is the `Authorization` header, whose value is
    /// `scheme token`.
    pub fn has_scheme(&self) -> bool {
        matches!(self, Self::Header(name) if name == header::AUTHORIZATION)
    }

    /// The credential in `parts`, if there is one. An empty value counts as
    /// absent.
    pub fn find(&self, parts: &Parts) -> Option<Found> {
        match self {
            Self::Header(name) => {
                let value = parts.headers.get(name)?.to_str().ok()?.trim();
                if value.is_empty() {
                    return None;
                }
                if !self.has_scheme() {
                    return Some(Found {
                        scheme: None,
                        token: Token::new(value),
                    });
                }
                Some(match value.split_once(' ') {
                    Some((scheme, token)) => Found {
                        scheme: Some(scheme.to_string()),
                        token: Token::new(token.trim()),
                    },
                    None => Found {
                        scheme: None,
                        token: Token::new(value),
                    },
                })
            }
            Self::Query(name) => {
                let query = parts.uri.query()?;
                query_pairs(query)
                    .find(|(key, _)| decode(key) == *name)
                    .map(|(_, value)| Found {
                        scheme: None,
                        token: Token::new(decode(value)),
                    })
                    .filter(|found| !found.token.is_empty())
            }
            Self::Cookie(name) => cookies(parts)
                .find(|(key, _)| key == name)
                .map(|(_, value)| Found {
                    scheme: None,
                    token: Token::new(value),
                })
                .filter(|found| !found.token.is_empty()),
        }
    }

    /// Puts `token` in place of the credential, or adds it where there was
    /// none. In `Authorization` the request's scheme is kept, `Bearer` when
    /// there was none (SPEC section 4).
    pub fn set(&self, parts: &mut Parts, token: &str) -> Result<(), SetError> {
        match self {
            Self::Header(_) => {
                let value = if self.has_scheme() {
                    let scheme = self
                        .find(parts)
                        .and_then(|found| found.scheme)
                        .unwrap_or_else(|| "Bearer".to_string());
                    format!("{scheme} {token}")
                } else {
                    token.to_string()
                };
                self.set_raw(parts, &value)
            }
            Self::Query(name) => {
                let encoded = utf8_percent_encode(token, QUERY_VALUE).to_string();
                let key = utf8_percent_encode(name, QUERY_VALUE).to_string();
                rewrite_query(parts, name, Some(&format!("{key}={encoded}")))
            }
            Self::Cookie(name) => {
                if token.contains([';', ',', ' ', '"']) {
                    return Err(SetError::NotACookieValue);
                }
                let mut pairs: Vec<(String, String)> = cookies(parts)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                match pairs.iter_mut().find(|(k, _)| k == name) {
                    Some(pair) => pair.1 = token.to_string(),
                    None => pairs.push((name.clone(), token.to_string())),
                }
                write_cookies(parts, &pairs)
            }
        }
    }

    /// Removes the credential: the header, the query parameter or the
    /// cookie (and the `Cookie` header when it was the only one).
    pub fn remove(&self, parts: &mut Parts) -> Result<(), SetError> {
        match self {
            Self::Header(name) => {
                parts.headers.remove(name);
                Ok(())
            }
            Self::Query(name) => rewrite_query(parts, name, None),
            Self::Cookie(name) => {
                let pairs: Vec<(String, String)> = cookies(parts)
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                write_cookies(parts, &pairs)
            }
        }
    }

    /// Sets a header place to exactly `value` (no scheme handling): for the
    /// `corrupt` modes that break the header's shape itself.
    pub fn set_raw(&self, parts: &mut Parts, value: &str) -> Result<(), SetError> {
        let Self::Header(name) = self else {
            return Err(SetError::NotAHeader);
        };
        let value = HeaderValue::from_str(value).map_err(|_| SetError::NotAHeaderValue)?;
        parts.headers.insert(name.clone(), value);
        Ok(())
    }

    /// Adds a second header with `value` beside the first (`duplicate`).
    pub fn append_raw(&self, parts: &mut Parts, value: &str) -> Result<(), SetError> {
        let Self::Header(name) = self else {
            return Err(SetError::NotAHeader);
        };
        let value = HeaderValue::from_str(value).map_err(|_| SetError::NotAHeaderValue)?;
        parts.headers.append(name.clone(), value);
        Ok(())
    }
}

/// Why a credential could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("the new credential is not a valid header value")]
    NotAHeaderValue,
    #[error("the new credential cannot be a cookie value (it has `;`, `,`, a space or a quote)")]
    NotACookieValue,
    #[error("this change applies to a header credential only")]
    NotAHeader,
    #[error("the rewritten URL is not valid")]
    BadUri,
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn decode(s: &str) -> String {
    // `+` is a space in form-encoded queries (application/x-www-form-urlencoded).
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Replaces the parameter `name` with `replacement` (or drops it), keeping
/// every other parameter byte for byte; appends when it was not there.
fn rewrite_query(parts: &mut Parts, name: &str, replacement: Option<&str>) -> Result<(), SetError> {
    let query = parts.uri.query().unwrap_or("");
    let mut out: Vec<&str> = Vec::new();
    let mut replaced = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if decode(key) == name {
            if let Some(replacement) = replacement
                && !replaced
            {
                out.push(replacement);
                replaced = true;
            }
        } else {
            out.push(pair);
        }
    }
    if !replaced && let Some(replacement) = replacement {
        out.push(replacement);
    }
    let path = parts.uri.path();
    let path_and_query = if out.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", out.join("&"))
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(path_and_query.parse().map_err(|_| SetError::BadUri)?);
    parts.uri = http::Uri::from_parts(uri).map_err(|_| SetError::BadUri)?;
    Ok(())
}

/// The `name=value` pairs of every `Cookie` header (RFC 6265 §5.4).
fn cookies(parts: &Parts) -> impl Iterator<Item = (&str, &str)> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
}

fn write_cookies(parts: &mut Parts, pairs: &[(String, String)]) -> Result<(), SetError> {
    parts.headers.remove(header::COOKIE);
    if pairs.is_empty() {
        return Ok(());
    }
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let value = HeaderValue::from_str(&joined).map_err(|_| SetError::NotACookieValue)?;
    parts.headers.insert(header::COOKIE, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_authorization_token_is_separated_from_its_scheme() {
        let p = parts("/", &[("authorization", "Bearer abc.def")]);
        let found = Place::default().find(&p).expect("found");
        assert_eq!(found.scheme.as_deref(), Some("Bearer"));
        assert_eq!(found.token, "abc.def");
    }

    #[test]
    fn set_keeps_the_scheme_and_uses_bearer_when_there_was_none() {
        let mut p = parts("/", &[("authorization", "bearer old")]);
        Place::default().set(&mut p, "new").expect("set");
        assert_eq!(p.headers["authorization"], "bearer new");
        let mut p = parts("/", &[]);
        Place::default().set(&mut p, "new").expect("set");
        assert_eq!(p.headers["authorization"], "Bearer new");
    }

    #[test]
    fn another_header_holds_the_whole_value() {
        let place = Place::Header(HeaderName::from_static("x-api-key"));
        let mut p = parts("/", &[("x-api-key", "Key 123")]);
        assert_eq!(place.find(&p).expect("found").token, "Key 123");
        place.set(&mut p, "other").expect("set");
        assert_eq!(p.headers["x-api-key"], "other");
        place.remove(&mut p).expect("remove");
        assert!(place.find(&p).is_none());
    }

    #[test]
    fn a_query_credential_is_replaced_and_removed_leaving_other_parameters_alone() {
        let place = Place::Query("api_key".into());
        let mut p = parts("/v1/orders?page=2&api_key=s%2Fecret&sort=a+b", &[]);
        assert_eq!(place.find(&p).expect("found").token, "s/ecret");
        place.set(&mut p, "new&key").expect("set");
        assert_eq!(
            p.uri.to_string(),
            "/v1/orders?page=2&api_key=new%26key&sort=a+b"
        );
        place.remove(&mut p).expect("remove");
        assert_eq!(p.uri.to_string(), "/v1/orders?page=2&sort=a+b");
        place.set(&mut p, "added").expect("inject");
        assert_eq!(
            p.uri.to_string(),
            "/v1/orders?page=2&sort=a+b&api_key=added"
        );
    }

    #[test]
    fn a_cookie_credential_is_replaced_and_removed_leaving_other_cookies_alone() {
        let place = Place::Cookie("session".into());
        let mut p = parts("/", &[("cookie", "theme=dark; session=abc; lang=en")]);
        assert_eq!(place.find(&p).expect("found").token, "abc");
        place.set(&mut p, "xyz").expect("set");
        assert_eq!(p.headers["cookie"], "theme=dark; session=xyz; lang=en");
        place.remove(&mut p).expect("remove");
        assert_eq!(p.headers["cookie"], "theme=dark; lang=en");
        assert!(place.find(&p).is_none());
    }

    #[test]
    fn locations_read_as_the_recording_writes_them() {
        assert_eq!(Place::default().to_string(), "header:authorization");
        assert_eq!(Place::Query("api_key".into()).to_string(), "query:api_key");
        assert_eq!(
            Place::Cookie("session".into()).to_string(),
            "cookie:session"
        );
    }

    #[test]
    fn a_found_credential_never_shows_its_token_in_debug() {
        let p = parts("/", &[("authorization", "Bearer super-secret")]);
        let found = Place::default().find(&p).expect("found");
        assert!(!format!("{found:?}").contains("super-secret"));
    }
}
