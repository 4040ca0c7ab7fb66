//! Rules applied by the running proxy: for each action and credential
//! place, exactly what the upstream received.

use authfault::credential::jwt;
use base64::Engine;

use crate::support::*;

/// What the upstream saw of one request: its URI and headers.
struct Seen {
    uri: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

async fn through(
    rules_yaml: &str,
    request: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> (u16, Seen, Upstream) {
    let upstream = Upstream::https(Alpn::Both).await;
    let proxy = TestProxy::start_with(&[upstream.ca.as_deref().expect("tls")], |config| {
        config.rules = rules(rules_yaml);
    })
    .await;
    let client = proxy.client(Alpn::Both);
    let res = request(&client, upstream.url("/inspect/v1/orders"))
        .send()
        .await
        .expect("answer");
    let status = res.status().as_u16();
    let json: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    let headers = json["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or("").to_string(),
                        pair[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        uri: json["uri"].as_str().unwrap_or("").to_string(),
        headers,
    };
    (status, seen, upstream)
}

fn verifies(token: &str) -> bool {
    let (input, sig) = token.rsplit_once('.').expect("three parts");
    let key = jsonwebtoken::DecodingKey::from_secret(b"test-secret").expect("key");
    jsonwebtoken::crypto::verify(sig, input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .unwrap_or(false)
}

fn bearer(seen: &Seen) -> String {
    seen.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("a bearer token")
        .to_string()
}

#[tokio::test]
async fn strip_removes_the_credential_from_each_place() {
    let (_, seen, _) = through(
        "rules:\n  - name: s\n    action: { strip: {} }\n",
        |c, url| c.get(url).bearer_auth("tok-123"),
    )
    .await;
    assert_eq!(seen.header("authorization"), None);

    let (_, seen, _) = through(
        "rules:\n  - name: s\n    credential: { query: api_key }\n    action: { strip: {} }\n",
        |c, url| c.get(format!("{url}?page=2&api_key=k-1")),
    )
    .await;
    assert_eq!(seen.uri, "/inspect/v1/orders?page=2");

    let (_, seen, _) = through(
        "rules:\n  - name: s\n    credential: { cookie: session }\n    action: { strip: {} }\n",
        |c, url| c.get(url).header("cookie", "theme=dark; session=c-1"),
    )
    .await;
    assert_eq!(seen.header("cookie"), Some("theme=dark"));
}

#[tokio::test]
async fn replace_puts_the_named_token_in_each_place() {
    let yaml = |place: &str| {
        format!(
            "tokens:\n  old: {{ value: rotated-out }}\nrules:\n  - name: r\n    credential: {place}\n    action: {{ replace: {{ token: old }} }}\n"
        )
    };
    let (_, seen, _) = through(&yaml("{ header: authorization }"), |c, url| {
        c.get(url).bearer_auth("current")
    })
    .await;
    assert_eq!(seen.header("authorization"), Some("Bearer rotated-out"));
    let (_, seen, _) = through(&yaml("{ header: x-api-key }"), |c, url| {
        c.get(url).header("x-api-key", "current")
    })
    .await;
    assert_eq!(seen.header("x-api-key"), Some("rotated-out"));
    let (_, seen, _) = through(&yaml("{ query: api_key }"), |c, url| {
        c.get(format!("{url}?api_key=current"))
    })
    .await;
    assert_eq!(seen.uri, "/inspect/v1/orders?api_key=rotated-out");
    let (_, seen, _) = through(&yaml("{ cookie: session }"), |c, url| {
        c.get(url).header("cookie", "session=current")
    })
    .await;
    assert_eq!(seen.header("cookie"), Some("session=rotated-out"));
}

#[tokio::test]
async fn expire_with_a_key_sends_a_past_exp_that_verifies_under_the_key() {
    let yaml = "keys:\n  qa: { alg: HS256, secret_env: TEST_JWT_SECRET }\nrules:\n  - name: e\n    action: { expire: { by: 1h, key: qa } }\n";
    let token = test_jwt(3600);
    let (_, seen, _) = through(yaml, |c, url| c.get(url).bearer_auth(&token)).await;
    let sent = bearer(&seen);
    assert_ne!(sent, token);
    let decoded = jwt::decode(&sent).expect("a JWT");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let exp = decoded.numeric("exp").expect("exp");
    assert!(
        exp <= now - 3500 && exp >= now - 3700,
        "exp {exp} is about an hour ago"
    );
    assert!(verifies(&sent), "re-signed with the rule's key");
}

#[tokio::test]
async fn scope_and_claims_change_the_jwt() {
    let token = test_jwt(3600);
    let (_, seen, _) = through(
        "rules:\n  - name: s\n    action: { scope: { remove: [orders:write] } }\n",
        |c, url| c.get(url).bearer_auth(&token),
    )
    .await;
    let sent = bearer(&seen);
    assert_eq!(
        jwt::decode(&sent).expect("jwt").claims["scope"],
        "orders:read"
    );
    assert!(
        !verifies(&sent),
        "without a key the old signature no longer holds"
    );

    let (_, seen, _) = through(
        "rules:\n  - name: c\n    action: { claims: { set: { aud: other-api }, remove: [sub] } }\n",
        |c, url| c.get(url).bearer_auth(&token),
    )
    .await;
    let claims = jwt::decode(&bearer(&seen)).expect("jwt").claims;
    assert_eq!(claims["aud"], "other-api");
    assert!(claims.get("sub").is_none());
}

#[tokio::test]
async fn each_corrupt_mode_sends_what_it_says() {
    let token = test_jwt(3600);
    let rule = |mode: &str| {
        format!("rules:\n  - name: c\n    action: {{ corrupt: {{ mode: {mode} }} }}\n")
    };

    let (_, seen, _) = through(&rule("signature"), |c, url| c.get(url).bearer_auth(&token)).await;
    let sent = bearer(&seen);
    assert_eq!(
        sent.rsplit_once('.').expect("parts").0,
        token.rsplit_once('.').expect("parts").0
    );
    assert!(!verifies(&sent));

    let (_, seen, _) = through(&rule("truncate"), |c, url| c.get(url).bearer_auth(&token)).await;
    assert_eq!(bearer(&seen), token[..token.len() / 2]);

    let (_, seen, _) = through(&rule("alg_none"), |c, url| c.get(url).bearer_auth(&token)).await;
    let sent = bearer(&seen);
    assert!(sent.ends_with('.'));
    assert_eq!(jwt::decode(&sent).expect("jwt").alg(), Some("none"));

    let (_, seen, _) = through(&rule("garbage"), |c, url| c.get(url).bearer_auth(&token)).await;
    let garbage = bearer(&seen);
    assert_ne!(garbage, token);
    assert_eq!(
        jwt::B64.decode(&garbage).map(|b| b.len()),
        Ok(24),
        "24 random bytes, base64url"
    );

    let (_, seen, _) = through(&rule("scheme"), |c, url| c.get(url).bearer_auth(&token)).await;
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Basic {token}").as_str())
    );

    let (_, seen, _) = through(&rule("empty"), |c, url| c.get(url).bearer_auth(&token)).await;
    assert_eq!(seen.header("authorization"), Some("Bearer"));

    let (_, seen, _) = through(&rule("duplicate"), |c, url| c.get(url).bearer_auth(&token)).await;
    assert_eq!(seen.all("authorization").len(), 2);

    let (_, seen, _) = through(&rule("lowercase_scheme"), |c, url| {
        c.get(url).bearer_auth(&token)
    })
    .await;
    assert_eq!(
        seen.header("authorization"),
        Some(format!("bearer {token}").as_str())
    );
}

#[tokio::test]
async fn respond_answers_without_contacting_the_upstream() {
    let (status, _, upstream) = through(
        "rules:\n  - name: r\n    action: { respond: {} }\n",
        |c, url| c.get(url).bearer_auth("t"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn inject_mint_adds_a_fresh_jwt_valid_for_its_ttl() {
    let yaml = "keys:\n  qa: { alg: HS256, secret_env: TEST_JWT_SECRET }\nrules:\n  - name: m\n    action: { inject: { mint: { key: qa, ttl: 10m, claims: { sub: svc } } } }\n";
    let (_, seen, _) = through(yaml, |c, url| c.get(url)).await;
    let sent = bearer(&seen);
    assert!(verifies(&sent));
    let decoded = jwt::decode(&sent).expect("jwt");
    assert_eq!(
        decoded.numeric("exp").expect("exp") - decoded.numeric("iat").expect("iat"),
        600
    );
    assert_eq!(decoded.claims["sub"], "svc");
}

#[tokio::test]
async fn token_ttl_rewrites_expires_in_and_nothing_else() {
    let upstream = Upstream::https(Alpn::Both).await;
    let proxy = TestProxy::start_with(&[upstream.ca.as_deref().expect("tls")], |config| {
        config.rules = rules("rules:\n  - name: t\n    match: { path: \"^/token\" }\n    action: { token_ttl: { expires_in: 5 } }\n");
    })
    .await;
    let body = proxy
        .client(Alpn::Both)
        .post(upstream.url("/token"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert_eq!(
        body,
        r#"{"access_token":"at-1","expires_in":5,"token_type":"Bearer","scope":"a b"}"#
    );
}

/// Sends `n` requests with a bearer token at once through a proxy with
/// `rule_set`; returns how many reached the upstream without it.
async fn stripped_of(
    rule_set: std::sync::Arc<arc_swap::ArcSwap<authfault::rules::set::RuleSet>>,
    n: usize,
) -> usize {
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start_with(&[], |config| config.rules = rule_set).await;
    let client = proxy.client(Alpn::H1);
    let requests =
        (0..n).map(|_| async { authorization_seen(&client, &upstream, "t").await.is_none() });
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .filter(|s| *s)
        .count()
}

#[tokio::test]
async fn times_caps_perturbations_exactly_under_concurrent_requests() {
    let set = rules(
        "rules:\n  - name: s\n    when: { after_requests: 2, times: 3 }\n    action: { strip: {} }\n",
    );
    assert_eq!(stripped_of(set, 12).await, 3);
}

#[tokio::test]
async fn the_shipped_rules_perturb_nothing_until_a_scenario_is_switched_on() {
    let env = |_: &str| None;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let files = authfault::rules::load::load(&[dir], &env).expect("the shipped rules load");
    let set = authfault::rules::set::RuleSet::compile(&files, &env, 1).expect("and compile");
    let shared = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(set));
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start_with(&[], |config| config.rules = shared.clone()).await;
    let client = proxy.client(Alpn::H1);
    let token = test_jwt(3600);
    assert_eq!(
        authorization_seen(&client, &upstream, &token).await,
        Some(format!("Bearer {token}")),
        "no scenario: untouched"
    );

    shared
        .load()
        .set_scenario(Some("expired"))
        .expect("the expired scenario exists");
    let after = authorization_seen(&client, &upstream, &token)
        .await
        .expect("a credential");
    let after = after.strip_prefix("Bearer ").expect("bearer");
    let exp = jwt::decode(after)
        .expect("jwt")
        .numeric("exp")
        .expect("exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(exp < now, "scenario expired: the token arrives expired");
}

/// Polls `probe` until it holds, failing after the guard time: for changes
/// that happen on another thread (a file watcher), never a fixed sleep.
async fn eventually(mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_changed_rule_file_applies_to_the_next_request_and_an_invalid_one_keeps_the_old_rules() {
    use authfault::rules::watch::{Reloader, watch};
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("live.yaml");
    let rule = |value: &str| {
        format!("rules:\n  - name: live\n    action: {{ replace: {{ value: {value} }} }}\n")
    };
    std::fs::write(&file, rule("first")).expect("write");
    let env = |_: &str| None;
    let files = authfault::rules::load::load(std::slice::from_ref(&file), &env).expect("loads");
    let set = authfault::rules::set::RuleSet::compile(&files, &env, 1).expect("compiles");
    let shared = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(set));
    let reloader = std::sync::Arc::new(Reloader::new(vec![file.clone()], 1, shared.clone()));
    let _watch = watch(reloader.clone()).expect("watching");

    let upstream = Upstream::http().await;
    let proxy = TestProxy::start_with(&[], |config| config.rules = shared.clone()).await;
    let client = proxy.client(Alpn::H1);
    let sent = async |client: &reqwest::Client| -> String {
        authorization_seen(client, &upstream, "original")
            .await
            .unwrap_or_default()
    };
    assert_eq!(sent(&client).await, "Bearer first");

    std::fs::write(&file, rule("second")).expect("rewrite");
    eventually(async || sent(&client).await == "Bearer second").await;

    let attempts = reloader.attempts();
    let reloads = reloader.reloads();
    std::fs::write(
        &file,
        "rules:\n  - name: live\n    action: { explode: {} }\n",
    )
    .expect("break it");
    eventually(async || reloader.attempts() > attempts).await;
    assert_eq!(
        sent(&client).await,
        "Bearer second",
        "an invalid file keeps the old rules"
    );
    assert_eq!(
        reloader.reloads(),
        reloads,
        "the invalid file was not swapped in"
    );
}

#[tokio::test]
async fn jwt_and_corrupt_actions_work_on_query_and_cookie_credentials() {
    let token = test_jwt(3600);
    let (_, seen, _) = through(
        "rules:\n  - name: q\n    credential: { query: access_token }\n    action: { expire: { by: 2h } }\n",
        |c, url| c.get(format!("{url}?access_token={token}")),
    )
    .await;
    let sent = seen
        .uri
        .split_once("access_token=")
        .expect("parameter kept")
        .1
        .to_string();
    let exp = jwt::decode(&sent)
        .expect("jwt")
        .numeric("exp")
        .expect("exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(exp < now - 7000, "expired two hours ago");

    let (_, seen, _) = through(
        "rules:\n  - name: c\n    credential: { cookie: session }\n    action: { corrupt: { mode: truncate } }\n",
        |c, url| c.get(url).header("cookie", "session=abcdefgh; theme=dark"),
    )
    .await;
    assert_eq!(seen.header("cookie"), Some("session=abcd; theme=dark"));

    let (_, seen, _) = through(
        "rules:\n  - name: i\n    credential: { query: api_key }\n    action: { inject: { value: injected } }\n",
        |c, url| c.get(format!("{url}?page=1")),
    )
    .await;
    assert_eq!(seen.uri, "/inspect/v1/orders?page=1&api_key=injected");
}

/// How many of `n` concurrent requests a `probability: 0.5` rule with
/// `seed` stripped, on a fresh proxy.
async fn stripped_with_seed(seed: u64, n: usize) -> usize {
    let env = |_: &str| None;
    let parsed = authfault::rules::load::parse_text(
        std::path::Path::new("p.yaml"),
        "rules:\n  - name: coin\n    when: { probability: 0.5 }\n    action: { strip: {} }\n",
        &env,
    )
    .expect("parses");
    let set = authfault::rules::set::RuleSet::compile(&[parsed], &env, seed).expect("compiles");
    stripped_of(std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(set)), n).await
}

#[tokio::test]
async fn probability_with_a_seed_gives_the_same_count_under_concurrent_requests() {
    let first = stripped_with_seed(2026, 60).await;
    assert_eq!(
        first,
        stripped_with_seed(2026, 60).await,
        "same seed, same count"
    );
    assert!(first > 10 && first < 50, "{first} of 60 at p=0.5");
}
