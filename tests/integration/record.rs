//! Recording and verdicts: each verdict of SPEC section 6 from a real
//! exchange, what the recording keeps and what it never keeps, and the
//! reports made from it.

use authfault::credential::Fingerprint;
use authfault::record::Record;
use authfault::report::{self, Format, Summary};
use authfault::verdict::Verdict;

use crate::support::*;

const VERDICT_RULES: &str = r#"
rules:
  - name: answer-itself
    match: { path: "^/respond" }
    action: { respond: {} }
  - name: scope-403
    match: { path: "^/answer/403" }
    action: { scope: { set: "orders:read" } }
    expect:
      status: [403]
      headers: { www-authenticate: "insufficient_scope" }
  - name: expire-jwt
    match: { path: "^/(answer|down)" }
    action: { expire: { by: 1h } }
"#;

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Sends each request of the verdict table through one recording proxy and
/// returns the records, in order.
async fn verdict_run() -> (Vec<Record>, Summary, String, Vec<bytes::Bytes>) {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(VERDICT_RULES)).await;
    let client = proxy.client(Alpn::Both);
    let jwt = test_jwt(3600);
    let down = format!("http://127.0.0.1:{}/down", closed_port().await);
    let requests: Vec<(String, &str)> = vec![
        (upstream.url("/answer/401?challenge"), jwt.as_str()),
        (upstream.url("/answer/200"), jwt.as_str()),
        (upstream.url("/answer/500"), jwt.as_str()),
        (upstream.url("/answer/403"), jwt.as_str()),
        (down, jwt.as_str()),
        (upstream.url("/respond"), jwt.as_str()),
        (upstream.url("/headers"), jwt.as_str()),
        (upstream.url("/answer/401?challenge"), "opaque-token-1"),
    ];
    let mut bodies = Vec::new();
    for (url, token) in &requests {
        let res = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("an answer");
        bodies.push(res.bytes().await.expect("the whole body"));
    }
    let stopped = proxy.stop().await;
    (proxy.records(), stopped.summary, jwt, bodies)
}

#[tokio::test]
async fn each_verdict_arises_from_a_real_exchange() {
    let (records, summary, _, _) = verdict_run().await;
    let got: Vec<(Verdict, u16, &str)> = records
        .iter()
        .map(|r| (r.verdict, r.response.status, &*r.reason))
        .collect();
    let verdicts: Vec<Verdict> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Enforced,
            Verdict::Bypassed,
            Verdict::Mismatch,
            Verdict::Mismatch,
            Verdict::Error,
            Verdict::Synthetic,
            Verdict::Untouched,
            Verdict::Skipped,
        ],
        "{got:#?}"
    );
    assert_eq!(records[0].reason, "status 401 in [401]");
    assert!(
        records[1].reason.contains("accepted the bad credential"),
        "{}",
        records[1].reason
    );
    assert_eq!(
        records[2].reason, "status 500, expected [401]",
        "a 5xx says what was expected and what came"
    );
    assert_eq!(
        records[3].reason, "status 403 but no www-authenticate header",
        "the rule's expect wants the challenge"
    );
    assert_eq!(records[4].error.as_deref(), Some("upstream_connect"));
    assert_eq!(records[4].response.status, 502);
    assert_eq!(records[5].response.status, 401);
    assert_eq!(records[6].rule, None);
    assert!(records[7].fired, "the rule fired but could not apply");

    // The ids follow the file, and the live summary is the file's.
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    assert_eq!(summary, Summary::of(&records));
    assert_eq!(summary.exchanges, 8);
    assert_eq!(summary.violations, 4);
    assert_eq!(summary.judged, 7);
    let expire = summary
        .rules
        .iter()
        .find(|r| r.name == "expire-jwt")
        .expect("expire-jwt in the summary");
    assert_eq!((expire.matched, expire.fired), (5, 5));
    assert_eq!(expire.violations.len(), 3);
}

#[tokio::test]
async fn a_record_has_the_fields_of_the_spec_with_fingerprints_instead_of_secrets() {
    let (records, _, jwt, bodies) = verdict_run().await;
    let record = &records[0];
    assert_eq!(record.method, "GET");
    assert_eq!(record.http_version, "HTTP/1.1");
    assert_eq!(record.upstream_http_version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(record.rule.as_deref(), Some("expire-jwt"));
    assert_eq!(record.action.as_deref(), Some("expire"));
    assert!(
        record.ts.ends_with('Z') && record.ts.len() == 24,
        "{}",
        record.ts
    );
    assert!(record.timing.total_ms > 0.0);
    assert!(
        record
            .timing
            .upstream_ms
            .is_some_and(|u| u <= record.timing.total_ms)
    );

    let credential = record.credential.as_ref().expect("credential");
    assert_eq!(credential.location, "header:authorization");
    let before = credential.before.as_ref().expect("before");
    let after = credential.after.as_ref().expect("after");
    assert_eq!(before.fingerprint, Fingerprint::of(&jwt).to_string());
    assert_ne!(before.fingerprint, after.fingerprint);
    assert_eq!(before.kind, "jwt");
    let exp = |t: &authfault::record::entry::TokenRecord| {
        t.claims.as_ref().expect("claims")["exp"]
            .as_i64()
            .expect("exp")
    };
    assert!(exp(after) < exp(before) - 3000, "expired by an hour");
    assert_eq!(after.resigned, Some(false));

    // Headers are redacted to the forwarded token's fingerprint.
    let auth = record.request.headers["authorization"]
        .iter()
        .next()
        .expect("authorization");
    assert_eq!(auth, format!("Bearer <redacted {}>", after.fingerprint));
    // The API echoed the expired token: the body keeps the echo, masked,
    // and counts the body as the client got it.
    let sent: serde_json::Value = serde_json::from_slice(&bodies[0]).expect("json");
    let forwarded = sent["you_sent"]
        .as_str()
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("echo");
    assert_eq!(after.fingerprint, Fingerprint::of(forwarded).to_string());
    // The claims recorded are those of the token as forwarded and as sent.
    let claims = |token: &str| {
        Some(
            authfault::credential::jwt::decode(token)
                .expect("jwt")
                .claims,
        )
    };
    assert_eq!(after.claims, claims(forwarded));
    assert_eq!(before.claims, claims(&jwt));
    let client_body = String::from_utf8(bodies[0].to_vec()).expect("utf-8");
    assert_eq!(
        record.response.body.as_deref(),
        Some(
            client_body
                .replace(forwarded, &format!("<redacted {}>", after.fingerprint))
                .as_str()
        )
    );
    assert_eq!(record.response.body_bytes as usize, bodies[0].len());
    assert!(!record.response.body_truncated);
    assert!(record.response.complete);
}

#[tokio::test]
async fn only_the_first_record_body_bytes_are_kept_but_all_are_counted() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.record.body_limit = 1000).await;
    let client = proxy.client(Alpn::Both);
    let body = client
        .get(upstream.url("/bytes/300000"))
        .send()
        .await
        .expect("answer")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 300_000);
    proxy.stop().await;
    let records = proxy.records();
    let response = &records[0].response;
    assert_eq!(response.body_bytes, 300_000);
    assert!(response.body_truncated);
    // Not UTF-8: kept as base64 of exactly the first 1000 bytes.
    use base64::Engine;
    let kept = base64::engine::general_purpose::STANDARD
        .decode(response.body_base64.as_deref().expect("base64 body"))
        .expect("base64");
    assert_eq!(kept, pattern(1000));
}

#[tokio::test]
async fn reports_render_the_recording_in_every_format_with_the_same_counts() {
    let (records, summary, jwt, _) = verdict_run().await;

    let json: Summary =
        serde_json::from_str(&report::render(&records, Format::Json, false).expect("json"))
            .expect("the JSON report parses");
    assert_eq!(json, summary);

    let text = report::render(&records, Format::Text, false).expect("text");
    assert!(
        text.contains("8 exchange(s), 7 judged, 4 violation(s)"),
        "{text}"
    );
    assert!(
        text.contains(
            "enforced 1, bypassed 1, mismatch 2, error 1, skipped 1, synthetic 1, untouched 1"
        ),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour unless asked");
    for violation in summary.rules.iter().flat_map(|r| &r.violations) {
        assert!(text.contains(&violation.reason), "{text}");
    }

    let junit = report::render(&records, Format::Junit, false).expect("junit");
    let doc = roxmltree::Document::parse(&junit).expect("JUnit output is XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 7, "a case per judged exchange");
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, 4, "a failure per violation");
    let skipped = doc
        .descendants()
        .filter(|n| n.has_tag_name("skipped"))
        .count();
    assert_eq!(skipped, 1);
    let suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(
        suites,
        [
            "authfault: expire-jwt",
            "authfault: scope-403",
            "authfault: answer-itself"
        ]
    );

    let har: serde_json::Value =
        serde_json::from_str(&report::render(&records, Format::Har, false).expect("har"))
            .expect("HAR is JSON");
    assert_eq!(har["log"]["version"], "1.2");
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), records.len());
    for entry in entries {
        let timings = &entry["timings"];
        let parts: Vec<f64> = ["send", "wait", "receive"]
            .iter()
            .map(|k| timings[k].as_f64().expect("timing"))
            .collect();
        assert!(parts.iter().all(|t| *t >= 0.0), "{timings}");
        let total = entry["time"].as_f64().expect("time");
        assert!((parts.iter().sum::<f64>() - total).abs() < 0.01, "{entry}");
        assert!(entry["_authfault"]["verdict"].is_string());
        assert!(entry["startedDateTime"].is_string());
    }

    for format in [Format::Text, Format::Json, Format::Junit, Format::Har] {
        let out = report::render(&records, format, false).expect("render");
        assert!(!out.contains(&jwt), "{format:?} leaks the token");
    }
}

#[tokio::test]
async fn the_raw_credential_appears_nowhere_in_the_recording() {
    // A re-signed token and an API that echoes it in a header and a body.
    let rules_yaml = r#"
keys:
  qa: { alg: HS256, secret_env: TEST_JWT_SECRET }
rules:
  - name: scope-resigned
    match: { path: "^/answer/" }
    action: { scope: { set: "orders:read", key: qa } }
"#;
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(rules_yaml)).await;
    let client = proxy.client(Alpn::Both);
    let jwt = test_jwt(3600);
    for _ in 0..2 {
        client
            .get(upstream.url(&format!("/answer/403?token={jwt}")))
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("answer")
            .bytes()
            .await
            .expect("body");
    }
    let forwarded = upstream
        .last_headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("the upstream got a bearer token")
        .to_string();
    assert_ne!(forwarded, jwt, "the token was re-signed");
    proxy.stop().await;
    let raw = std::fs::read_to_string(proxy.recording()).expect("recording");
    assert!(
        !raw.contains(&forwarded),
        "the re-signed token leaked: {raw}"
    );
    let records = proxy.records();
    let credential = records[0].credential.as_ref().expect("credential");
    let after = credential.after.as_ref().expect("after");
    assert_eq!(after.resigned, Some(true));
    assert!(!raw.contains(&jwt), "the original token leaked: {raw}");
    assert_eq!(after.fingerprint, Fingerprint::of(&forwarded).to_string());
    assert!(!raw.contains(jwt.split('.').nth(2).expect("signature")));
    assert!(raw.contains(&format!("<redacted {}>", after.fingerprint)));
    // Fingerprints are stable: the same token gives the same one twice.
    let again = records[1].credential.as_ref().expect("credential");
    assert_eq!(
        again.before.as_ref().expect("before").fingerprint,
        credential.before.as_ref().expect("before").fingerprint
    );
    let echoed: serde_json::Value =
        serde_json::from_str(records[0].response.body.as_deref().expect("body")).expect("json");
    assert_eq!(
        echoed["you_sent"],
        format!("Bearer <redacted {}>", after.fingerprint)
    );
}

#[tokio::test]
async fn a_stderr_nobody_reads_stalls_no_exchange_and_loses_no_line() {
    // The test reads the proxy's stderr only when it exits: several pipe
    // buffers' worth of exchange lines must queue up meanwhile, with every
    // response still waiting only for its line in the recording.
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(&["--record", "unread.jsonl"], dir.path()).await;
    let client = client_via(&proxy.url(), "", Alpn::H1, None);
    let marker = "x".repeat(300);
    let requests = 1500;
    for i in 0..requests {
        // A stall would hang here for ever; the generous bound turns it into
        // a failure that says what happened (it is no speed target).
        let sent = client
            .get(upstream.url(&format!("/stderr-unread/{i}/{marker}")))
            .send();
        let res = tokio::time::timeout(std::time::Duration::from_secs(60), sent)
            .await
            .unwrap_or_else(|_| panic!("exchange {i} stalled: the unread stderr blocked it"))
            .expect("the proxy answers while nobody reads its stderr");
        assert_eq!(res.status(), 200);
        res.bytes().await.expect("body");
    }
    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success(), "{log}");
    let logged = log
        .lines()
        .filter(|l| l.contains("/stderr-unread/"))
        .count();
    assert_eq!(logged, requests, "one log line per exchange");
    let recorded = std::fs::read_to_string(dir.path().join("unread.jsonl")).expect("recording");
    assert_eq!(recorded.lines().count(), requests);
}
