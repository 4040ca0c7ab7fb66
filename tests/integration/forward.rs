//! Forwarding: bodies both ways over every protocol pairing, absolute-form
//! http and https, chunked uploads, trailers, WebSockets, hop-by-hop headers.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;

use crate::support::*;

const SIZE: usize = 4 * 1024 * 1024 + 123;

/// Uploads and downloads several MiB through CONNECT with the client and the
/// upstream each speaking HTTP/1.1 or HTTP/2, and checks every byte.
async fn round_trip(client_alpn: Alpn, upstream_alpn: Alpn) {
    let upstream = Upstream::https(upstream_alpn).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let client = proxy.client(client_alpn);

    let upload = pattern(SIZE);
    let res = client
        .post(upstream.url("/echo"))
        .body(upload.clone())
        .send()
        .await
        .expect("POST through the proxy");
    assert_eq!(res.status(), 200);
    let client_version = res.version();
    let echo: serde_json::Value = res.json().await.expect("json");
    assert_eq!(echo["sha256"], sha256_hex(&upload), "upload arrived intact");
    assert_eq!(echo["bytes"], SIZE);
    let expected_upstream = if upstream_alpn == Alpn::H2 {
        "HTTP/2.0"
    } else {
        "HTTP/1.1"
    };
    assert_eq!(echo["version"], expected_upstream, "upstream protocol");
    let expected_client = if client_alpn == Alpn::H1 {
        http::Version::HTTP_11
    } else {
        http::Version::HTTP_2
    };
    assert_eq!(client_version, expected_client, "client protocol");

    // The authority travels once: `Host` over HTTP/1.1, `:authority` alone
    // over HTTP/2 (nginx rejects a `Host` beside it as a duplicate).
    let seen: serde_json::Value = client
        .get(upstream.url("/headers"))
        .send()
        .await
        .expect("GET /headers")
        .json()
        .await
        .expect("json");
    if upstream_alpn == Alpn::H2 {
        assert!(seen.get("host").is_none(), "Host beside :authority: {seen}");
    } else {
        assert_eq!(seen["host"], format!("localhost:{}", upstream.port()));
    }

    let res = client
        .get(upstream.url(&format!("/bytes/{SIZE}")))
        .send()
        .await
        .expect("GET through the proxy");
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.expect("body");
    assert_eq!(body.len(), SIZE);
    assert_eq!(
        sha256_hex(&body),
        sha256_hex(&pattern(SIZE)),
        "download arrived intact"
    );
}

#[tokio::test]
async fn bodies_cross_intact_from_an_http1_client_to_an_http1_upstream() {
    round_trip(Alpn::H1, Alpn::H1).await;
}

#[tokio::test]
async fn bodies_cross_intact_from_an_http1_client_to_an_http2_upstream() {
    round_trip(Alpn::H1, Alpn::H2).await;
}

#[tokio::test]
async fn bodies_cross_intact_from_an_http2_client_to_an_http1_upstream() {
    round_trip(Alpn::Both, Alpn::H1).await;
}

#[tokio::test]
async fn bodies_cross_intact_from_an_http2_client_to_an_http2_upstream() {
    round_trip(Alpn::Both, Alpn::H2).await;
}

#[tokio::test]
async fn absolute_form_http_is_forwarded_with_its_body() {
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start(&[]).await;
    let upload = pattern(SIZE);
    let res = proxy
        .client(Alpn::H1)
        .put(upstream.url("/echo"))
        .body(upload.clone())
        .send()
        .await
        .expect("PUT through the proxy");
    assert_eq!(res.status(), 200);
    let echo: serde_json::Value = res.json().await.expect("json");
    assert_eq!(echo["sha256"], sha256_hex(&upload));
}

#[tokio::test]
async fn absolute_form_https_over_a_plain_connection_is_forwarded_over_tls() {
    let upstream = Upstream::https(Alpn::Both).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let url = upstream.url("/headers");
    let res = raw_exchange(
        proxy.addr,
        &format!(
            "GET {url} HTTP/1.1\r\nHost: localhost:{}\r\nx-probe: yes\r\nConnection: close\r\n\r\n",
            upstream.port()
        ),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("\"x-probe\":\"yes\""), "{res}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_chunked_request_body_arrives_whole() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..64)
        .map(|i| Ok(Bytes::from(vec![i as u8; 10_000])))
        .collect();
    let expected: Vec<u8> = (0..64).flat_map(|i| vec![i as u8; 10_000]).collect();
    let res = proxy
        .client(Alpn::H1)
        .post(upstream.url("/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("chunked POST");
    let echo: serde_json::Value = res.json().await.expect("json");
    assert_eq!(echo["sha256"], sha256_hex(&expected));
    assert_eq!(echo["bytes"], expected.len());
}

#[tokio::test]
async fn trailers_cross_the_proxy_over_http2() {
    let upstream = Upstream::https(Alpn::H2).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("localhost:{}", upstream.port());
    let tls = tls_tunnel(proxy.addr, &target, "localhost", &proxy.tls(Alpn::H2)).await;
    let req = Request::get(format!("https://{target}/trailers"))
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (parts, body, trailers) = h2_request(tls, req).await;
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], b"hello trailers");
    let trailers = trailers.expect("trailers arrived");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.as_bytes()),
        Some(&b"abc123"[..])
    );
    let seen = upstream.last_headers();
    assert_eq!(
        seen.get("te").map(|v| v.as_bytes()),
        Some(&b"trailers"[..]),
        "te: trailers forwarded"
    );
}

#[tokio::test]
async fn a_websocket_echoes_through_an_intercepted_tunnel() {
    use tokio_tungstenite::tungstenite::Message;
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("localhost:{}", upstream.port());
    let tls = tls_tunnel(proxy.addr, &target, "localhost", &proxy.tls(Alpn::H1)).await;
    let (mut ws, res) = tokio_tungstenite::client_async(format!("wss://{target}/ws"), tls)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(res.status(), 101);
    for text in ["first", "second"] {
        ws.send(Message::text(text)).await.expect("send");
        let echoed = ws.next().await.expect("a message").expect("ok");
        assert_eq!(echoed, Message::text(text));
    }
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(
        ws.next().await.expect("a message").expect("ok"),
        Message::binary(vec![1u8, 2, 3])
    );
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_proxy() {
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start(&[]).await;
    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/headers"))
        .header("connection", "x-private")
        .header("x-private", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .expect("request");
    let seen: serde_json::Value = res.json().await.expect("json");
    for gone in ["x-private", "keep-alive", "proxy-connection", "te"] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the upstream: {seen}"
        );
    }
    assert_eq!(seen["x-end-to-end"], "kept");
}

#[tokio::test]
async fn upstream_connections_are_pooled_across_requests() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let client = proxy.client(Alpn::H1);
    for _ in 0..5 {
        let res = client.get(upstream.url("/")).send().await.expect("request");
        assert_eq!(res.text().await.expect("body"), "ok");
    }
    // Five sequential requests over one client connection: the upstream
    // accepted one TCP connection only if the proxy pooled it.
    assert_eq!(upstream.connections(), 1);
}
