//! The errors the proxy answers itself (SPEC section 9): JSON bodies
//! `{"error": CODE, "detail": "…"}` with the code also in `x-authfault-error`.
//! The status and code of each live in one `match`.

use std::error::Error as StdError;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};

use super::body::Body;

/// Header that carries the error code of an answer the proxy made itself.
pub const ERROR_HEADER: &str = "x-authfault-error";

/// A failure that becomes an answer to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to {authority}: {reason}")]
    UpstreamConnect { authority: String, reason: String },
    #[error("TLS with {authority} failed: {reason}")]
    UpstreamTls { authority: String, reason: String },
    #[error("{authority} sent no response headers within {}s; raise --upstream-timeout if it is just slow", .timeout.as_secs_f64())]
    UpstreamTimeout {
        authority: String,
        timeout: Duration,
    },
    #[error("cannot connect to {authority} within {}s; is it reachable? raise --connect-timeout if it is just slow", .timeout.as_secs_f64())]
    ConnectTimeout {
        authority: String,
        timeout: Duration,
    },
    #[error("the exchange with {authority} failed: {reason}")]
    UpstreamProtocol { authority: String, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("this proxy requires Proxy-Authorization: Basic credentials")]
    ProxyAuthRequired,
    #[error("the request's headers are {size} bytes, over the {limit}-byte limit")]
    HeadersTooLarge { size: usize, limit: usize },
    #[error(
        "the request is addressed to authfault itself; send it to an upstream through the proxy instead"
    )]
    LoopDetected,
    #[error(
        "authfault is serving its limit of {limit} client connections (--max-connections); retry later, or raise the limit"
    )]
    TooManyConnections { limit: usize },
    #[error("{0}; fix the x-authfault-scenario header")]
    UnknownScenario(String),
    #[error("{0}; fix the x-authfault-rule header")]
    UnknownRule(String),
}

impl ProxyError {
    /// The status and the `error` code of the answer, as SPEC section 9
    /// lists them. `upstream_protocol` (502: the upstream broke the
    /// exchange after connecting) is an extension of the list.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UpstreamConnect { .. } => (StatusCode::BAD_GATEWAY, "upstream_connect"),
            Self::UpstreamTls { .. } => (StatusCode::BAD_GATEWAY, "upstream_tls"),
            Self::UpstreamTimeout { .. } | Self::ConnectTimeout { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
            }
            Self::UpstreamProtocol { .. } => (StatusCode::BAD_GATEWAY, "upstream_protocol"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::ProxyAuthRequired => (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "proxy_auth_required",
            ),
            Self::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::LoopDetected => (StatusCode::LOOP_DETECTED, "loop_detected"),
            Self::TooManyConnections { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_connections")
            }
            Self::UnknownScenario(_) => (StatusCode::BAD_REQUEST, "unknown_scenario"),
            Self::UnknownRule(_) => (StatusCode::BAD_REQUEST, "unknown_rule"),
        }
    }

    /// The JSON answer for the client.
    pub fn to_response(&self) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": code, "detail": self.to_string() });
        let mut res = Response::new(Body::full(body.to_string()));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, HeaderValue::from_static(code));
        if matches!(self, Self::TooManyConnections { .. }) {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::ProxyAuthRequired) {
            headers.insert(
                http::header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"authfault\""),
            );
        }
        res
    }

    /// Classifies a failure of the upstream client.
    pub fn from_upstream(
        authority: &str,
        err: &hyper_util::client::legacy::Error,
        connect_timeout: Duration,
    ) -> Self {
        let authority = authority.to_string();
        if err.is_connect() && has_timed_out(err) {
            return Self::ConnectTimeout {
                authority,
                timeout: connect_timeout,
            };
        }
        if let Some(tls) = find_rustls_error(err) {
            return Self::UpstreamTls {
                authority,
                reason: describe_tls(tls),
            };
        }
        let reason = innermost(err);
        if err.is_connect() {
            Self::UpstreamConnect { authority, reason }
        } else {
            Self::UpstreamProtocol { authority, reason }
        }
    }
}

/// Whether an `io::Error` of kind `TimedOut` is in the chain (the
/// connector's connect timeout).
fn has_timed_out(err: &(dyn StdError + 'static)) -> bool {
    std::iter::successors(Some(err), |&e| e.source()).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Finds a rustls error anywhere in a chain, also inside `io::Error`s, whose
/// `source()` skips the error they wrap.
pub(crate) fn find_rustls_error<'a>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// The message of the deepest error of a chain: "Connection refused", not
/// "client error (Connect)".
pub(crate) fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Says what went wrong with the upstream's certificate in the words a user
/// searches for, and what to do about it.
pub(crate) fn describe_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    const FIX: &str =
        "pass its CA with --upstream-ca PEM, or --insecure-upstream to skip verification";
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => {
                format!("unknown issuer: its certificate is not signed by a trusted root; {FIX}")
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("name mismatch: its certificate is not valid for this host; {FIX}")
            }
            C::Expired | C::ExpiredContext { .. } => {
                format!("expired: its certificate is past its validity; {FIX}")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("not yet valid: its certificate's validity has not begun; {FIX}")
            }
            other => format!("invalid certificate ({other:?}); {FIX}"),
        },
        other => other.to_string(),
    }
}
