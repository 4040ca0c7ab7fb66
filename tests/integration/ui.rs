//! The web UI in headless Chromium: tests/browser/ui.mjs drives the page
//! (playwright-core with Debian's chromium) against the built proxy, an
//! upstream made here and a closed port. The screenshot goes to the
//! test's temporary folder, and to docs/ui.png with
//! AUTHFAULT_UPDATE_SCREENSHOT=1.

use std::path::Path;
use std::process::Stdio;

use crate::support::*;

const UI_RULES: &str = r#"
scenarios:
  expired: [expire-jwt]
rules:
  - name: strip-all
    enabled: false
    action: { strip: {} }
  - name: expire-jwt
    enabled: false
    match: { credential: jwt }
    action: { expire: { by: 1h } }
  - name: canned-401
    match: { path: "^/canned" }
    action: { respond: {} }
"#;

/// tests/browser's packages, installed from its lock file when missing.
async fn browser_packages(dir: &Path) {
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .await
        .expect("npm runs (install Node.js and npm)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

#[tokio::test]
async fn the_web_ui_shows_live_exchanges_switches_rules_and_diffs_claims_in_chromium() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    browser_packages(&browser).await;
    let chromium =
        std::env::var("AUTHFAULT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (apt-get install chromium) or set AUTHFAULT_CHROMIUM"
    );

    let upstream = Upstream::http().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ui.yaml"), UI_RULES).expect("rules");
    let proxy = BinProxy::spawn(
        &[
            "--rules",
            "ui.yaml",
            "--record",
            "ui.jsonl",
            "--admin-token",
            "ui-admin-secret",
        ],
        dir.path(),
    )
    .await;
    let admin = proxy.admin.expect("admin");

    let screenshot = if std::env::var_os("AUTHFAULT_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ui.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui.png")
    };
    let mut command = tokio::process::Command::new("node");
    clear_env(&mut command);
    let out = command
        .arg("ui.mjs")
        .current_dir(&browser)
        .env("ADMIN_URL", format!("http://{admin}/"))
        .env("PROXY_URL", proxy.url())
        .env("UPSTREAM_URL", upstream.url("").trim_end_matches('/'))
        .env("CLOSED_URL", format!("http://{closed}"))
        .env("JWT", test_jwt(3600))
        .env("ADMIN_TOKEN", "ui-admin-secret")
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed:\n{report}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );

    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success(), "{log}");
}
