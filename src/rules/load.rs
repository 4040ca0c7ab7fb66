//! Reading rule files and folders (a folder's `*.yaml` in name order),
//! `${ENV}` expansion, typed parsing and every check a rule file must pass,
//! each problem reported as `FILE:LINE:COLUMN: message` at the node that is
//! wrong (for an unknown field, at its key).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_path_to_error::Segment;

use std::sync::Arc;

use indexmap::IndexMap;

use super::schema::{self, ActionSpec, File};
use super::yaml::{self, Node, Pos, Step};
use crate::host::HostGlobs;
use crate::perturb::Key;
use crate::perturb::action::Secret;

/// A problem in a rule file, printed as `FILE:LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {kind}", .path.display(), .line, .column)]
pub struct LoadError {
    pub path: PathBuf,
    pub line: usize,   // from 1
    pub column: usize, // from 1
    pub kind: LoadErrorKind,
}

/// What is wrong, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadErrorKind {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("YAML syntax: {0}")]
    Syntax(String),
    #[error("unknown field `{field}`; allowed here: {allowed}")]
    UnknownField { field: String, allowed: String },
    #[error("{0}")]
    Type(String),
    #[error("`{field}` is not a valid regex: {reason}")]
    BadRegex { field: String, reason: String },
    #[error("`{value}` is not a valid host glob: {reason}")]
    BadGlob { value: String, reason: String },
    #[error("`{value}` is not a duration; write a number and a unit: 500ms, 30s, 5m, 1h")]
    BadDuration { value: String },
    #[error("unknown key `{name}`; keys defined: {known}")]
    UnknownKey { name: String, known: String },
    #[error("unknown token `{name}`; tokens defined: {known}")]
    UnknownToken { name: String, known: String },
    #[error("key `{name}`: {reason}")]
    BadKey { name: String, reason: String },
    #[error("rule `{name}` is already defined at {first}")]
    DuplicateRule { name: String, first: String },
    #[error("scenario `{scenario}` names `{rule}`, which no rule file defines")]
    UnknownRuleInScenario { scenario: String, rule: String },
    #[error("{0}")]
    Invalid(String),
}

/// A rule file read and typed, with its tree for positions.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub path: PathBuf,
    pub file: File,
    pub tree: Node,
    /// The file's signing keys, built once here (PEM parsed, secret read).
    pub keys: IndexMap<String, Arc<Key>>,
    /// The file's named credentials, read once here.
    pub tokens: IndexMap<String, Secret>,
}

/// The files `paths` name: files as given, folders' `*.yaml` and `*.yml`
/// in name order.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| read_error(path, &e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn read_error(path: &Path, err: &std::io::Error) -> LoadError {
    LoadError {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        kind: LoadErrorKind::Read(err.to_string()),
    }
}

/// Reads, parses and checks every file of `paths` together (names of keys,
/// tokens and rules are shared across the files loaded at once). Returns
/// every problem found, not just the first.
pub fn load(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Parsed>, Vec<LoadError>> {
    let files = expand_paths(paths).map_err(|e| vec![e])?;
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for path in &files {
        match parse_file(path, env) {
            Ok(mut p) => {
                // A file whose keys or tokens fail is still checked, so
                // every problem shows in one pass.
                errors.extend(resolve(&mut p, env));
                parsed.push(p);
            }
            Err(e) => errors.push(e),
        }
    }
    errors.extend(check(&parsed));
    // In the order a reader meets them: file by file, top to bottom.
    let order = |path: &Path| files.iter().position(|f| f == path).unwrap_or(usize::MAX);
    errors.sort_by_key(|e| (order(&e.path), e.line, e.column));
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Parses one file's text into its typed form and builds its keys and
/// tokens (references between files are `load`'s to check).
pub fn parse_text(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, Vec<LoadError>> {
    let mut parsed = parse_unresolved(path, text, env).map_err(|e| vec![e])?;
    let errors = resolve(&mut parsed, env);
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

fn parse_unresolved(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, LoadError> {
    let at = |pos: Pos, kind| LoadError {
        path: path.to_path_buf(),
        line: pos.line,
        column: pos.column,
        kind,
    };
    let tree = yaml::parse(text).map_err(|e| at(e.pos, LoadErrorKind::Syntax(e.message)))?;
    let json = tree
        .to_json(env)
        .map_err(|(pos, message)| at(pos, LoadErrorKind::Invalid(message)))?;
    let file: File = serde_path_to_error::deserialize(json).map_err(|err| {
        let steps: Vec<Step<'_>> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Seq { index } => Some(Step::Index(*index)),
                Segment::Map { key } => Some(Step::Key(key.as_str())),
                Segment::Enum { variant } => Some(Step::Key(variant.as_str())),
                Segment::Unknown => None,
            })
            .collect();
        let message = err.inner().to_string();
        locate_type_error(&tree, &steps, &message, path)
    })?;
    Ok(Parsed {
        path: path.to_path_buf(),
        file,
        tree,
        keys: IndexMap::new(),
        tokens: IndexMap::new(),
    })
}

fn parse_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, &e))?;
    parse_unresolved(path, &text, env)
}

/// Places a serde error: an unknown field or variant at its key, anything
/// else at the deepest node of its path that exists.
fn locate_type_error(tree: &Node, steps: &[Step<'_>], message: &str, path: &Path) -> LoadError {
    let quoted = message.split('`').nth(1).unwrap_or("");
    let is_unknown = message.starts_with("unknown field") || message.starts_with("unknown variant");
    // serde's path may stop at the map holding the field or include it.
    let (node_pos, kind) = if is_unknown {
        let mut parent = steps;
        if parent.last() == Some(&Step::Key(quoted)) {
            parent = &parent[..parent.len() - 1];
        }
        let pos = tree
            .key_at(parent, quoted)
            .or_else(|| deepest(tree, parent))
            .map_or(Pos::default(), |n| n.pos);
        let allowed = message
            .split_once("expected ")
            .map_or_else(|| "none".to_string(), |(_, rest)| rest.to_string());
        let kind = LoadErrorKind::UnknownField {
            field: quoted.to_string(),
            allowed,
        };
        (pos, kind)
    } else {
        let pos = deepest(tree, steps).map_or(Pos::default(), |n| n.pos);
        (pos, LoadErrorKind::Type(message.to_string()))
    };
    LoadError {
        path: path.to_path_buf(),
        line: node_pos.line.max(1),
        column: node_pos.column.max(1),
        kind,
    }
}

fn deepest<'a>(tree: &'a Node, steps: &[Step<'_>]) -> Option<&'a Node> {
    (0..=steps.len()).rev().find_map(|n| tree.get(&steps[..n]))
}

/// Parses a duration: a number and `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Where each error goes: file and node.
struct Sink<'a> {
    errors: Vec<LoadError>,
    file: &'a Parsed,
}

impl Sink<'_> {
    fn at(&mut self, steps: &[Step<'_>], kind: LoadErrorKind) {
        let pos = deepest(&self.file.tree, steps).map_or(Pos { line: 1, column: 1 }, |n| n.pos);
        self.errors.push(LoadError {
            path: self.file.path.clone(),
            line: pos.line,
            column: pos.column,
            kind,
        });
    }

    /// Checks a pattern's syntax, as `Regex::new` does before it compiles:
    /// the same errors, with the file position, without compiling each
    /// rule's regexes twice (compiling them is most of a rule set's load
    /// time). A pattern too large to compile is still refused, by the
    /// compile that follows.
    fn regex(&mut self, steps: &[Step<'_>], field: &str, pattern: &str) {
        if let Err(e) = regex_syntax::Parser::new().parse(pattern) {
            self.at(
                steps,
                LoadErrorKind::BadRegex {
                    field: field.to_string(),
                    reason: first_line(&e.to_string()),
                },
            );
        }
    }

    fn duration(&mut self, steps: &[Step<'_>], value: &str) {
        if parse_duration(value).is_none() {
            self.at(
                steps,
                LoadErrorKind::BadDuration {
                    value: value.to_string(),
                },
            );
        }
    }

    fn exactly_one(&mut self, steps: &[Step<'_>], what: &str, options: &[(&str, bool)]) {
        let given: Vec<&str> = options
            .iter()
            .filter(|(_, set)| *set)
            .map(|(n, _)| *n)
            .collect();
        if given.len() != 1 {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            let said = if given.is_empty() {
                "none is given".to_string()
            } else {
                format!("{} are given", given.join(" and "))
            };
            self.at(
                steps,
                LoadErrorKind::Invalid(format!(
                    "{what} needs exactly one of {}; {said}",
                    names.join(", ")
                )),
            );
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .to_string()
}

fn known(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The checks that need more than types, over all files loaded together.
fn check(files: &[Parsed]) -> Vec<LoadError> {
    let key_names: Vec<&str> = files
        .iter()
        .flat_map(|f| f.file.keys.keys().map(String::as_str))
        .collect();
    let token_names: Vec<&str> = files
        .iter()
        .flat_map(|f| f.file.tokens.keys().map(String::as_str))
        .collect();
    let mut rule_sites: HashMap<&str, String> = HashMap::new();
    let mut errors = Vec::new();

    for parsed in files {
        let mut sink = Sink {
            errors: Vec::new(),
            file: parsed,
        };
        for (i, rule) in parsed.file.rules.iter().enumerate() {
            let name_at = [Step::Key("rules"), Step::Index(i), Step::Key("name")];
            let pos = deepest(&parsed.tree, &name_at).map_or(Pos::default(), |n| n.pos);
            let site = format!("{}:{}:{}", parsed.path.display(), pos.line, pos.column);
            if let Some(first) = rule_sites.get(rule.name.as_str()) {
                sink.at(
                    &name_at,
                    LoadErrorKind::DuplicateRule {
                        name: rule.name.clone(),
                        first: first.clone(),
                    },
                );
            } else {
                rule_sites.insert(&rule.name, site);
            }
            check_rule(&mut sink, i, rule, &key_names, &token_names);
        }
        errors.extend(sink.errors);
    }

    for parsed in files {
        let mut sink = Sink {
            errors: Vec::new(),
            file: parsed,
        };
        for (scenario, rules) in &parsed.file.scenarios {
            for (i, rule) in rules.iter().enumerate() {
                if !rule_sites.contains_key(rule.as_str()) {
                    sink.at(
                        &[Step::Key("scenarios"), Step::Key(scenario), Step::Index(i)],
                        LoadErrorKind::UnknownRuleInScenario {
                            scenario: scenario.clone(),
                            rule: rule.clone(),
                        },
                    );
                }
            }
        }
        errors.extend(sink.errors);
    }
    errors
}

/// Builds a file's keys and reads its tokens into `parsed`, reporting each
/// one that fails at its node. Key files are relative to the rule file, so a
/// rules folder carries its keys.
fn resolve(parsed: &mut Parsed, env: &dyn Fn(&str) -> Option<String>) -> Vec<LoadError> {
    let mut keys = IndexMap::new();
    let mut tokens = IndexMap::new();
    let base = parsed.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut sink = Sink {
        errors: Vec::new(),
        file: parsed,
    };
    for (name, spec) in &sink.file.file.keys {
        let at = |field: &'static str| [Step::Key("keys"), Step::Key(name), Step::Key(field)];
        let bad = |reason: String| LoadErrorKind::BadKey {
            name: name.clone(),
            reason,
        };
        let key = match (&spec.secret_env, &spec.private_key_file) {
            (Some(var), None) => match env(var) {
                None => Err((
                    at("secret_env"),
                    bad(format!("environment variable `{var}` is not set")),
                )),
                Some(secret) => Key::from_secret(&spec.alg, secret.as_bytes(), spec.kid.clone())
                    .map_err(|e| (at("alg"), bad(e.to_string()))),
            },
            (None, Some(file)) => {
                let key_path = base.join(file);
                std::fs::read(&key_path)
                    .map_err(|e| format!("cannot read {}: {e}", key_path.display()))
                    .and_then(|pem| {
                        Key::from_pem(&spec.alg, &pem, spec.kid.clone())
                            .map_err(|e| format!("{}: {e}", key_path.display()))
                    })
                    .map_err(|reason| (at("private_key_file"), bad(reason)))
            }
            (secret_env, private_key_file) => {
                sink.exactly_one(
                    &[Step::Key("keys"), Step::Key(name)],
                    &format!("key `{name}`"),
                    &[
                        ("secret_env", secret_env.is_some()),
                        ("private_key_file", private_key_file.is_some()),
                    ],
                );
                continue;
            }
        };
        match key {
            Ok(key) => {
                keys.insert(name.clone(), Arc::new(key));
            }
            Err((at, kind)) => sink.at(&at, kind),
        }
    }
    for (name, spec) in &sink.file.file.tokens {
        let at = |field: &'static str| [Step::Key("tokens"), Step::Key(name), Step::Key(field)];
        let value = match (&spec.env, &spec.file, &spec.value) {
            (Some(var), None, None) => env(var).ok_or_else(|| {
                (
                    at("env"),
                    format!("environment variable `{var}` is not set"),
                )
            }),
            (None, Some(file), None) => std::fs::read_to_string(base.join(file))
                .map(|s| s.trim().to_string())
                .map_err(|e| (at("file"), format!("cannot read {file}: {e}"))),
            (None, None, Some(value)) => Ok(value.clone()),
            (env_var, file, value) => {
                sink.exactly_one(
                    &[Step::Key("tokens"), Step::Key(name)],
                    &format!("token `{name}`"),
                    &[
                        ("env", env_var.is_some()),
                        ("file", file.is_some()),
                        ("value", value.is_some()),
                    ],
                );
                continue;
            }
        };
        match value {
            Ok(value) => {
                tokens.insert(name.clone(), Secret(value));
            }
            Err((at, reason)) => sink.at(
                &at,
                LoadErrorKind::Invalid(format!("token `{name}`: {reason}")),
            ),
        }
    }
    let errors = sink.errors;
    parsed.keys = keys;
    parsed.tokens = tokens;
    errors
}

fn check_rule(
    sink: &mut Sink<'_>,
    index: usize,
    rule: &schema::RuleSpec,
    key_names: &[&str],
    token_names: &[&str],
) {
    let path = |tail: &[Step<'static>]| -> Vec<Step<'static>> {
        let mut v = vec![Step::Key("rules"), Step::Index(index)];
        v.extend_from_slice(tail);
        v
    };
    if let Some(place) = &rule.credential {
        sink.exactly_one(
            &path(&[Step::Key("credential")]),
            "credential",
            &[
                ("header", place.header.is_some()),
                ("query", place.query.is_some()),
                ("cookie", place.cookie.is_some()),
            ],
        );
        if let Some(header) = &place.header
            && http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            sink.at(
                &path(&[Step::Key("credential"), Step::Key("header")]),
                LoadErrorKind::Invalid(format!("`{header}` is not a valid header name")),
            );
        }
    }
    let m = &rule.matches;
    if let Some(hosts) = &m.host
        && let Err(e) = HostGlobs::new(&hosts.to_vec())
    {
        sink.at(
            &path(&[Step::Key("match"), Step::Key("host")]),
            LoadErrorKind::BadGlob {
                value: e.pattern,
                reason: e.reason,
            },
        );
    }
    if let Some(methods) = &m.method {
        for method in methods.to_vec() {
            if http::Method::from_bytes(method.as_bytes()).is_err() {
                sink.at(
                    &path(&[Step::Key("match"), Step::Key("method")]),
                    LoadErrorKind::Invalid(format!("`{method}` is not an HTTP method")),
                );
            }
        }
    }
    if let Some(p) = &m.path {
        sink.regex(
            &path(&[Step::Key("match"), Step::Key("path")]),
            "match.path",
            p,
        );
    }
    for (name, pattern) in &m.headers {
        let at = [
            Step::Key("rules"),
            Step::Index(index),
            Step::Key("match"),
            Step::Key("headers"),
            Step::Key(name),
        ];
        sink.regex(&at, &format!("match.headers.{name}"), pattern);
    }
    for (name, pattern) in &m.claims {
        let at = [
            Step::Key("rules"),
            Step::Index(index),
            Step::Key("match"),
            Step::Key("claims"),
            Step::Key(name),
        ];
        sink.regex(&at, &format!("match.claims.{name}"), pattern);
    }

    let w = &rule.when;
    if let Some(after) = &w.after {
        sink.duration(&path(&[Step::Key("when"), Step::Key("after")]), after);
    }
    if let Some(idle) = &w.idle {
        sink.duration(&path(&[Step::Key("when"), Step::Key("idle")]), idle);
    }
    if let Some(p) = w.probability
        && !(0.0..=1.0).contains(&p)
    {
        sink.at(
            &path(&[Step::Key("when"), Step::Key("probability")]),
            LoadErrorKind::Invalid(format!("probability {p} is outside 0 to 1")),
        );
    }

    let action_at = path(&[Step::Key("action")]);
    let name = rule.action.name();
    let option = |field: &'static str| -> Vec<Step<'static>> {
        let mut v = action_at.clone();
        v.push(Step::Key(name));
        v.push(Step::Key(field));
        v
    };
    let key_ref = |sink: &mut Sink<'_>, key: &Option<String>, at: Vec<Step<'_>>| {
        if let Some(key) = key
            && !key_names.contains(&key.as_str())
        {
            sink.at(
                &at,
                LoadErrorKind::UnknownKey {
                    name: key.clone(),
                    known: known(key_names),
                },
            );
        }
    };
    let token_ref = |sink: &mut Sink<'_>, token: &Option<String>, at: Vec<Step<'_>>| {
        if let Some(token) = token
            && !token_names.contains(&token.as_str())
        {
            sink.at(
                &at,
                LoadErrorKind::UnknownToken {
                    name: token.clone(),
                    known: known(token_names),
                },
            );
        }
    };
    match &rule.action {
        ActionSpec::Replace(source) => {
            sink.exactly_one(
                &action_at,
                "replace",
                &[
                    ("token", source.token.is_some()),
                    ("value", source.value.is_some()),
                    ("env", source.env.is_some()),
                ],
            );
            token_ref(sink, &source.token, option("token"));
        }
        ActionSpec::Expire(spec) => {
            if let Some(by) = &spec.by {
                sink.duration(&option("by"), by);
            }
            key_ref(sink, &spec.key, option("key"));
        }
        ActionSpec::Scope(spec) => {
            sink.exactly_one(
                &action_at,
                "scope",
                &[
                    ("set", spec.set.is_some()),
                    ("add", spec.add.is_some()),
                    ("remove", spec.remove.is_some()),
                ],
            );
            key_ref(sink, &spec.key, option("key"));
        }
        ActionSpec::Claims(spec) => key_ref(sink, &spec.key, option("key")),
        ActionSpec::Respond(spec) => {
            if let Some(status) = spec.status
                && !(100..=599).contains(&status)
            {
                sink.at(
                    &option("status"),
                    LoadErrorKind::Invalid(format!("status {status} is not between 100 and 599")),
                );
            }
        }
        ActionSpec::Inject(spec) => {
            sink.exactly_one(
                &action_at,
                "inject",
                &[
                    ("token", spec.token.is_some()),
                    ("value", spec.value.is_some()),
                    ("env", spec.env.is_some()),
                    ("mint", spec.mint.is_some()),
                ],
            );
            token_ref(sink, &spec.token, option("token"));
            if let Some(mint) = &spec.mint {
                let mut at = option("mint");
                at.push(Step::Key("key"));
                key_ref(sink, &Some(mint.key.clone()), at);
                if let Some(ttl) = &mint.ttl {
                    let mut at = option("mint");
                    at.push(Step::Key("ttl"));
                    sink.duration(&at, ttl);
                }
            }
        }
        _ => {}
    }

    if let Some(expect) = &rule.expect {
        for (name, pattern) in &expect.headers {
            let at = [
                Step::Key("rules"),
                Step::Index(index),
                Step::Key("expect"),
                Step::Key("headers"),
                Step::Key(name),
            ];
            sink.regex(&at, &format!("expect.headers.{name}"), pattern);
        }
        if let Some(body) = &expect.body {
            sink.regex(
                &path(&[Step::Key("expect"), Step::Key("body")]),
                "expect.body",
                body,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "QA_SECRET").then(|| "s3cret".to_string())
    }

    fn errors_of(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, text).expect("write");
        match load(&[path], &env) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.kind))
                .collect(),
        }
    }

    #[test]
    fn a_valid_file_loads() {
        let errors = errors_of(
            "keys:\n  qa: { alg: HS256, secret_env: QA_SECRET }\ntokens:\n  old: { value: abc }\nscenarios:\n  s: [a]\nrules:\n  - name: a\n    match: { host: \"*.test\", method: [GET], path: \"^/v1\" }\n    when: { after: 30s, probability: 0.5 }\n    action: { expire: { by: 1h, key: qa } }\n  - name: b\n    action: { replace: { token: old } }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_unknown_field_is_reported_at_its_key_with_the_allowed_ones() {
        let errors = errors_of("rules:\n  - name: a\n    acton: { strip: {} }\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("3:5: unknown field `acton`"),
            "{errors:?}"
        );
        assert!(errors[0].contains("action"), "{errors:?}");
    }

    #[test]
    fn an_unknown_action_is_reported_at_its_key() {
        let errors = errors_of("rules:\n  - name: a\n    action:\n      explode: {}\n");
        assert!(
            errors[0].starts_with("4:7: unknown field `explode`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_wrong_type_is_reported_at_the_value() {
        let errors = errors_of(
            "rules:\n  - name: a\n    when: { times: many }\n    action: { strip: {} }\n",
        );
        assert!(errors[0].starts_with("3:20:"), "{errors:?}");
    }

    #[test]
    fn a_bad_regex_a_bad_duration_and_unknown_names_are_each_located() {
        let errors = errors_of(
            "rules:\n  - name: a\n    match: { path: \"^/v1(\" }\n    when: { idle: soon }\n    action: { expire: { key: nope } }\n  - name: b\n    action: { replace: { token: gone } }\n",
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].starts_with("3:20: `match.path` is not a valid regex"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("4:19: `soon` is not a duration"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("5:30: unknown key `nope`"),
            "{errors:?}"
        );
        assert!(
            errors[3].starts_with("7:33: unknown token `gone`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_duplicate_rule_names_the_first_definition() {
        let errors = errors_of(
            "rules:\n  - name: a\n    action: { strip: {} }\n  - name: a\n    action: { pass: {} }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("4:11: rule `a` is already defined at "),
            "{errors:?}"
        );
        assert!(errors[0].ends_with("r.yaml:2:11"), "{errors:?}");
    }

    #[test]
    fn a_scenario_naming_an_unknown_rule_is_located() {
        let errors = errors_of(
            "scenarios:\n  s: [a, ghost]\nrules:\n  - name: a\n    action: { strip: {} }\n",
        );
        assert_eq!(
            errors,
            ["2:10: scenario `s` names `ghost`, which no rule file defines"]
        );
    }

    #[test]
    fn a_missing_key_file_and_an_unset_secret_are_reported() {
        let errors = errors_of(
            "keys:\n  a: { alg: RS256, private_key_file: missing.pem }\n  b: { alg: HS256, secret_env: UNSET_VAR }\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("2:38: key `a`: cannot read"),
            "{errors:?}"
        );
        assert!(errors[1].contains("UNSET_VAR"), "{errors:?}");
    }

    #[test]
    fn an_unset_token_variable_is_reported_at_its_value() {
        let errors = errors_of("tokens:\n  t: { env: UNSET_TOKEN }\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("2:13: token `t`: environment variable `UNSET_TOKEN`"),
            "{errors:?}"
        );
    }

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
