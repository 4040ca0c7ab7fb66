//! The admin API (SPEC section 8): each call and its errors, the token, a
//! live scenario switch under load, per-request scenarios, and metrics
//! that equal the recording.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::*;

const ADMIN_RULES: &str = r#"
scenarios:
  missing: [strip-all]
  rotated: [replace-all]
rules:
  - name: strip-all
    enabled: false
    action: { strip: {} }
  - name: replace-all
    enabled: false
    action: { replace: { value: "other-token" } }
"#;

struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(admin: &authfault::admin::Admin, token: Option<&str>) -> Self {
        Self {
            client: direct_client(),
            base: format!("http://{}", admin.local_addr()),
            token: token.map(str::to_string),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let res = req.send().await.expect("admin answers");
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"))
    }

    async fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = self.call(method, path, body).await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, value)
    }
}

/// The `Authorization` the upstream saw for one request through `client`.
async fn seen(
    client: &reqwest::Client,
    upstream: &Upstream,
    extra: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = client.get(upstream.url("/headers")).bearer_auth("tok-0001");
    if let Some((name, value)) = extra {
        req = req.header(name, value);
    }
    let res = req.send().await.expect("answer");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_call_answers_and_errors_as_the_spec_says_and_the_token_guards_all_but_healthz() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(ADMIN_RULES)).await;
    let admin = proxy.admin(Some("adm-secret")).await;
    let api = Api::new(&admin, Some("adm-secret"));
    let anonymous = Api::new(&admin, None);
    let wrong = Api::new(&admin, Some("not-it"));

    assert_eq!(
        anonymous.call("GET", "/healthz", None).await,
        (200, "ok\n".to_string())
    );
    for (method, path) in [
        ("GET", "/rules"),
        ("PUT", "/scenario"),
        ("GET", "/report"),
        ("GET", "/metrics"),
        ("GET", "/ca.pem"),
        ("GET", "/exchanges"),
        ("POST", "/reset"),
    ] {
        assert_eq!(
            anonymous.call(method, path, None).await.0,
            401,
            "{method} {path}"
        );
        assert_eq!(
            wrong.call(method, path, None).await.0,
            401,
            "{method} {path}"
        );
    }

    let (status, rules) = api.json("GET", "/rules", None).await;
    assert_eq!(status, 200);
    assert_eq!(rules["scenario"], Value::Null);
    assert_eq!(rules["rules"][0]["name"], "strip-all");
    assert_eq!(rules["rules"][0]["enabled"], false);
    assert_eq!(rules["rules"][0]["active"], false);
    assert_eq!(rules["rules"][0]["action"], "strip");

    // Scenarios: on, unknown, malformed, off.
    let (status, body) = api
        .json("PUT", "/scenario", Some(r#"{"name":"missing"}"#))
        .await;
    assert_eq!((status, &body), (200, &json!({"scenario": "missing"})));
    let (_, rules) = api.json("GET", "/rules", None).await;
    assert_eq!(rules["scenario"], "missing");
    assert_eq!(rules["rules"][0]["active"], true);
    let client = proxy.client(Alpn::Both);
    let (_, headers) = seen(&client, &upstream, None).await;
    assert_eq!(headers.get("authorization"), None, "the scenario strips");
    let (status, body) = api
        .json("PUT", "/scenario", Some(r#"{"name":"nope"}"#))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_scenario");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("missing, rotated"),
        "{body}"
    );
    let (status, body) = api.json("PUT", "/scenario", Some("missing")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = api.json("DELETE", "/scenario", None).await;
    assert_eq!((status, body), (200, json!({"scenario": null})));
    let (_, headers) = seen(&client, &upstream, None).await;
    assert_eq!(headers["authorization"], "Bearer tok-0001", "scenario off");

    // Rule flags.
    let (status, body) = api.json("POST", "/rules/replace-all/enable", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["enabled"], true);
    let (_, headers) = seen(&client, &upstream, None).await;
    assert_eq!(headers["authorization"], "Bearer other-token");
    let (status, _) = api.json("POST", "/rules/replace-all/disable", None).await;
    assert_eq!(status, 200);
    let (status, body) = api.json("POST", "/rules/ghost/enable", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_rule"))
    );

    // Exchanges, report, reset.
    let (status, page) = api.json("GET", "/exchanges", None).await;
    assert_eq!(status, 200);
    let page = page.as_array().expect("an array").clone();
    assert_eq!(page.len(), 3);
    let first = page[0]["id"].as_u64().expect("id");
    let (_, after) = api
        .json("GET", &format!("/exchanges?since={first}&limit=1"), None)
        .await;
    assert_eq!(after.as_array().map(Vec::len), Some(1));
    assert_eq!(after[0]["id"], first + 1);
    let (status, body) = api.json("GET", "/exchanges?since=soon", None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, report) = api.json("GET", "/report", None).await;
    assert_eq!(status, 200);
    assert_eq!(report["exchanges"], 3);
    let (status, har) = api.json("GET", "/report?format=har", None).await;
    assert_eq!(status, 200);
    assert_eq!(har["log"]["entries"].as_array().map(Vec::len), Some(3));
    let (status, xml) = api.call("GET", "/report?format=junit", None).await;
    assert_eq!(status, 200);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML");
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    let (status, text) = api.call("GET", "/report?format=text", None).await;
    assert_eq!(status, 200);
    assert!(text.contains("3 exchange(s)"), "{text}");
    let (status, body) = api.json("GET", "/report?format=pdf", None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = api.json("POST", "/reset", None).await;
    assert_eq!(status, 200);
    let (_, report) = api.json("GET", "/report", None).await;
    assert_eq!(report["exchanges"], 0);
    let (_, har) = api.json("GET", "/report?format=har", None).await;
    assert_eq!(
        har["log"]["entries"].as_array().map(Vec::len),
        Some(0),
        "the HAR starts afresh with the summary"
    );
    let (_, rules) = api.json("GET", "/rules", None).await;
    assert_eq!(rules["rules"][0]["matched"], 0);

    // Rules replaced: a broken text keeps the old rules and says where.
    let (status, body) = api
        .json(
            "PUT",
            "/rules",
            Some("rules:\n  - name: x\n    actoin: {}\n"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_rules");
    assert_eq!(body["errors"][0]["line"], 3, "{body}");
    assert_eq!(body["errors"][0]["column"], 5, "{body}");
    let (_, rules) = api.json("GET", "/rules", None).await;
    assert_eq!(
        rules["rules"].as_array().map(Vec::len),
        Some(2),
        "old rules kept"
    );
    let (status, body) = api
        .json(
            "PUT",
            "/rules",
            Some(r#"{"rules": [{"name": "json-strip", "action": {"strip": {}}}]}"#),
        )
        .await;
    assert_eq!((status, body), (200, json!({"rules": 1})));
    let (_, headers) = seen(&client, &upstream, None).await;
    assert_eq!(headers.get("authorization"), None, "the JSON rules apply");

    let (status, pem) = api.call("GET", "/ca.pem", None).await;
    assert_eq!((status, pem.as_str()), (200, proxy.ca_pem.as_str()));
    assert_eq!(api.call("GET", "/nowhere", None).await.0, 404);
    assert_eq!(api.call("DELETE", "/report", None).await.0, 405);
    admin.stop().await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_scenario_switch_applies_to_every_request_that_starts_after_it_returns() {
    // Half the clients over plain HTTP/1.1, half over intercepted HTTP/2.
    let plain = Arc::new(Upstream::http().await);
    let tls = Arc::new(Upstream::https(Alpn::Both).await);
    let proxy = TestProxy::start_with(&[tls.ca.as_deref().expect("tls")], |config| {
        config.rules = rules(ADMIN_RULES);
    })
    .await;
    let admin = proxy.admin(None).await;
    let api = Api::new(&admin, None);
    // (started, ended, stripped) per request.
    let log: Arc<Mutex<Vec<(Instant, Instant, bool)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, upstream) = if worker % 2 == 0 {
            (proxy.client(Alpn::H1), plain.clone())
        } else {
            (proxy.client(Alpn::H2), tls.clone())
        };
        let (log, stop) = (log.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let started = Instant::now();
                let (status, headers) = seen(&client, &upstream, None).await;
                let ended = Instant::now();
                assert_eq!(status, 200);
                let stripped = headers.get("authorization").is_none();
                log.lock().expect("lock").push((started, ended, stripped));
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let called = Instant::now();
    let (status, _) = api
        .call("PUT", "/scenario", Some(r#"{"name":"missing"}"#))
        .await;
    let returned = Instant::now();
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    for worker in workers {
        worker.await.expect("worker");
    }
    let log = log.lock().expect("lock").clone();
    let before: Vec<_> = log.iter().filter(|(_, ended, _)| *ended < called).collect();
    let after: Vec<_> = log
        .iter()
        .filter(|(started, _, _)| *started > returned)
        .collect();
    assert!(
        before.len() > 20 && after.len() > 20,
        "{} before, {} after",
        before.len(),
        after.len()
    );
    assert!(
        before.iter().all(|r| !r.2),
        "a request that ended before the switch was perturbed"
    );
    assert!(
        after.iter().all(|r| r.2),
        "a request that started after the switch was not perturbed"
    );
    admin.stop().await;
}

#[tokio::test]
async fn parallel_clients_each_get_their_own_scenario_and_the_headers_never_reach_the_upstream() {
    let upstream = Arc::new(Upstream::http().await);
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(ADMIN_RULES)).await;
    let client = proxy.client(Alpn::Both);
    let run = |scenario: &'static str| {
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let mut seen_auth = Vec::new();
            for _ in 0..25 {
                let (status, headers) =
                    seen(&client, &upstream, Some(("x-authfault-scenario", scenario))).await;
                assert_eq!(status, 200);
                let leaked = headers
                    .as_object()
                    .is_some_and(|h| h.keys().any(|k| k.starts_with("x-authfault")));
                assert!(
                    !leaked,
                    "an x-authfault header reached the upstream: {headers}"
                );
                seen_auth.push(headers.get("authorization").cloned());
            }
            seen_auth
        })
    };
    let (missing, rotated) = tokio::join!(run("missing"), run("rotated"));
    assert!(missing.expect("task").iter().all(Option::is_none));
    assert!(
        rotated
            .expect("task")
            .iter()
            .all(|a| a.as_ref().and_then(Value::as_str) == Some("Bearer other-token"))
    );
    // A rule by name applies alone, enabled or not; a typo fails loudly.
    let (_, headers) = seen(&client, &upstream, Some(("x-authfault-rule", "strip-all"))).await;
    assert_eq!(headers.get("authorization"), None);
    let (status, _) = seen(&client, &upstream, Some(("x-authfault-scenario", "mising"))).await;
    assert_eq!(status, 400);
    let res = client
        .get(upstream.url("/headers"))
        .header("x-authfault-rule", "strip-al")
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(
        res.headers()
            .get("x-authfault-error")
            .and_then(|v| v.to_str().ok()),
        Some("unknown_rule")
    );
    // Without the headers nothing is perturbed: the global switch is off.
    let (_, headers) = seen(&client, &upstream, None).await;
    assert_eq!(headers["authorization"], "Bearer tok-0001");
    proxy.stop().await;
    let records = proxy.records();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.scenario.as_deref() == Some("rotated"))
            .count(),
        25,
        "the per-request scenario is recorded"
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_the_recording_holds() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(ADMIN_RULES)).await;
    let admin = proxy.admin(None).await;
    let api = Api::new(&admin, None);
    let client = proxy.client(Alpn::Both);
    for scenario in ["missing", "missing", "rotated"] {
        seen(&client, &upstream, Some(("x-authfault-scenario", scenario))).await;
    }
    seen(&client, &upstream, None).await;
    let (status, text) = api.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let mut counted: std::collections::HashMap<(String, String), f64> = Default::default();
    for sample in &scrape.samples {
        // OpenMetrics names the family `authfault_exchanges` and its
        // samples `authfault_exchanges_total`; the parser keeps the latter
        // untyped.
        let value = match sample.value {
            prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n) => Some(n),
            _ => None,
        };
        if sample.metric == "authfault_exchanges_total"
            && let Some(n) = value
        {
            let rule = sample.labels.get("rule").unwrap_or("").to_string();
            let verdict = sample.labels.get("verdict").unwrap_or("").to_string();
            *counted.entry((rule, verdict)).or_default() += n;
        }
    }
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "authfault_client_connections"),
        "{text}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("authfault_upstream_latency_seconds")),
        "{text}"
    );
    admin.stop().await;
    proxy.stop().await;
    let mut recorded: std::collections::HashMap<(String, String), f64> = Default::default();
    for record in proxy.records() {
        let key = (
            record.rule.clone().unwrap_or_else(|| "-".to_string()),
            record.verdict.as_str().to_string(),
        );
        *recorded.entry(key).or_default() += 1.0;
    }
    assert_eq!(counted, recorded);
    assert_eq!(
        counted[&("strip-all".to_string(), "bypassed".to_string())],
        2.0
    );
}

/// One server-sent event.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    kind: String,
    data: Value,
}

/// A `GET /events` stream, read event by event.
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(api: &Api, last_event_id: Option<u64>, query: &str) -> Self {
        let mut req = api.client.get(format!("{}/events{query}", api.base));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        if let Some(token) = &api.token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("events answer");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next event with data (comments and `retry:` skipped).
    async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse().expect("numeric id"));
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Event { id, kind, data };
                }
                continue;
            }
            let chunk = tokio::time::timeout(GUARD, self.res.chunk())
                .await
                .expect("an event in time")
                .expect("stream readable")
                .expect("stream open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next `exchange` event, skipping `rules` events.
    async fn exchange(&mut self) -> Event {
        loop {
            let event = self.next().await;
            if event.kind == "exchange" {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn events_stream_exchanges_and_rule_changes_and_resume_after_last_event_id() {
    let upstream = Upstream::http().await;
    let mut proxy = TestProxy::start_with(&[], |config| config.rules = rules(ADMIN_RULES)).await;
    let admin = proxy.admin(Some("adm-secret")).await;
    let api = Api::new(&admin, Some("adm-secret"));
    assert_eq!(
        Api::new(&admin, None).call("GET", "/events", None).await.0,
        401,
        "the token guards the stream"
    );
    let client = proxy.client(Alpn::Both);

    // The stream starts with the rules, then every exchange as recorded.
    let mut events = Events::open(&api, None, "").await;
    let first = events.next().await;
    assert_eq!(first.kind, "rules");
    assert_eq!(first.data["rules"][0]["name"], "strip-all");
    for _ in 0..3 {
        seen(&client, &upstream, None).await;
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let event = events.exchange().await;
        assert_eq!(event.id, event.data["id"].as_u64(), "id: is the exchange's");
        assert_eq!(event.data["method"], "GET");
        assert_eq!(event.data["verdict"], "untouched");
        ids.push(event.id.expect("id"));
    }
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");

    // A rule or scenario change is an event too.
    api.call("POST", "/rules/strip-all/enable", None).await;
    let event = events.next().await;
    assert_eq!(event.kind, "rules");
    assert_eq!(event.data["rules"][0]["enabled"], true);
    api.call("PUT", "/scenario", Some(r#"{"name":"rotated"}"#))
        .await;
    let event = events.next().await;
    assert_eq!(
        (event.kind.as_str(), &event.data["scenario"]),
        ("rules", &json!("rotated"))
    );
    api.call("DELETE", "/scenario", None).await;
    api.call("POST", "/rules/strip-all/disable", None).await;

    // Cut after the second exchange; four more happen while away; the
    // resumed stream gives exactly those after it, in order.
    drop(events);
    let resume_after = ids[1];
    for _ in 0..4 {
        seen(&client, &upstream, None).await;
    }
    let mut resumed = Events::open(&api, Some(resume_after), "").await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(resumed.exchange().await.id.expect("id"));
    }
    let expected: Vec<u64> = (resume_after + 1..=resume_after + 5).collect();
    assert_eq!(got, expected, "none lost, none twice");
    seen(&client, &upstream, None).await;
    assert_eq!(
        resumed.exchange().await.id,
        Some(resume_after + 6),
        "then live"
    );

    // ?since=0: everything in memory.
    let mut all = Events::open(&api, None, "?since=0").await;
    assert_eq!(all.exchange().await.id, Some(ids[0]));
    let (status, body) = api.json("GET", "/events?since=x", None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    admin.stop().await;
    proxy.stop().await;
}
