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
    if !is_valid_authority(authority) {
        return Err(bad());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(443);
    if port == 0 {
        return Err(bad());
    }
    // A copy, not a slice of the request: the tunnel keeps it for the
    // connection's life, and a slice would keep hyper's whole 8 KiB read
    // buffer of the CONNECT with it.
    let kept = if port == 443 {
        authority.host()
    } else {
        authority.as_str()
    };
    let authority =
        Authority::from_maybe_shared(Bytes::copy_from_slice(kept.as_bytes())).map_err(|_| bad())?;
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
    if !is_valid_authority(authority) {
        return Err(ProxyError::BadRequest(format!(
            "`{authority}` is not a host name or IP address with an optional port (user info is not forwarded)"
        )));
    }
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

/// `host[:port]` with no user info, where the host is a DNS name, an IPv4
/// address or a whole bracketed IPv6 literal. The `http` crate's URI parser
/// is lenient: it lets `j[:1]:800` and `[z@tT%pTtp:t::!]:8` through as
/// authorities (both found by fuzzing, kept in fuzz/regressions/targets/).
fn is_valid_authority(authority: &Authority) -> bool {
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    let is_host = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    };
    // What follows the host is nothing or `:port` (digits only).
    let rest = &authority.as_str()[host.len()..];
    is_host
        && (rest.is_empty()
            || rest.strip_prefix(':').is_some_and(|digits| {
                !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && authority.port_u16().is_some()
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().expect("a URI")
    }

    #[test]
    fn connect_targets_take_names_ips_and_bracketed_ipv6_and_default_to_443() {
        let target = connect_target(&uri("example.com:8443")).expect("accepted");
        assert_eq!((&*target.host, target.port), ("example.com", 8443));
        let target = connect_target(&uri("[::1]:8443")).expect("accepted");
        assert_eq!((&*target.host, target.port), ("::1", 8443));
        assert_eq!(target.authority.as_str(), "[::1]:8443");
        let target = connect_target(&uri("example.com")).expect("accepted");
        assert_eq!(
            (target.port, target.authority.as_str()),
            (443, "example.com")
        );
    }

    #[test]
    fn stray_brackets_and_port_zero_are_refused() {
        for text in [
            "j[:1]:800",
            "http://j[:1]:800/ex",
            "example.com:0",
            "[zz]:80",
        ] {
            assert!(connect_target(&uri(text)).is_err(), "{text}");
        }
        assert!(absolute_target(&uri("http://j[:1]:800/ex")).is_err());
        assert!(absolute_target(&uri("http://user:pw@example.com/")).is_err());
        assert!(absolute_target(&uri("http://[::1]:8080/x")).is_ok());
        assert!(matches!(absolute_target(&uri("/origin-form")), Ok(None)));
        assert!(absolute_target(&uri("ftp://example.com/")).is_err());
    }
}
