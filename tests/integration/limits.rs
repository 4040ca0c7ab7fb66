//! The limits on client connections and upstreams (README, "Command
//! line"): each one's answer to the client, that the proxy serves the next
//! request, and what the recording says.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the peer closes; what it sent, or `None` if it did not
/// close within `GUARD`.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(GUARD, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        // A reset is a close too.
        Ok(Err(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn get_ok(proxy: &TestProxy, upstream: &Upstream) {
    let res = proxy
        .client(Alpn::H1)
        .get(upstream.url("/headers"))
        .send()
        .await
        .expect("the next request is served");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_cut_without_holding_up_others() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| {
        config.limits.header_timeout = Duration::from_millis(300);
    })
    .await;
    let mut slow = TcpStream::connect(proxy.addr).await.expect("connect");
    slow.write_all(format!("GET {} HTTP/1.1\r\nHost: x\r\n", upstream.url("/")).as_bytes())
        .await
        .expect("write half a head");
    // Others are served while it dawdles.
    get_ok(&proxy, &upstream).await;
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.is_some(), "the slow client's connection was closed");
    assert!(
        !answer.unwrap_or_default().contains(" 200 "),
        "no response was made up"
    );
    get_ok(&proxy, &upstream).await;
    proxy.stop().await;
    assert_eq!(
        proxy.records().len(),
        2,
        "a request never sent is not an exchange"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_slow_exchange_finishes_first() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| {
        config.limits.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        upstream.url("/headers")
    );
    let mut idle = TcpStream::connect(proxy.addr).await.expect("connect");
    idle.write_all(request.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut idle)
        .await
        .expect("the idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The upstream pauses 900 ms mid-body, longer than the idle timeout,
    // on a connection with an exchange in flight: the exchange completes.
    let mut slow = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        upstream.url("/slow/900")
    );
    slow.write_all(request.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut slow).await.expect("answered");
    assert!(answer.contains("start-"), "{answer}");
    assert!(
        answer.ends_with("end") || answer.contains("end\r\n"),
        "{answer}"
    );
    get_ok(&proxy, &upstream).await;
    proxy.stop().await;
    let records = proxy.records();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.response.complete && r.response.status == 200)
    );
}

#[tokio::test]
async fn an_upstream_that_does_not_accept_in_time_gives_504_and_is_recorded() {
    // A listener whose accept queue is full and never drained: new
    // connections to it wait in SYN retries.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let full = socket.listen(1).expect("listen");
    let target = full.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(target)).await
        {
            fillers.push(stream);
        }
    }
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| {
        config.upstream.connect_timeout = Duration::from_millis(300);
    })
    .await;
    let res = proxy
        .client(Alpn::H1)
        .get(format!("http://{target}/"))
        .send()
        .await
        .expect("an answer");
    let detail = assert_proxy_error(res, 504, "upstream_timeout").await;
    assert!(detail.contains("--connect-timeout"), "{detail}");
    get_ok(&proxy, &upstream).await;
    proxy.stop().await;
    let records = proxy.records();
    assert_eq!(records[0].response.status, 504);
    assert_eq!(records[0].error.as_deref(), Some("upstream_timeout"));
    drop(fillers);
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_a_freed_slot_serves_again() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| {
        config.limits.max_connections = 2;
    })
    .await;
    let held_a = TcpStream::connect(proxy.addr).await.expect("connect");
    let held_b = TcpStream::connect(proxy.addr).await.expect("connect");
    // Both slots are taken once the proxy has accepted them; the third is
    // turned away with a JSON 503.
    let answer = raw_exchange(
        proxy.addr,
        &format!(
            "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
            upstream.url("/headers")
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("x-authfault-error: too_many_connections"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    drop(held_a);
    // The freed slot serves again (the proxy sees the close shortly).
    let mut served = false;
    for _ in 0..50 {
        let answer = raw_exchange(
            proxy.addr,
            &format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                upstream.url("/headers")
            ),
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a freed connection slot is used again");
    drop(held_b);
    proxy.stop().await;
    assert_eq!(
        proxy.records().len(),
        1,
        "turned-away connections are not exchanges"
    );
}

#[tokio::test]
async fn http2_clients_are_told_the_stream_limit() {
    let upstream = Upstream::https(Alpn::H1).await;
    let mut proxy = TestProxy::start_with(&[upstream.ca.as_deref().expect("tls")], |config| {
        config.limits.max_streams = 7;
    })
    .await;
    let tls = tls_trusting(&[&proxy.ca_pem], Alpn::H2);
    let target = format!("localhost:{}", upstream.addr.port());
    let io = tls_tunnel(proxy.addr, &target, "localhost", &tls).await;
    let (client, mut conn) = h2::client::handshake(io).await.expect("h2 handshake");
    let mut client = client.ready().await.expect("ready");
    let req = http::Request::get(format!("https://{target}/headers"))
        .body(())
        .expect("request");
    let (response, _) = client.send_request(req, true).expect("send");
    let response = tokio::select! {
        res = response => res.expect("response"),
        res = &mut conn => panic!("connection ended first: {res:?}"),
    };
    assert_eq!(response.status(), 200);
    assert_eq!(conn.max_concurrent_send_streams(), 7);
    drop(client);
    proxy.stop().await;
    assert_eq!(proxy.records().len(), 1);
}
