//! Faults on either side: an upstream that resets mid-body, closes before
//! answering, answers garbage or stalls; a client that leaves mid-upload or
//! mid-download. The other side learns of it, the exchange is recorded with
//! what happened, the next request is served, and no descriptor is left
//! behind.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// An upstream that misbehaves as the request's path asks.
struct Faulty {
    addr: SocketAddr,
}

impl Faulty {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(misbehave(stream));
            }
        });
        Self { addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn misbehave(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match path.as_str() {
        "/reset-mid-body" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                .await;
            let _ = stream.write_all(&[b'x'; 1000]).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Linger 0: the close is a reset.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        "/close-early" => drop(stream),
        "/malformed" => {
            let _ = stream
                .write_all(b"HTTP/1.1 two hundred\r\nno colon here\r\n\r\n")
                .await;
        }
        "/stall-mid-body" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst-bytes")
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        "/slow-download" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n")
                .await;
            // Writes until the proxy closes the connection.
            let chunk = [b'y'; 16384];
            while stream.write_all(&chunk).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        "/read-upload" => {
            // Reads the upload until the proxy gives up on it.
            let mut sink = [0u8; 16384];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        _ => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    }
}

/// Open descriptors of the proxy's process (the built binary, so that
/// other tests running at the same time do not count).
fn open_fds(proxy: &BinProxy) -> usize {
    let pid = proxy.child.id().expect("running");
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Waits until the proxy's descriptor count is back to `baseline` (it
/// closes its side asynchronously); fails if it is not within `GUARD`.
async fn fds_return_to(proxy: &BinProxy, baseline: usize) {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let now = open_fds(proxy);
        if now <= baseline {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} descriptors open, {baseline} before: some were left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the proxy with SIGTERM and reads its recording.
async fn stop_and_read(proxy: BinProxy, dir: &std::path::Path) -> Vec<authfault::record::Record> {
    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(dir.join("faults.jsonl")).expect("recording");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a record"))
        .collect()
}

/// A raw HTTP/1.1 request through the proxy: what came back until the
/// proxy closed or reset the connection.
async fn through(proxy: SocketAddr, request: &str) -> (String, bool) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let is_reset = loop {
        match tokio::time::timeout(GUARD, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break false,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break true,
            Err(_) => panic!("the proxy neither answered nor closed"),
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), is_reset)
}

fn get(url: &str) -> String {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn upstream_faults_reach_the_client_are_recorded_and_leave_nothing_behind() {
    let faulty = Faulty::start().await;
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(
        &["--upstream-timeout", "0.5", "--record", "faults.jsonl"],
        dir.path(),
    )
    .await;
    // Warm up: the proxy's pools and files exist before the count.
    let (answer, _) = through(proxy.addr, &get(&upstream.url("/headers"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"));
    let baseline = open_fds(&proxy);

    // A reset mid-body: the client gets the headers and the first bytes,
    // then the connection ends before the promised length.
    let (answer, _) = through(proxy.addr, &get(&faulty.url("/reset-mid-body"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        body.len() < 100_000,
        "the body is cut short: {} bytes",
        body.len()
    );

    // Closed before answering, or garbage: a 502 that says so.
    for path in ["/close-early", "/malformed"] {
        let (answer, _) = through(proxy.addr, &get(&faulty.url(path))).await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{path}: {answer}");
        assert!(answer.contains("upstream_protocol"), "{path}: {answer}");
    }

    // Silent mid-body past --upstream-timeout: cut off, not held forever.
    let (answer, _) = through(proxy.addr, &get(&faulty.url("/stall-mid-body"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("first-bytes"), "{answer}");

    // The next request is served.
    let (answer, _) = through(proxy.addr, &get(&upstream.url("/headers"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    fds_return_to(&proxy, baseline).await;

    let records = stop_and_read(proxy, dir.path()).await;
    let by_path = |path: &str| {
        records
            .iter()
            .find(|r| r.url.ends_with(path))
            .unwrap_or_else(|| panic!("{path} was not recorded"))
            .clone()
    };
    let reset = by_path("/reset-mid-body");
    assert_eq!(reset.response.status, 200);
    assert!(!reset.response.complete);
    assert_eq!(reset.error.as_deref(), Some("upstream_protocol"));
    for path in ["/close-early", "/malformed"] {
        let record = by_path(path);
        assert_eq!(record.response.status, 502, "{path}");
        assert_eq!(record.error.as_deref(), Some("upstream_protocol"), "{path}");
    }
    let stalled = by_path("/stall-mid-body");
    assert!(!stalled.response.complete);
    assert_eq!(stalled.error.as_deref(), Some("upstream_timeout"));
    assert_eq!(stalled.response.body_bytes, "first-bytes".len() as u64);
}

#[tokio::test]
async fn a_client_that_leaves_mid_download_or_mid_upload_is_recorded_and_frees_the_upstream() {
    let faulty = Faulty::start().await;
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(
        &["--idle-timeout", "0.5", "--record", "faults.jsonl"],
        dir.path(),
    )
    .await;
    let (answer, _) = through(proxy.addr, &get(&upstream.url("/headers"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"));
    let baseline = open_fds(&proxy);

    // Mid-download: read a little, then leave.
    let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
    client
        .write_all(get(&faulty.url("/slow-download")).as_bytes())
        .await
        .expect("write");
    let mut some = vec![0u8; 65536];
    let n = client.read(&mut some).await.expect("read");
    assert!(n > 0);
    drop(client);

    // Mid-upload: promise a megabyte, send a little, then leave.
    let mut client = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\ncontent-length: 1000000\r\n\r\n",
        faulty.url("/read-upload")
    );
    client.write_all(head.as_bytes()).await.expect("write");
    client.write_all(&[b'u'; 10000]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);

    // Mid-upload, still connected but silent past --idle-timeout.
    let mut stalled = TcpStream::connect(proxy.addr).await.expect("connect");
    stalled.write_all(head.as_bytes()).await.expect("write");
    stalled.write_all(&[b'u'; 10000]).await.expect("write");

    let (answer, _) = through(proxy.addr, &get(&upstream.url("/headers"))).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the next request is served"
    );
    // The stalled uploader learns of it: an answer or a close.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(GUARD, stalled.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "a stalled upload is not held forever");
    drop(stalled);
    fds_return_to(&proxy, baseline).await;

    let records = stop_and_read(proxy, dir.path()).await;
    let download = records
        .iter()
        .find(|r| r.url.ends_with("/slow-download"))
        .expect("the download is recorded");
    assert_eq!(download.response.status, 200);
    assert!(!download.response.complete);
    assert_eq!(download.error.as_deref(), Some("client_closed"));
    let uploads: Vec<_> = records
        .iter()
        .filter(|r| r.url.ends_with("/read-upload"))
        .collect();
    assert_eq!(uploads.len(), 2, "both broken uploads are recorded");
    for upload in &uploads {
        assert_eq!(upload.response.status, 502, "{upload:?}");
        assert_eq!(
            upload.error.as_deref(),
            Some("upstream_protocol"),
            "{upload:?}"
        );
    }
}
