//! The built binary's recording life: `run`'s log lines and summary, the
//! report command, a recording that survives `kill -9`, and `exec` with the
//! child's environment, CA bundle, signals and exit status.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::support::*;

const EXPIRE_ANSWERS: &str = r#"
rules:
  - name: expire-answers
    match: { path: "^/answer/" }
    action: { expire: { by: 1h } }
"#;

#[tokio::test]
async fn run_logs_verdicts_prints_the_summary_and_no_output_holds_a_secret() {
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), EXPIRE_ANSWERS).expect("rules");
    let proxy = BinProxy::spawn(
        &[
            "--rules",
            "rules.yaml",
            "--record",
            "rec.jsonl",
            "--junit",
            "run.xml",
            "--har",
            "run.har",
        ],
        dir.path(),
    )
    .await;
    assert!(
        proxy.banner.contains("record rec.jsonl"),
        "{}",
        proxy.banner
    );
    let client = client_via(&proxy.url(), "", Alpn::Both, None);
    let jwt = test_jwt(3600);
    let cookie_secret = "cookie-secret-0451";
    let res = client
        .get(upstream.url("/answer/200"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("answer");
    let echo: serde_json::Value = res.json().await.expect("json");
    let forwarded = echo["you_sent"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("echo")
        .to_string();
    client
        .get(upstream.url("/headers?api_key=query-secret-77"))
        .bearer_auth("opaque-secret-99")
        .header("cookie", format!("session={cookie_secret}"))
        .send()
        .await
        .expect("answer")
        .bytes()
        .await
        .expect("body");
    // An error the proxy answers itself, for a request carrying secrets.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let res = client
        .get(format!("http://{closed}/x?access_token=query-secret-77"))
        .bearer_auth("opaque-secret-99")
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 502);
    let error_body = res.text().await.expect("error body");

    // What the admin API and the web UI's event stream show.
    let admin = format!("http://{}", proxy.admin.expect("admin"));
    let direct = direct_client();
    let mut admin_outputs = Vec::new();
    for path in [
        "/exchanges",
        "/report",
        "/report?format=text",
        "/report?format=junit",
        "/report?format=har",
        "/rules",
    ] {
        let text = direct
            .get(format!("{admin}{path}"))
            .send()
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("text");
        admin_outputs.push((path, text));
    }
    let mut events = direct
        .get(format!("{admin}/events?since=0"))
        .send()
        .await
        .expect("events");
    let mut stream = String::new();
    while stream.matches("event: exchange").count() < 3 {
        let chunk = tokio::time::timeout(GUARD, events.chunk())
            .await
            .expect("events in time")
            .expect("readable")
            .expect("open");
        stream.push_str(&String::from_utf8_lossy(&chunk));
    }
    admin_outputs.push(("/events", stream));
    drop(events);

    proxy.signal("TERM");
    let (status, log, stdout) = proxy.wait_all().await;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("/answer/200 200")
            && log.contains("rule=expire-answers action=expire verdict=bypassed"),
        "{log}"
    );
    assert!(log.contains("verdict=untouched"), "{log}");
    assert!(
        stdout.contains("3 exchange(s), 1 judged, 1 violation(s)"),
        "{stdout}"
    );

    let mut outputs = vec![
        ("log", log),
        ("summary", stdout),
        ("error body", error_body),
        (
            "recording",
            std::fs::read_to_string(dir.path().join("rec.jsonl")).expect("recording"),
        ),
        (
            "junit",
            std::fs::read_to_string(dir.path().join("run.xml")).expect("junit"),
        ),
        (
            "har",
            std::fs::read_to_string(dir.path().join("run.har")).expect("har"),
        ),
    ];
    for format in ["text", "json", "junit", "har"] {
        let (code, out, err) =
            run_to_end(&["report", "rec.jsonl", "--format", format], dir.path()).await;
        assert_eq!(code, 3, "violations: exit 3 ({err})");
        outputs.push(("report", out));
    }
    for (path, text) in admin_outputs {
        outputs.push((path, text));
    }
    for (name, text) in &outputs {
        for secret in [
            jwt.as_str(),
            forwarded.as_str(),
            "opaque-secret-99",
            cookie_secret,
            "query-secret-77",
        ] {
            assert!(!text.contains(secret), "the {name} holds a secret: {text}");
        }
    }
}

#[tokio::test]
async fn report_merges_recordings_and_exits_0_without_violations() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start(&[]).await;
    let client = proxy.client(Alpn::Both);
    for _ in 0..3 {
        client
            .get(upstream.url("/headers"))
            .send()
            .await
            .expect("answer");
    }
    proxy.stop().await;
    let path = proxy.recording();
    let file = path.to_str().expect("utf-8");
    let (code, out, err) = run_to_end(
        &[
            "report",
            file,
            file,
            "--format",
            "json",
            "--output",
            "merged.json",
        ],
        proxy.dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let merged: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(proxy.dir.path().join("merged.json")).expect("output"),
    )
    .expect("json");
    assert_eq!(merged["exchanges"], 6);
    assert_eq!(merged["verdicts"]["untouched"], 6);
    let (code, _, err) = run_to_end(&["report", "missing.jsonl"], proxy.dir.path()).await;
    assert_eq!(code, 2);
    assert!(err.contains("missing.jsonl"), "{err}");
}

#[tokio::test]
async fn a_recording_survives_kill_9_during_a_burst() {
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(&["--record", "rec.jsonl"], dir.path()).await;
    let client = client_via(&proxy.url(), "", Alpn::Both, None);
    let done: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for worker in 0..8u64 {
        let (client, done, stop) = (client.clone(), done.clone(), stop.clone());
        let base = upstream.url("/bytes/2048");
        workers.push(tokio::spawn(async move {
            let mut n = worker * 1_000_000;
            while !stop.is_cancelled() {
                n += 1;
                let Ok(res) = client.get(format!("{base}?n={n}")).send().await else {
                    break;
                };
                // Finished: the client has every byte of the body.
                if res.bytes().await.is_ok_and(|b| b.len() == 2048) {
                    done.lock().expect("lock").insert(n);
                }
            }
        }));
    }
    // Let the burst run, then take the finished set and kill at once.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if done.lock().expect("lock").len() > 300 {
            break;
        }
    }
    let finished = done.lock().expect("lock").clone();
    proxy.signal("KILL");
    stop.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    let _ = proxy.wait().await;

    let raw = std::fs::read_to_string(dir.path().join("rec.jsonl")).expect("recording");
    // A line is what ends with a newline; a kill can cut only an exchange
    // whose client had not finished.
    let mut recorded = HashSet::new();
    for line in raw.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a line that is not JSON ({e}): {line}"));
        let url = record["url"].as_str().expect("url");
        let n: u64 = url
            .rsplit_once("n=")
            .and_then(|(_, n)| n.parse().ok())
            .expect("n");
        recorded.insert(n);
    }
    let missing: Vec<_> = finished.difference(&recorded).collect();
    assert!(
        missing.is_empty(),
        "{} finished exchanges are not in the recording ({} recorded): {missing:?}",
        missing.len(),
        recorded.len()
    );
}

/// Runs `authfault exec` with `args` and a shell script as the command.
async fn exec(args: &[&str], script: &str, cwd: &Path) -> (i32, String) {
    let mut command = bin_command(cwd);
    command
        .arg("exec")
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(GUARD, command.output())
        .await
        .expect("exits in time")
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first certificate of the system bundle, as `openssl` finds it.
fn a_system_root(dir: &Path) -> std::path::PathBuf {
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt")
        .expect("the system CA bundle (ca-certificates)");
    let end = "-----END CERTIFICATE-----";
    let first = &bundle[bundle.find("-----BEGIN").expect("a certificate")
        ..bundle.find(end).expect("an end") + end.len()];
    let path = dir.join("system-root.pem");
    std::fs::write(&path, format!("{first}\n")).expect("write");
    path
}

fn openssl_verifies(bundle: &Path, cert: &Path) -> bool {
    std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(bundle)
        .arg(cert)
        .output()
        .expect("openssl")
        .status
        .success()
}

#[tokio::test]
async fn exec_gives_the_child_the_proxy_environment_and_a_bundle_that_trusts_both() {
    let upstream = Upstream::https(Alpn::Both).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream_ca = upstream.ca.as_ref().expect("tls").write_pem(dir.path());
    let url = upstream.url("/answer/200");
    let script = format!(
        "env > env.txt; curl -sS --fail-with-body -o body.json -H 'Authorization: Bearer opaque-1' '{url}' || exit 9"
    );
    let upstream_ca = upstream_ca.to_str().expect("utf-8");
    let (code, log) = exec(&["--upstream-ca", upstream_ca], &script, dir.path()).await;
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("authfault report: 1 exchange(s)"),
        "the report on stderr: {log}"
    );

    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env");
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} is not set: {env}"))
            .to_string()
    };
    let proxy_url = var("HTTPS_PROXY");
    assert!(proxy_url.starts_with("http://127.0.0.1:"), "{proxy_url}");
    for name in ["HTTP_PROXY", "http_proxy", "https_proxy"] {
        assert_eq!(var(name), proxy_url);
    }
    let bundle = var("SSL_CERT_FILE");
    for name in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"] {
        assert_eq!(var(name), bundle);
    }
    assert!(bundle.ends_with("certs/ca-bundle.pem"), "{bundle}");
    assert!(var("NODE_EXTRA_CA_CERTS").ends_with("certs/ca.pem"));
    assert_eq!(var("NODE_USE_ENV_PROXY"), "1");
    let admin = var("AUTHFAULT_ADMIN_URL");
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    assert_ne!(admin, proxy_url, "the admin API has its own port");

    let bundle = dir.path().join(&bundle);
    assert!(openssl_verifies(&bundle, &dir.path().join("certs/ca.pem")));
    assert!(openssl_verifies(&bundle, &a_system_root(dir.path())));
    let body = std::fs::read_to_string(dir.path().join("body.json")).expect("curl's body");
    assert!(
        body.contains("opaque-1"),
        "curl went through the proxy: {body}"
    );
}

#[tokio::test]
async fn exec_exits_with_the_childs_status_or_3_on_violations() {
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), EXPIRE_ANSWERS).expect("rules");
    let (code, log) = exec(&[], "exit 7", dir.path()).await;
    assert_eq!(code, 7, "{log}");

    let jwt = test_jwt(3600);
    let url = upstream.url("/answer/200");
    let script = format!("curl -sS -o /dev/null -H 'Authorization: Bearer {jwt}' '{url}'; exit 0");
    let (code, log) = exec(
        &[
            "--rules",
            "rules.yaml",
            "--junit",
            "r.xml",
            "--har",
            "r.har",
        ],
        &script,
        dir.path(),
    )
    .await;
    assert_eq!(code, 3, "a bypassed credential: {log}");
    assert!(log.contains("bypassed"), "{log}");
    let junit = std::fs::read_to_string(dir.path().join("r.xml")).expect("--junit written");
    assert!(junit.contains("<failure"), "{junit}");
    let har: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.har")).expect("--har"))
            .expect("json");
    assert_eq!(har["log"]["entries"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn ctrl_c_reaches_the_child_and_the_proxy_drains_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = bin_command(dir.path());
    command
        .args(["exec", "--", "sh", "-c"])
        .arg("trap 'echo got-int > int.txt; exit 130' INT; echo ready > ready.txt; while true; do sleep 0.1; done")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().expect("spawn");
    let pgid = child.id().expect("pid");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut log = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut log).await;
        log
    });
    tokio::time::timeout(GUARD, async {
        while !dir.path().join("ready.txt").exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the child starts");
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground group.
    let status = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = tokio::time::timeout(GUARD, child.wait()).await;
    if status.is_err() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
    }
    let log = log.await.expect("stderr");
    let status = status
        .unwrap_or_else(|_| panic!("authfault exec did not exit in time; its log: {log}"))
        .expect("wait");
    assert_eq!(status.code(), Some(130), "the child's status: {log}");
    assert!(dir.path().join("int.txt").exists(), "the child got SIGINT");
    assert!(
        log.contains("authfault report:"),
        "authfault drained and reported: {log}"
    );
}
