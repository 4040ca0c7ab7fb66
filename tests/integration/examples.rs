//! `examples/` and the Dockerfile: every YAML file parses and has its
//! authfault part where the example says; every authfault command line in
//! them is one the CLI accepts; every `AUTHFAULT_*` variable is a real one;
//! the rules they load pass `authfault check` and define the scenarios they
//! switch to; and the pytest and Jest helpers drive a running proxy.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use clap::Parser;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    root().join("examples")
}

/// Every file under `dir`, recursively, in name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("examples/ is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_yaml(name: &str) -> Vec<Yaml> {
    let path = examples().join(name);
    YamlLoader::load_from_str(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A YAML sequence of strings as a vector.
fn strings(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .unwrap_or_else(|| panic!("a list expected: {node:?}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// The command line (after `authfault`) is accepted by the CLI.
fn accepted(args: &[String], place: &str) {
    let line = std::iter::once("authfault".to_string()).chain(args.iter().cloned());
    if let Err(err) = authfault::cli::Args::try_parse_from(line) {
        panic!("{place}: `authfault {}` is refused: {err}", args.join(" "));
    }
}

/// The variables `run` and `exec` read, from the CLI's own declarations,
/// plus the one `exec` hands to its command.
fn known_variables() -> Vec<String> {
    use clap::CommandFactory;
    let command = authfault::cli::Args::command();
    let run = command.find_subcommand("run").expect("run");
    let mut known: Vec<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env().and_then(|e| e.to_str()).map(str::to_string))
        .collect();
    known.push("AUTHFAULT_ADMIN_URL".to_string());
    known
}

/// Every `AUTHFAULT_*` key of a YAML mapping is a variable authfault reads.
fn variables_known(mapping: &Yaml, place: &str) {
    let known = known_variables();
    let hash = mapping.as_hash().expect("a mapping");
    for key in hash.keys().filter_map(Yaml::as_str) {
        if key.starts_with("AUTHFAULT_") {
            assert!(known.iter().any(|k| k == key), "{place}: {key} is not read");
        }
    }
}

#[test]
fn every_example_yaml_parses_and_its_authfault_part_is_a_valid_setup() {
    let yaml: Vec<PathBuf> = files(&examples())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(yaml.len() >= 5, "{yaml:?}");
    for path in &yaml {
        let docs = YamlLoader::load_from_str(&read(path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!docs.is_empty(), "{} is empty", path.display());
    }

    // GitHub Actions: a `services:` container, the proxy in the job's
    // environment, the artifacts uploaded.
    let github = &load_yaml("github-actions.yml")[0];
    let job = &github["jobs"]["api-tests"];
    let service = &job["services"]["authfault"];
    assert!(service["image"].as_str().is_some(), "{service:?}");
    variables_known(&service["env"], "github-actions.yml service env");
    assert_eq!(
        job["env"]["HTTPS_PROXY"].as_str(),
        Some("http://127.0.0.1:8080")
    );
    variables_known(&job["env"], "github-actions.yml job env");
    let uses: Vec<&str> = job["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .collect();
    assert!(
        uses.iter()
            .any(|u| u.starts_with("actions/upload-artifact"))
    );

    // GitLab CI: a service with an alias and a command the CLI accepts; the
    // JUnit report handed to GitLab.
    let gitlab = &load_yaml("gitlab-ci.yml")[0];
    let job = &gitlab["api-credential-faults"];
    let service = &job["services"][0];
    assert_eq!(service["alias"].as_str(), Some("authfault"));
    accepted(
        &strings(&service["command"]),
        "gitlab-ci.yml service command",
    );
    variables_known(&job["variables"], "gitlab-ci.yml variables");
    assert_eq!(
        job["artifacts"]["reports"]["junit"].as_str(),
        Some("authfault/junit.xml")
    );

    // docker compose: authfault with its rules mounted from a folder that
    // exists, the tests waiting for its health check.
    let compose = &load_yaml("docker-compose.yml")[0];
    let authfault = &compose["services"]["authfault"];
    variables_known(&authfault["environment"], "docker-compose.yml");
    let rules_mount = strings(&authfault["volumes"])
        .into_iter()
        .find(|v| v.contains(":/rules"))
        .expect("a /rules volume");
    let source = rules_mount.split(':').next().unwrap_or("");
    assert!(examples().join(source).is_dir(), "{rules_mount}");
    assert_eq!(
        compose["services"]["tests"]["depends_on"]["authfault"]["condition"].as_str(),
        Some("service_healthy")
    );

    // Kubernetes: a native sidecar whose arguments and probes the CLI
    // accepts.
    let kube = load_yaml("kubernetes/job.yaml");
    let job = kube
        .iter()
        .find(|d| d["kind"].as_str() == Some("Job"))
        .expect("a Job");
    let sidecar = &job["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"].as_str(), Some("Always"));
    accepted(&strings(&sidecar["args"]), "kubernetes sidecar args");
    for probe in ["startupProbe", "livenessProbe"] {
        let command = strings(&sidecar[probe]["exec"]["command"]);
        assert_eq!(command[0], "authfault");
        accepted(&command[1..], probe);
    }
    for env in sidecar["env"].as_vec().expect("env") {
        let name = env["name"].as_str().expect("name");
        assert!(known_variables().iter().any(|k| k == name), "{name}");
    }
}

#[test]
fn the_dockerfile_command_and_health_check_are_accepted_by_the_cli() {
    let dockerfile = read(&root().join("Dockerfile"));
    let json_after = |prefix: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line"));
        let array = &line[line.find('[').expect("an exec-form array")..];
        serde_json::from_str(array).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let entrypoint = json_after("ENTRYPOINT");
    assert_eq!(entrypoint, ["authfault"]);
    let cmd = json_after("CMD [\"run\"");
    accepted(&cmd, "Dockerfile CMD");
    assert!(cmd.contains(&"--allow-remote".to_string()));
    let health = json_after("CMD [\"authfault\"");
    assert_eq!(health[..2], ["authfault", "health"]);
    accepted(&health[1..], "Dockerfile HEALTHCHECK");
    for volume in ["/rules", "/certs", "/recordings"] {
        assert!(dockerfile.contains(&format!("\"{volume}\"")), "{volume}");
    }
    assert!(dockerfile.contains("EXPOSE 8080 8081"));
}

#[tokio::test]
async fn the_example_rules_pass_check_and_define_every_scenario_the_examples_use() {
    let rules = examples().join("rules");
    let (code, out, err) = run_to_end(&["check", rules.to_str().expect("utf-8")], root()).await;
    assert_eq!(code, 0, "{out}{err}");

    let parsed = authfault::rules::load::load(std::slice::from_ref(&rules), &|_| None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let set = authfault::rules::set::RuleSet::compile(&parsed, &|_| None, 1)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let defined: Vec<&str> = set.scenario_names().collect();
    let switch = regex::Regex::new(r#"\{"name":"([^"]+)"\}"#).expect("regex");
    let mut used = 0;
    for path in files(&examples()) {
        for found in switch.captures_iter(&read(&path)) {
            used += 1;
            assert!(
                defined.contains(&&found[1]),
                "{} switches to `{}`, which examples/rules does not define ({defined:?})",
                path.display(),
                &found[1]
            );
        }
    }
    assert!(used >= 5, "the examples switch scenarios ({used} found)");
}

/// Runs a helper script with the admin API's URL and a proxy that does not
/// exist: a helper that went through the proxy would fail.
async fn helper(program: &str, args: &[&str], admin: &str) -> (bool, String) {
    let mut command = tokio::process::Command::new(program);
    clear_env(&mut command);
    let out = command
        .args(args)
        .current_dir(examples())
        .env("AUTHFAULT_ADMIN_URL", admin)
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("NODE_USE_ENV_PROXY", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e} (is it installed? .ci/run installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_pytest_and_jest_helpers_switch_scenarios_on_a_running_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = examples().join("rules");
    let proxy = BinProxy::spawn(
        &["--rules", rules.to_str().expect("utf-8"), "--record", "off"],
        dir.path(),
    )
    .await;
    let admin = format!("http://{}", proxy.admin.expect("admin"));
    let client = direct_client();
    let scenario = || async {
        let rules: serde_json::Value = client
            .get(format!("{admin}/rules"))
            .send()
            .await
            .expect("admin answers")
            .json()
            .await
            .expect("JSON");
        rules["scenario"].clone()
    };

    let python = |code: &'static str| {
        let admin = admin.clone();
        async move { helper("python3", &["-c", code], &admin).await }
    };
    let (ok, out) = python("import sys; sys.path.insert(0, 'pytest'); import authfault_admin as a; a.switch_on('expired')").await;
    assert!(ok, "{out}");
    assert_eq!(scenario().await, "expired");
    let (ok, out) = python("import sys; sys.path.insert(0, 'pytest'); import authfault_admin as a\nwith a.scenario('missing'): print(a.call('GET', '/rules')['scenario'])").await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "missing", "on inside the block");
    assert_eq!(scenario().await, serde_json::Value::Null, "off after it");
    let (ok, out) = python("import sys; sys.path.insert(0, 'pytest'); import authfault_admin as a; a.switch_on('expird')").await;
    assert!(!ok);
    assert!(out.contains("unknown_scenario"), "{out}");

    let node = |code: &'static str| {
        let admin = admin.clone();
        async move { helper("node", &["-e", code], &admin).await }
    };
    let (ok, out) = node("require('./jest/authfault.js').switchOn('wrong-scope').catch((e) => { console.error(e); process.exit(1); })").await;
    assert!(ok, "{out}");
    assert_eq!(scenario().await, "wrong-scope");
    let (ok, out) = node("const a = require('./jest/authfault.js'); a.withScenario('malformed', () => a.admin('GET', '/rules')).then((r) => console.log(r.scenario), (e) => { console.error(e); process.exit(1); })").await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "malformed", "on inside withScenario");
    assert_eq!(scenario().await, serde_json::Value::Null, "off after it");
    let (ok, out) = node("require('./jest/authfault.js').switchOn('expird').then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1); })").await;
    assert!(!ok);
    assert!(out.contains("unknown_scenario"), "{out}");
    proxy.signal("TERM");
    let (status, log) = proxy.wait().await;
    assert!(status.success(), "{log}");
}
