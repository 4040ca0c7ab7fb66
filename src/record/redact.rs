//! Keeping secrets out of what authfault writes. URLs lose the values of
//! query parameters whose names say they carry a credential.

use std::borrow::Cow;
use std::fmt;

use http::Uri;

/// Query parameter names (lowercase substrings) whose values are secrets.
const SECRET_PARAMS: [&str; 8] = [
    "token", "key", "secret", "password", "passwd", "auth", "sig", "session",
];

/// What a redacted value is replaced by.
pub const REDACTED: &str = "<redacted>";

/// `url` with the values of secret-looking query parameters replaced by
/// `<redacted>`; borrowed unchanged when there is nothing to hide.
pub fn url(url: &str) -> Cow<'_, str> {
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
    pair.split_once('=')
        .is_some_and(|(name, value)| !value.is_empty() && is_secret_name(name))
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "code" || SECRET_PARAMS.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

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
