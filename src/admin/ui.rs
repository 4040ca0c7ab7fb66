//! The web UI (`GET /`): one page and its script and style, embedded in the
//! binary. They hold no data, so they are served without the admin token;
//! the page asks for the token and sends it with each API call.

use http::{HeaderValue, StatusCode, header};

use super::Answer;
use super::routes::text;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");
const ICON: &str = include_str!("ui/icon.svg");

/// Paths the UI serves, answered before the token is checked.
pub(super) fn is_asset(path: &str) -> bool {
    matches!(
        path,
        "/" | "/ui/app.js" | "/ui/style.css" | "/ui/icon.svg" | "/favicon.ico"
    )
}

/// The asset at `path` (one `is_asset` accepts).
pub(super) fn asset(path: &str) -> Answer {
    let (content_type, body) = match path {
        "/ui/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/ui/style.css" => ("text/css; charset=utf-8", STYLE),
        "/ui/icon.svg" | "/favicon.ico" => ("image/svg+xml", ICON),
        _ => ("text/html; charset=utf-8", INDEX),
    };
    let mut res = text(StatusCode::OK, content_type, body.to_string());
    let headers = res.headers_mut();
    // Only the page's own script and style run: what the traffic carries
    // (URLs, headers, bodies) is set as text and could not run anyway.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
