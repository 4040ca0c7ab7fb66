//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so
//! they stop at the proxy, in both directions.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that never cross the proxy, besides those `Connection` names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Removes the hop-by-hop headers. With `is_upgrade`, `Connection: upgrade`
/// and `Upgrade` stay: the upstream must see the WebSocket handshake.
/// `TE: trailers` stays too: it says the client accepts trailers, and gRPC
/// servers refuse requests without it (RFC 9113 §8.2.2 allows it in HTTP/2).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, is_upgrade: bool) {
    // Most messages carry none of them: one pass over the names present
    // instead of a hashed lookup for each of the eight (about 2,000
    // instructions an exchange, request and response, in callgrind).
    if !headers
        .keys()
        .any(|name| name == header::TE || HOP_BY_HOP.contains(name))
    {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        remove_connection_options(headers, is_upgrade);
    }
    let upgrade = if is_upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    if let Some(te) = headers.get(header::TE) {
        if te.as_bytes().eq_ignore_ascii_case(b"trailers") {
            return;
        }
        headers.remove(header::TE);
    }
}

/// Whether a request asks to switch protocols (a WebSocket handshake): an
/// `Upgrade` header and `upgrade` among the `Connection` options.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn remove_connection_options(headers: &mut HeaderMap, is_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| !(is_upgrade && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("authorization", "Bearer t"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut headers, false);
        let mut names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "authorization"]);
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed_and_the_rest_kept_as_they_were() {
        let end_to_end = [
            ("authorization", "Bearer t"),
            ("accept", "*/*"),
            ("x-multi", "1"),
            ("x-multi", "2"),
        ];
        let mut untouched = map(&end_to_end);
        remove_hop_by_hop(&mut untouched, false);
        assert_eq!(untouched, map(&end_to_end));
        for hop in [
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ] {
            let mut headers = map(&[end_to_end[0], hop, end_to_end[1]]);
            remove_hop_by_hop(&mut headers, false);
            assert_eq!(headers, map(&end_to_end[..2]), "{}", hop.0);
        }
    }

    #[test]
    fn te_trailers_survives_for_grpc() {
        let mut headers = map(&[("te", "trailers")]);
        remove_hop_by_hop(&mut headers, false);
        assert_eq!(
            headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
    }

    #[test]
    fn an_upgrade_keeps_its_handshake_headers() {
        let mut headers = map(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "x"),
        ]);
        assert!(is_upgrade(&headers));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(
            headers.get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            headers.get("connection").map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
        assert!(headers.contains_key("sec-websocket-key"));
    }
}
