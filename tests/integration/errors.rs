//! The answers the proxy makes itself (SPEC section 9): JSON bodies with the
//! code also in `x-authfault-error`.

use std::time::Duration;

use authfault::proxy::ProxyAuth;
use tokio::net::TcpListener;

use crate::support::*;

#[tokio::test]
async fn an_upstream_that_is_down_gives_502_upstream_connect() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let proxy = TestProxy::start(&[]).await;
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
    ] {
        let res = proxy
            .client(Alpn::H1)
            .get(&url)
            .send()
            .await
            .expect("an answer");
        let detail = assert_proxy_error(res, 502, "upstream_connect").await;
        assert!(detail.contains(&port.to_string()), "{detail}");
    }
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_gives_502_upstream_tls_and_works_with_upstream_ca() {
    let upstream = Upstream::https(Alpn::Both).await;
    let untrusting = TestProxy::start(&[]).await;
    let res = untrusting
        .client(Alpn::Both)
        .get(upstream.url("/"))
        .send()
        .await
        .expect("an answer");
    let detail = assert_proxy_error(res, 502, "upstream_tls").await;
    assert!(detail.contains("unknown issuer"), "{detail}");
    assert!(
        detail.contains("--upstream-ca"),
        "the fix is named: {detail}"
    );

    let trusting = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let res = trusting
        .client(Alpn::Both)
        .get(upstream.url("/"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn an_upstream_certificate_for_another_name_gives_502_upstream_tls_name_mismatch() {
    let ca = TestCa::new("upstream test CA");
    let upstream = Upstream::https_signed(ca.clone(), &["other.test"], Alpn::H1).await;
    let proxy = TestProxy::start(&[&ca]).await;
    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/"))
        .send()
        .await
        .expect("an answer");
    let detail = assert_proxy_error(res, 502, "upstream_tls").await;
    assert!(detail.contains("name mismatch"), "{detail}");
}

#[tokio::test]
async fn insecure_upstream_accepts_an_untrusted_certificate() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start_with(&[], |config| config.upstream.is_insecure = true).await;
    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_upstream_silent_past_the_timeout_gives_504_upstream_timeout() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let proxy = TestProxy::start_with(&[], |config| {
        config.upstream.timeout = Duration::from_millis(300);
    })
    .await;
    let res = proxy
        .client(Alpn::H1)
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .expect("an answer");
    let detail = assert_proxy_error(res, 504, "upstream_timeout").await;
    assert!(detail.contains("--upstream-timeout"), "{detail}");
}

#[tokio::test]
async fn proxy_auth_answers_407_without_credentials_and_forwards_with_them() {
    let upstream = Upstream::http().await;
    let tls_upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start_with(&[tls_upstream.ca.as_deref().expect("tls")], |config| {
        config.proxy_auth = ProxyAuth::parse("qa:s3cret");
    })
    .await;

    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        res.headers()
            .get("proxy-authenticate")
            .map(|v| v.to_str().expect("ascii")),
        Some("Basic realm=\"authfault\"")
    );
    assert_proxy_error(res, 407, "proxy_auth_required").await;

    let wrong = client_via(&proxy.url(), &proxy.ca_pem, Alpn::H1, Some(("qa", "wrong")));
    let res = wrong.get(upstream.url("/")).send().await.expect("answer");
    assert_eq!(res.status(), 407);

    // CONNECT is refused too: reqwest sees the tunnel fail.
    let err = proxy
        .client(Alpn::H1)
        .get(tls_upstream.url("/"))
        .send()
        .await
        .expect_err("CONNECT without credentials fails");
    assert!(err.is_connect(), "{err:?}");
    // On the wire: the CONNECT itself is answered 407 with the challenge.
    let raw = raw_exchange(
        proxy.addr,
        &format!(
            "CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n",
            port = tls_upstream.port()
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 407"), "{raw}");
    assert!(
        raw.contains("x-authfault-error: proxy_auth_required"),
        "{raw}"
    );

    let right = client_via(
        &proxy.url(),
        &proxy.ca_pem,
        Alpn::H1,
        Some(("qa", "s3cret")),
    );
    for url in [upstream.url("/"), tls_upstream.url("/")] {
        let res = right.get(&url).send().await.expect("answer");
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(res.text().await.expect("body"), "ok");
    }
    // The proxy's credentials are for the proxy alone.
    assert!(upstream.last_headers().get("proxy-authorization").is_none());
}

#[tokio::test]
async fn a_request_addressed_to_the_proxy_itself_gives_508_loop_detected() {
    let proxy = TestProxy::start(&[]).await;
    let own = format!("http://127.0.0.1:{}/anything", proxy.addr.port());
    let res = proxy
        .client(Alpn::H1)
        .get(&own)
        .send()
        .await
        .expect("answer");
    assert_proxy_error(res, 508, "loop_detected").await;
}

#[tokio::test]
async fn an_origin_form_request_gives_400_bad_request_with_a_hint() {
    let proxy = TestProxy::start(&[]).await;
    let res = raw_exchange(
        proxy.addr,
        "GET /v1/orders HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    assert!(res.contains("x-authfault-error: bad_request"), "{res}");
    assert!(res.contains("HTTPS_PROXY"), "{res}");
}

#[tokio::test]
async fn oversized_request_headers_give_431_headers_too_large() {
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start_with(&[], |config| config.max_header_bytes = 4096).await;
    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/"))
        .header("x-big", "a".repeat(5000))
        .send()
        .await
        .expect("answer");
    assert_proxy_error(res, 431, "headers_too_large").await;
    assert_eq!(upstream.hits(), 0, "the upstream never saw it");
}
