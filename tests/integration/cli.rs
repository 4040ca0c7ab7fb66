//! The built binary: banner, exit codes, CA commands, environment
//! variables, SIGTERM drain, and a real curl through it.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::support::*;

#[tokio::test]
async fn run_makes_the_ca_on_first_use_and_prints_the_banner_with_the_real_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(&[], dir.path()).await;
    assert_ne!(proxy.addr.port(), 0);
    assert!(
        proxy
            .banner
            .contains(&format!("export HTTPS_PROXY=http://{}", proxy.addr)),
        "{}",
        proxy.banner
    );
    assert!(proxy.banner.contains("certs/ca.pem"), "{}", proxy.banner);
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join("certs").join(name))
            .expect("CA file exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.pem"), 0o644);
    assert_eq!(mode("ca-key.pem"), 0o600);
    assert!(dir.path().join("certs/.gitignore").exists());
    proxy.signal("TERM");
    let (status, _) = proxy.wait().await;
    assert!(status.success());
}

#[tokio::test]
async fn curl_with_https_proxy_and_the_ca_goes_through_and_no_secret_is_logged() {
    let upstream = Upstream::https(Alpn::Both).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream_ca = upstream.ca.as_ref().expect("tls").write_pem(dir.path());
    let proxy = BinProxy::spawn(
        &["--upstream-ca", upstream_ca.to_str().expect("utf-8")],
        dir.path(),
    )
    .await;

    let mut curl = tokio::process::Command::new("curl");
    clear_env(&mut curl);
    let out = curl
        .current_dir(dir.path())
        .env("https_proxy", proxy.url())
        .args([
            "-sS",
            "--fail",
            "--cacert",
            "certs/ca.pem",
            "-H",
            "Authorization: Bearer sk-live-SECRET-123",
            "-H",
            "Cookie: session=COOKIE-SECRET-456",
        ])
        .arg(upstream.url("/headers?api_key=QUERY-SECRET-789"))
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        seen["authorization"], "Bearer sk-live-SECRET-123",
        "forwarded untouched"
    );

    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success());
    assert!(
        log.contains("GET https://localhost:"),
        "one line per exchange: {log}"
    );
    assert!(log.contains(" 200 "), "{log}");
    for secret in [
        "sk-live-SECRET-123",
        "COOKIE-SECRET-456",
        "QUERY-SECRET-789",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log: {log}");
    }
}

#[tokio::test]
async fn sigterm_lets_a_slow_response_in_flight_finish() {
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(&["--grace", "10"], dir.path()).await;
    let client = client_via(&proxy.url(), "", Alpn::H1, None);
    let res = client
        .get(upstream.url("/slow/1500"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(res.status(), 200);
    proxy.signal("TERM");
    let body = res.text().await.expect("the whole body");
    assert_eq!(body, "start-end");
    let (status, _) = proxy.wait().await;
    assert!(status.success(), "exit 0 after draining: {status:?}");
}

#[tokio::test]
async fn a_non_loopback_listen_without_allow_remote_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run_to_end(
        &["run", "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 2, "the admin API follows the same bind policy");
    assert!(
        err.contains("--admin 0.0.0.0:0") && err.contains("--allow-remote"),
        "{err}"
    );
    let (code, _, err) = run_to_end(&["run", "--listen", "0.0.0.0:0"], dir.path()).await;
    assert_eq!(code, 2);
    assert!(err.contains("--allow-remote"), "{err}");
}

#[tokio::test]
async fn unknown_flags_and_bad_values_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["run", "--no-such-flag"],
        vec!["run", "--listen", "not-an-address"],
        vec!["run", "--grace", "soon"],
        vec!["run", "--proxy-auth", "no-colon"],
        vec!["run", "--upstream-ca", "missing.pem"],
    ] {
        let (code, _, err) = run_to_end(&args, dir.path()).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?} says why");
    }
}

#[tokio::test]
async fn a_corrupt_ca_exits_2_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, _) = run_to_end(&["ca", "init"], dir.path()).await;
    assert_eq!(code, 0);
    std::fs::write(dir.path().join("certs/ca.pem"), "garbage").expect("corrupt it");
    let (code, _, err) = run_to_end(&["run", "--listen", "127.0.0.1:0"], dir.path()).await;
    assert_eq!(code, 2);
    assert!(err.contains("certs/ca.pem"), "{err}");
    assert!(err.contains("authfault ca init --force"), "{err}");
}

#[tokio::test]
async fn ca_init_keeps_path_prints_and_export_writes_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = run_to_end(&["ca", "init", "--ca-dir", "my-ca"], dir.path()).await;
    assert_eq!(code, 0);
    assert!(out.contains("created"), "{out}");
    let (code, out, _) = run_to_end(&["ca", "init", "--ca-dir", "my-ca"], dir.path()).await;
    assert_eq!(code, 0);
    assert!(out.contains("kept"), "{out}");
    let (code, out, _) = run_to_end(&["ca", "path", "--ca-dir", "my-ca"], dir.path()).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "my-ca/ca.pem");
    let (code, out, _) = run_to_end(&["ca", "export", "--ca-dir", "my-ca"], dir.path()).await;
    assert_eq!(code, 0);
    let on_disk = std::fs::read_to_string(dir.path().join("my-ca/ca.pem")).expect("read");
    assert_eq!(out, on_disk);
    let (code, _, err) = run_to_end(&["ca", "path", "--ca-dir", "nowhere"], dir.path()).await;
    assert_eq!(code, 2);
    assert!(err.contains("authfault ca init"), "{err}");
}

#[tokio::test]
async fn options_are_read_from_their_environment_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    // AUTHFAULT_LISTEN with a non-loopback address and no AUTHFAULT_ALLOW_REMOTE
    // is refused; adding it lets the same listen address through.
    let out = bin_command(dir.path())
        .arg("run")
        .env("AUTHFAULT_LISTEN", "0.0.0.0:0")
        .env("AUTHFAULT_CA_DIR", "env-ca")
        .stdout(Stdio::null())
        .output()
        .await
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0.0.0.0:0"));

    let mut child = bin_command(dir.path())
        .arg("run")
        .env("AUTHFAULT_LISTEN", "127.0.0.1:0")
        .env("AUTHFAULT_ADMIN", "off")
        .env("AUTHFAULT_CA_DIR", "env-ca")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(GUARD, lines.next_line())
        .await
        .expect("banner in time")
        .expect("read");
    assert!(first.is_some());
    assert!(
        dir.path().join("env-ca/ca.pem").exists(),
        "AUTHFAULT_CA_DIR was read"
    );
    let admin = tokio::time::timeout(GUARD, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(rest) = line.trim().strip_prefix("admin") {
                return rest.trim().to_string();
            }
        }
        panic!("no admin line in the banner");
    })
    .await
    .expect("banner in time");
    assert_eq!(admin, "off", "AUTHFAULT_ADMIN was read");
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn check_prints_file_line_column_for_each_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
    std::fs::write(
        dir.path().join("rules/a.yaml"),
        "rules:\n  - name: one\n    match: { path: \"(\" }\n    action: { strip: {} }\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("rules/b.yaml"),
        "scenarios:\n  s: [one, ghost]\nrules:\n  - name: one\n    actoin: { pass: {} }\n",
    )
    .expect("write");
    let (code, out, _) = run_to_end(&["check", "rules"], dir.path()).await;
    assert_eq!(code, 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("rules/a.yaml:3:20: `match.path` is not a valid regex"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("rules/b.yaml:5:5: unknown field `actoin`"),
        "{out}"
    );
}

#[tokio::test]
async fn check_accepts_a_valid_folder_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ok.yaml"),
        "tokens:\n  old: { value: abc }\nscenarios:\n  rotated: [use-old]\nrules:\n  - name: use-old\n    enabled: false\n    action: { replace: { token: old } }\n",
    )
    .expect("write");
    let (code, out, err) = run_to_end(&["check", "."], dir.path()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 rule(s)"), "{out}");
}

#[tokio::test]
async fn token_inspect_reads_a_token_from_stdin_and_says_when_it_expired() {
    use base64::Engine;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = format!(
        "{}.{}.c2ln",
        authfault::credential::jwt::B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        authfault::credential::jwt::B64
            .encode(format!(r#"{{"sub":"ada","exp":{}}}"#, now - 3 * 3600 - 30))
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = bin_command(dir.path())
        .args(["token", "inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(token.as_bytes()).await.expect("write");
    drop(stdin);
    let out = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .expect("in time")
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("expired 3 h ago"), "{text}");
    assert!(text.contains("\"sub\": \"ada\""), "{text}");

    let (code, _, err) = run_to_end(&["token", "inspect", "opaque-value"], dir.path()).await;
    assert_eq!(code, 2);
    assert!(err.contains("not a JWT"), "{err}");
}

#[tokio::test]
async fn run_refuses_invalid_rules_and_unknown_scenarios_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "rules:\n  - name: a\n    action: { strip: {} }\n    when: { idle: soon }\n",
    )
    .expect("write");
    let (code, _, err) = run_to_end(
        &["run", "--listen", "127.0.0.1:0", "--rules", "bad.yaml"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.yaml:4:19: `soon` is not a duration"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("ok.yaml"),
        "scenarios:\n  s: [a]\nrules:\n  - name: a\n    action: { strip: {} }\n",
    )
    .expect("write");
    let (code, _, err) = run_to_end(
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--rules",
            "ok.yaml",
            "--scenario",
            "nope",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("unknown scenario `nope`; defined: s"), "{err}");
}

#[tokio::test]
async fn run_with_a_scenario_logs_the_rule_and_action_of_each_exchange() {
    let upstream = Upstream::http().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("r.yaml"),
        "scenarios:\n  missing: [no-cred]\nrules:\n  - name: no-cred\n    enabled: false\n    action: { strip: {} }\n",
    )
    .expect("write");
    let proxy = BinProxy::spawn(&["--rules", "r.yaml", "--scenario", "missing"], dir.path()).await;
    let client = client_via(&proxy.url(), "", Alpn::H1, None);
    assert!(
        authorization_seen(&client, &upstream, "tok")
            .await
            .is_none(),
        "the scenario's rule stripped it"
    );
    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success());
    assert!(log.contains("rule=no-cred action=strip"), "{log}");
}

#[tokio::test]
async fn health_exits_0_against_a_running_proxy_and_1_against_a_closed_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = BinProxy::spawn(&[], dir.path()).await;
    let admin = proxy.admin.expect("the banner names the admin API");
    let (code, out, err) = run_to_end(&["health", &format!("http://{admin}")], dir.path()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("/healthz answered 200"), "{out}");
    proxy.signal("TERM");
    let (status, _) = proxy.wait().await;
    assert!(status.success());
    // The same address, now closed.
    let (code, _, err) = run_to_end(&["health", &admin.to_string()], dir.path()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unhealthy"), "{err}");
}

/// The README's table of options: (flag, variable, comma-separated).
fn readme_options() -> Vec<(String, String, bool)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    readme
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let flag = cells[0].trim_start_matches("| `--");
            let flag = flag.split([' ', '`']).next().unwrap_or("");
            let env = cells[1].split('`').nth(1).unwrap_or("");
            (
                flag.to_string(),
                env.to_string(),
                cells[1].contains("comma-separated"),
            )
        })
        .collect()
}

#[test]
fn every_environment_variable_in_the_readme_is_read_by_run_and_exec() {
    use clap::CommandFactory;
    let options = readme_options();
    assert!(
        options.len() >= 20,
        "the options table was found: {options:?}"
    );
    let command = authfault::cli::Args::command();
    for sub in ["run", "exec"] {
        let sub = command.find_subcommand(sub).expect("subcommand");
        for (flag, env, comma_separated) in &options {
            let arg = sub
                .get_arguments()
                .find(|a| a.get_long() == Some(flag.as_str()))
                .unwrap_or_else(|| panic!("{}: no --{flag}", sub.get_name()));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "{} --{flag}",
                sub.get_name()
            );
            assert_eq!(
                arg.get_value_delimiter() == Some(','),
                *comma_separated,
                "{} --{flag}: comma-separated in the README and in the parser alike",
                sub.get_name()
            );
        }
        // And nothing read from the environment is missing from the README.
        for arg in sub.get_arguments() {
            if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
                assert!(
                    options.iter().any(|(_, listed, _)| listed == env),
                    "{} reads {env}, which the README's table does not list",
                    sub.get_name()
                );
            }
        }
    }
}
