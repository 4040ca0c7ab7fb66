//! The typed form of a rule file, exactly as SPEC section 4 writes it. Every
//! struct refuses unknown fields; checks that need more than a type (regexes,
//! durations, names that must exist) are `load`'s.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::perturb::action::CorruptMode;

/// One rule file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub keys: IndexMap<String, KeySpec>,
    #[serde(default)]
    pub tokens: IndexMap<String, TokenSpec>,
    #[serde(default)]
    pub scenarios: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A signing key of the test identity provider: `secret_env` for HMAC,
/// `private_key_file` (PEM, relative to the rule file) for the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub alg: String,
    pub secret_env: Option<String>,
    pub private_key_file: Option<String>,
    pub kid: Option<String>,
}

/// A named credential: exactly one of `env`, `file`, `value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub env: Option<String>,
    pub file: Option<String>,
    pub value: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub credential: Option<PlaceSpec>,
    #[serde(rename = "match", default)]
    pub matches: MatchSpec,
    #[serde(default)]
    pub when: WhenSpec,
    pub action: ActionSpec,
    pub expect: Option<ExpectSpec>,
}

fn yes() -> bool {
    true
}

/// Where the credential lives: exactly one of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceSpec {
    pub header: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, one or many.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// What a request must look like for the rule to own it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub host: Option<OneOrMany>,
    pub method: Option<OneOrMany>,
    pub path: Option<String>,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    pub credential: Option<Presence>,
    #[serde(default)]
    pub claims: IndexMap<String, String>,
}

/// `match.credential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Present,
    Absent,
    Jwt,
    Any,
}

/// When an owned exchange is perturbed; all that are given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    pub after_requests: Option<u64>,
    pub after: Option<String>,
    pub idle: Option<String>,
    pub probability: Option<f64>,
    pub times: Option<u64>,
}

/// The action: exactly one (SPEC section 5).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    Strip(Empty),
    Replace(TokenSource),
    Expire(ExpireSpec),
    Scope(ScopeSpec),
    Claims(ClaimsSpec),
    Corrupt(CorruptSpec),
    Respond(RespondSpec),
    Inject(InjectSpec),
    TokenTtl(TokenTtlSpec),
    Pass(Empty),
}

impl ActionSpec {
    /// The action's name as the spec, logs and reports write it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Strip(_) => "strip",
            Self::Replace(_) => "replace",
            Self::Expire(_) => "expire",
            Self::Scope(_) => "scope",
            Self::Claims(_) => "claims",
            Self::Corrupt(_) => "corrupt",
            Self::Respond(_) => "respond",
            Self::Inject(_) => "inject",
            Self::TokenTtl(_) => "token_ttl",
            Self::Pass(_) => "pass",
        }
    }
}

/// `{}`: an action without options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A credential to put in: exactly one of a named token, a literal value or
/// an environment variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    pub token: Option<String>,
    pub value: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireSpec {
    pub by: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    pub set: Option<String>,
    pub add: Option<Vec<String>>,
    pub remove: Option<Vec<String>>,
    pub claim: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsSpec {
    #[serde(default)]
    pub set: Map<String, Value>,
    #[serde(default)]
    pub remove: Vec<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptSpec {
    pub mode: CorruptMode,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectSpec {
    pub token: Option<String>,
    pub value: Option<String>,
    pub env: Option<String>,
    pub mint: Option<MintSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintSpec {
    pub key: String,
    pub ttl: Option<String>,
    #[serde(default)]
    pub claims: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTtlSpec {
    pub expires_in: i64,
}

/// A rule's own expectation; replaces the action's default entirely.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub status: Option<Vec<u16>>,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    pub body: Option<String>,
}
