//! Where a request goes, read from its request line: the `host:port` of a
//! CONNECT, and the scheme, host and port of an absolute-form URI. Pure
//! functions of the URI, fuzzed (fuzz/fuzz_targets/targets.rs).

use bytes::Bytes;
use http::Uri;
use http::uri::Authority;

use super::error::ProxyError;

/// A CONNECT target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTarget {
    /// The host, without brackets for IPv6 literals; never empty.
    pub host: Box<str>,
    pub port: u16,
    /// `host` (port 443) or `host:port`, as it goes into an `https://` URL.
    pub authority: Authority,
}

/// Reads a CONNECT request's target: `host:port`, port 443 when absent.
pub fn connect_target(uri: &Uri) -> Result<ConnectTarget, ProxyError> {
    let bad = || {
        ProxyError::BadRequest(format!(
            "CONNECT needs a target of the form host:port, got `{uri}`"
        ))
    };
    let authority = uri.authority().ok_or_else(bad)?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let port = authority.port_u16().unwrap_or(443);
    if port == 0 {
        return Err(bad());
    }
    let authority = if port == 443 {
        Authority::from_maybe_shared(Bytes::copy_from_slice(authority.host().as_bytes()))
            .map_err(|_| bad())?
    } else {
        authority.clone()
    };
    Ok(ConnectTarget {
        host: host.into(),
        port,
        authority,
    })
}

/// An absolute-form request's upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteTarget<'a> {
    /// `host` as in the URI (IPv6 literals keep their brackets).
    pub host: &'a str,
    /// The port, or the scheme's default.
    pub port: u16,
}

/// Reads an absolute-form URI's host and port. `None` when the URI is in
/// origin form (no authority); an error for a scheme other than http and
/// https.
pub fn absolute_target(uri: &Uri) -> Result<Option<AbsoluteTarget<'_>>, ProxyError> {
    let Some(authority) = uri.authority() else {
        return Ok(None);
    };
    let scheme = uri.scheme_str().unwrap_or("");
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(ProxyError::BadRequest(format!(
                "cannot proxy the scheme `{scheme}`; only http:// and https:// URLs are forwarded"
            )));
        }
    };
    Ok(Some(AbsoluteTarget {
        host: authority.host(),
        port: authority.port_u16().unwrap_or(default_port),
    }))
}
