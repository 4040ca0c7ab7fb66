//! The rule set the proxy consults: compiled rules in file order, their
//! scenarios, which ones are active, and `select`, which finds the rule that
//! owns a request and whether its `when` fires. A set is immutable but for
//! flags and counters; a reload builds a new one and swaps it in whole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;
use indexmap::IndexMap;
use tokio::time::Instant;

use super::load::{LoadError, LoadErrorKind, Parsed, parse_duration};
use super::matcher::{Matcher, Subject};
use super::schema::{ActionSpec, PlaceSpec, Presence, RuleSpec};
use super::when::{self, When};
use crate::credential::{Found, Place};
use crate::host::HostIndex;
use crate::perturb::action::{Injection, Secret, Synthetic};
use crate::perturb::token::ScopeChange;
use crate::perturb::{Action, Key};
use crate::verdict::Expectation;

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// The file's `enabled`, changed by the admin API; decides only while
    /// no scenario is on.
    pub enabled: AtomicBool,
    pub place: Place,
    pub matcher: Matcher,
    pub when: When,
    pub state: when::State,
    pub action: Action,
    pub action_name: &'static str,
    /// What a correct API answers when the action fired, for a token that
    /// was not re-signed and one that was (they differ for `scope`); `None`
    /// for actions without an expectation. A rule's `expect` fills both.
    expectations: [Option<Arc<Expectation>>; 2],
    salt: u64,
}

impl Rule {
    /// The expectation the response to a fired action is judged by.
    pub fn expectation(&self, was_resigned: bool) -> Option<&Arc<Expectation>> {
        self.expectations[usize::from(was_resigned)].as_ref()
    }
}

/// The rule that owns a request.
#[derive(Debug)]
pub struct Selected<'a> {
    pub rule: &'a Rule,
    /// The credential in the rule's place, before any action.
    pub found: Option<Found>,
    /// Whether `when` held: the action is to be applied.
    pub fired: bool,
    /// The scenario in effect, if one is on.
    pub scenario: Option<String>,
}

/// Which rules a request may be owned by (SPEC section 8): those active
/// now, or, for this request alone, a scenario's or one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// The active rules (`--scenario`, `PUT /scenario`, `enabled` flags).
    Active,
    /// `x-authfault-scenario: NAME`.
    Scenario(&'a str),
    /// `x-authfault-rule: NAME`.
    Rule(&'a str),
}

/// A per-request choice that names nothing the rules define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownChoice {
    Scenario(String),
    Rule(String),
}

/// A scenario name that no rule file defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario `{name}`; defined: {known}")]
pub struct UnknownScenario {
    pub name: String,
    pub known: String,
}

/// Compiled rules and scenarios.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Which rules' `match.host` a request's host may match.
    hosts: HostIndex,
    scenarios: IndexMap<String, Vec<usize>>,
    scenario: RwLock<Option<String>>,
    seed: u64,
    loaded_at: Instant,
}

impl RuleSet {
    /// No rules: every exchange passes untouched.
    pub fn empty(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            hosts: HostIndex::default(),
            scenarios: IndexMap::new(),
            scenario: RwLock::new(None),
            seed,
            loaded_at: Instant::now(),
        }
    }

    /// Compiles checked files (from `load::load`). `env` resolves
    /// `secret_env` and token `env` entries.
    pub fn compile(
        files: &[Parsed],
        env: &dyn Fn(&str) -> Option<String>,
        seed: u64,
    ) -> Result<Self, Vec<LoadError>> {
        let mut errors = Vec::new();
        // Keys and tokens were built by `load`; names are shared by the files.
        let keys: HashMap<String, Arc<Key>> = files
            .iter()
            .flat_map(|p| p.keys.iter().map(|(n, k)| (n.clone(), k.clone())))
            .collect();
        let tokens: HashMap<String, Secret> = files
            .iter()
            .flat_map(|p| p.tokens.iter().map(|(n, t)| (n.clone(), t.clone())))
            .collect();

        let mut rules = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for parsed in files {
            for spec in &parsed.file.rules {
                match compile_rule(spec, &keys, &tokens, env) {
                    Ok(rule) => {
                        index_of.insert(rule.name.clone(), rules.len());
                        rules.push(rule);
                    }
                    Err(reason) => errors.push(LoadError {
                        path: parsed.path.clone(),
                        line: 1,
                        column: 1,
                        kind: LoadErrorKind::Invalid(format!("rule `{}`: {reason}", spec.name)),
                    }),
                }
            }
        }
        let mut scenarios = IndexMap::new();
        for parsed in files {
            for (name, members) in &parsed.file.scenarios {
                let indexes = members
                    .iter()
                    .filter_map(|m| index_of.get(m).copied())
                    .collect();
                scenarios.insert(name.clone(), indexes);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            hosts: HostIndex::new(rules.iter().map(|r| r.matcher.hosts())),
            rules,
            scenarios,
            scenario: RwLock::new(None),
            seed,
            loaded_at: Instant::now(),
        })
    }

    /// The seed of `probability` draws.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The scenario names.
    pub fn scenario_names(&self) -> impl Iterator<Item = &str> {
        self.scenarios.keys().map(String::as_str)
    }

    /// The scenario switched on, if any.
    pub fn scenario(&self) -> Option<String> {
        self.scenario
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the rule at `index` is active: a member of the scenario that
    /// is on, or else enabled.
    pub fn is_active(&self, index: usize) -> bool {
        let scenario = self
            .scenario
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match scenario.as_deref().and_then(|s| self.scenarios.get(s)) {
            Some(members) => members.contains(&index),
            None => self
                .rules
                .get(index)
                .is_some_and(|r| r.enabled.load(Ordering::Relaxed)),
        }
    }

    /// `is_active` by rule name; false for an unknown name.
    pub fn is_active_name(&self, name: &str) -> bool {
        self.rules
            .iter()
            .position(|r| r.name == name)
            .is_some_and(|index| self.is_active(index))
    }

    /// Switches a scenario on (`Some`) or off (`None`): with one on, exactly
    /// its rules are active, whatever their `enabled` flag.
    pub fn set_scenario(&self, name: Option<&str>) -> Result<(), UnknownScenario> {
        if let Some(name) = name
            && !self.scenarios.contains_key(name)
        {
            return Err(UnknownScenario {
                name: name.to_string(),
                known: self.scenario_names().collect::<Vec<_>>().join(", "),
            });
        }
        *self
            .scenario
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name.map(str::to_string);
        Ok(())
    }

    /// Finds the first active rule whose `match` holds and lets its `when`
    /// decide. `host` is the target host without port.
    pub fn select(&self, parts: &Parts, host: &str) -> Option<Selected<'_>> {
        self.select_with(parts, host, Choice::Active)
            .unwrap_or(None)
    }

    /// `select` among the rules `choice` allows.
    pub fn select_with(
        &self,
        parts: &Parts,
        host: &str,
        choice: Choice<'_>,
    ) -> Result<Option<Selected<'_>>, UnknownChoice> {
        let one_rule;
        let active;
        let (members, scenario): (Option<&[usize]>, Option<&str>) = match choice {
            Choice::Active => {
                if self.rules.is_empty() {
                    return Ok(None);
                }
                // The scenario is read once: a switch applies from the next
                // request. Its name is copied only for a rule that owns one.
                active = self
                    .scenario
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let members = active
                    .as_deref()
                    .and_then(|s| self.scenarios.get(s))
                    .map(Vec::as_slice);
                (members, active.as_deref())
            }
            Choice::Scenario(name) => match self.scenarios.get(name) {
                Some(members) => (Some(members.as_slice()), Some(name)),
                None => {
                    return Err(UnknownChoice::Scenario(format!(
                        "unknown scenario `{name}`; defined: {}",
                        self.scenario_names().collect::<Vec<_>>().join(", ")
                    )));
                }
            },
            Choice::Rule(name) => match self.rules.iter().position(|r| r.name == name) {
                Some(index) => {
                    one_rule = [index];
                    (Some(&one_rule[..]), None)
                }
                None => {
                    return Err(UnknownChoice::Rule(format!(
                        "unknown rule `{name}`; defined: {}",
                        self.rules
                            .iter()
                            .map(|r| r.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            },
        };
        Ok(self.select_among(parts, host, members, scenario))
    }

    fn select_among(
        &self,
        parts: &Parts,
        host: &str,
        members: Option<&[usize]>,
        scenario: Option<&str>,
    ) -> Option<Selected<'_>> {
        // Most rules look at Authorization: find it once, when the first
        // rule asks (never without rules). Its JWT is decoded only when a
        // rule gets as far as asking, and then once for all.
        let mut default_found: Option<Option<Found>> = None;
        // Rules whose hosts cannot match are passed over without being read.
        let candidates = self.hosts.candidates(host);
        for index in candidates.iter() {
            let Some(rule) = self.rules.get(index) else {
                break;
            };
            // SPEC section 4: with a scenario on, exactly its rules;
            // otherwise the `enabled` flags.
            let is_active = match members {
                Some(members) => members.contains(&index),
                None => rule.enabled.load(Ordering::Acquire),
            };
            if !is_active {
                continue;
            }
            let own_found = (!rule.place.has_scheme()).then(|| rule.place.find(parts));
            let found = match &own_found {
                Some(own) => own.as_ref(),
                None => default_found
                    .get_or_insert_with(|| Place::default().find(parts))
                    .as_ref(),
            };
            let subject = Subject {
                parts,
                host,
                credential: found,
            };
            if !rule.matcher.is_match(&subject) {
                continue;
            }
            let fired = rule.when.decide(
                &rule.state,
                self.loaded_at,
                found.map(|f| f.token.as_str()),
                self.seed,
                rule.salt,
            );
            // The owner takes the credential along, decoded if it was.
            let found = match own_found {
                Some(own) => own,
                None => default_found.take().flatten(),
            };
            return Some(Selected {
                rule,
                found,
                fired,
                scenario: scenario.map(str::to_string),
            });
        }
        None
    }
}

fn place(spec: Option<&PlaceSpec>) -> Result<Place, String> {
    let Some(spec) = spec else {
        return Ok(Place::default());
    };
    match (&spec.header, &spec.query, &spec.cookie) {
        (Some(h), None, None) => HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
            .map(Place::Header)
            .map_err(|_| format!("`{h}` is not a header name")),
        (None, Some(q), None) => Ok(Place::Query(q.clone())),
        (None, None, Some(c)) => Ok(Place::Cookie(c.clone())),
        _ => Err("credential needs exactly one of header, query, cookie".to_string()),
    }
}

fn compile_rule(
    spec: &RuleSpec,
    keys: &HashMap<String, Arc<Key>>,
    tokens: &HashMap<String, Secret>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Rule, String> {
    let key = |name: &Option<String>| -> Result<Option<Arc<Key>>, String> {
        name.as_ref()
            .map(|n| {
                keys.get(n)
                    .cloned()
                    .ok_or_else(|| format!("unknown key `{n}`"))
            })
            .transpose()
    };
    let source = |token: &Option<String>,
                  value: &Option<String>,
                  var: &Option<String>|
     -> Result<Secret, String> {
        match (token, value, var) {
            (Some(t), _, _) => tokens
                .get(t)
                .cloned()
                .ok_or_else(|| format!("unknown token `{t}`")),
            (None, Some(v), _) => Ok(Secret(v.clone())),
            (None, None, Some(var)) => env(var)
                .map(Secret)
                .ok_or_else(|| format!("environment variable `{var}` is not set")),
            (None, None, None) => Err("needs token, value or env".to_string()),
        }
    };
    let duration = |text: &Option<String>, default: Duration| -> Result<Duration, String> {
        text.as_deref().map_or(Ok(default), |t| {
            parse_duration(t).ok_or_else(|| format!("`{t}` is not a duration"))
        })
    };
    let action = match &spec.action {
        ActionSpec::Strip(_) => Action::Strip,
        ActionSpec::Replace(s) => Action::Replace(source(&s.token, &s.value, &s.env)?),
        ActionSpec::Expire(s) => Action::Expire {
            by: duration(&s.by, Duration::from_secs(3600))?,
            key: key(&s.key)?,
        },
        ActionSpec::Scope(s) => Action::Scope {
            change: match (&s.set, &s.add, &s.remove) {
                (Some(set), None, None) => ScopeChange::Set(set.clone()),
                (None, Some(add), None) => ScopeChange::Add(add.clone()),
                (None, None, Some(remove)) => ScopeChange::Remove(remove.clone()),
                _ => return Err("scope needs exactly one of set, add, remove".to_string()),
            },
            claim: s.claim.clone(),
            key: key(&s.key)?,
        },
        ActionSpec::Claims(s) => Action::Claims {
            set: s.set.clone(),
            remove: s.remove.clone(),
            key: key(&s.key)?,
        },
        ActionSpec::Corrupt(s) => Action::Corrupt(s.mode),
        ActionSpec::Respond(s) => {
            let status = http::StatusCode::from_u16(s.status.unwrap_or(401))
                .map_err(|_| "respond.status is not a status code".to_string())?;
            let mut synthetic = Synthetic::rfc6750(status);
            for (name, value) in &s.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("`{name}` is not a header name"))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|_| format!("`{value}` is not a header value"))?;
                synthetic.headers.insert(name, value);
            }
            if let Some(body) = &s.body {
                synthetic.body = bytes::Bytes::from(body.clone());
            }
            Action::Respond(synthetic)
        }
        ActionSpec::Inject(s) => match &s.mint {
            Some(mint) => Action::Inject(Injection::Mint {
                key: key(&Some(mint.key.clone()))?.ok_or("mint needs a key")?,
                ttl: duration(&mint.ttl, Duration::from_secs(300))?,
                claims: mint.claims.clone(),
            }),
            None => Action::Inject(Injection::Token(source(&s.token, &s.value, &s.env)?)),
        },
        ActionSpec::TokenTtl(s) => Action::TokenTtl {
            expires_in: s.expires_in,
        },
        ActionSpec::Pass(_) => Action::Pass,
    };
    // SPEC section 4: `absent` for inject, `any` for respond, token_ttl and
    // pass, `present` for the rest.
    let default_presence = match &spec.action {
        ActionSpec::Inject(_) => Presence::Absent,
        ActionSpec::Respond(_) | ActionSpec::TokenTtl(_) | ActionSpec::Pass(_) => Presence::Any,
        _ => Presence::Present,
    };
    let expectations = match &spec.expect {
        Some(expect) => {
            let compiled = Arc::new(Expectation::from_spec(expect)?);
            [Some(compiled.clone()), Some(compiled)]
        }
        None => {
            [false, true].map(|resigned| Expectation::default_for(&action, resigned).map(Arc::new))
        }
    };
    Ok(Rule {
        name: spec.name.clone(),
        enabled: AtomicBool::new(spec.enabled),
        place: place(spec.credential.as_ref())?,
        matcher: Matcher::compile(&spec.matches, default_presence).map_err(|e| e.to_string())?,
        when: When::compile(&spec.when),
        state: when::State::default(),
        action,
        action_name: spec.action.name(),
        expectations,
        salt: when::salt(&spec.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load;
    use std::path::Path;

    fn set_of(yaml: &str) -> RuleSet {
        let env = |_: &str| None;
        let parsed = load::parse_text(Path::new("t.yaml"), yaml, &env).expect("parses");
        RuleSet::compile(&[parsed], &env, 1).expect("compiles")
    }

    fn request(auth: Option<&str>) -> Parts {
        let mut b = http::Request::get("/v1/orders");
        if let Some(auth) = auth {
            b = b.header("authorization", auth);
        }
        b.body(()).expect("request").into_parts().0
    }

    const RULES: &str = "scenarios:\n  expired: [b]\nrules:\n  - name: a\n    match: { path: \"^/v2\" }\n    action: { strip: {} }\n  - name: b\n    enabled: false\n    action: { expire: {} }\n  - name: c\n    action: { pass: {} }\n";

    #[test]
    fn a_pattern_too_large_to_compile_is_refused_though_its_syntax_is_fine() {
        // `load` checks a pattern's syntax only; the compile finds the rest.
        let env = |_: &str| None;
        let yaml = "rules:\n  - name: huge\n    match: { path: \"\\\\w{1000}{1000}\" }\n    action: { strip: {} }\n";
        let parsed = load::parse_text(Path::new("t.yaml"), yaml, &env).expect("the syntax is fine");
        let Err(errors) = RuleSet::compile(&[parsed], &env, 1) else {
            panic!("a pattern over the size limit compiled");
        };
        let message = errors[0].to_string();
        assert!(
            message.contains("rule `huge`") && message.contains("match.path"),
            "{message}"
        );
    }

    #[test]
    fn the_first_active_matching_rule_owns_the_exchange() {
        let set = set_of(RULES);
        let selected = set.select(&request(Some("Bearer t")), "h").expect("a rule");
        assert_eq!(selected.rule.name, "c", "a does not match, b is disabled");
        assert!(selected.fired);
        assert_eq!(selected.found.expect("credential").token, "t");
    }

    #[test]
    fn a_scenario_activates_exactly_its_rules_and_switching_it_off_restores_the_flags() {
        let set = set_of(RULES);
        set.set_scenario(Some("expired")).expect("known");
        assert_eq!(
            set.select(&request(Some("Bearer t")), "h")
                .expect("rule")
                .rule
                .name,
            "b"
        );
        assert!(
            set.select(&request(None), "h").is_none(),
            "expire needs a credential; c is not in the scenario"
        );
        set.set_scenario(None).expect("off");
        assert_eq!(
            set.select(&request(Some("Bearer t")), "h")
                .expect("rule")
                .rule
                .name,
            "c"
        );
        assert!(set.set_scenario(Some("nope")).is_err());
    }

    #[test]
    fn inject_defaults_to_requests_without_a_credential() {
        let set = set_of("rules:\n  - name: i\n    action: { inject: { value: fresh } }\n");
        assert!(set.select(&request(Some("Bearer t")), "h").is_none());
        assert_eq!(
            set.select(&request(None), "h").expect("rule").rule.name,
            "i"
        );
    }
}
