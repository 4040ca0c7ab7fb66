//! Verdicts (SPEC section 6): `judge(expectation, response)`, pure and
//! sync, and the default expectations of SPEC section 5. Rules compile
//! their expectations once; the recorder judges each finished exchange.

use std::fmt;

use http::HeaderMap;
use http::header::{HeaderName, WWW_AUTHENTICATE};
use regex::Regex;

use crate::perturb::{Action, CorruptMode};
use crate::rules::schema::ExpectSpec;

/// The judgement of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Enforced,
    Bypassed,
    Mismatch,
    Error,
    Skipped,
    Synthetic,
    Untouched,
}

impl Verdict {
    /// `bypassed`, `mismatch` and `error` are violations.
    pub fn is_violation(self) -> bool {
        matches!(self, Self::Bypassed | Self::Mismatch | Self::Error)
    }

    /// The name as logs and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "enforced",
            Self::Bypassed => "bypassed",
            Self::Mismatch => "mismatch",
            Self::Error => "error",
            Self::Skipped => "skipped",
            Self::Synthetic => "synthetic",
            Self::Untouched => "untouched",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statuses an expectation accepts: single codes and ranges (`2xx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses(Vec<(u16, u16)>);

impl Statuses {
    fn codes(codes: &[u16]) -> Self {
        Self(codes.iter().map(|&c| (c, c)).collect())
    }

    fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Whether every accepted status is an error: the expectation wants the
    /// bad credential rejected.
    fn wants_rejection(&self) -> bool {
        self.0.iter().all(|&(lo, _)| lo >= 400)
    }
}

impl fmt::Display for Statuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else if hi == lo + 99 && lo % 100 == 0 {
                write!(f, "{}xx", lo / 100)?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        f.write_str("]")
    }
}

/// What a correct API answers to an exchange.
#[derive(Debug, Clone)]
pub struct Expectation {
    statuses: Statuses,
    headers: Vec<(HeaderName, Regex)>,
    body: Option<Regex>,
    /// A default expectation that allows 401 also needs `WWW-Authenticate`
    /// on a 401 (RFC 9110 §15.5.2).
    needs_challenge: bool,
}

impl Expectation {
    /// 401 with a `WWW-Authenticate` challenge.
    pub fn default_rejection() -> Self {
        Self::defaults(&[401])
    }

    fn defaults(codes: &[u16]) -> Self {
        Self {
            statuses: Statuses::codes(codes),
            headers: Vec::new(),
            body: None,
            needs_challenge: codes.contains(&401),
        }
    }

    /// The default of SPEC section 5 for an action, given whether the token
    /// was re-signed; `None` for actions without one (`respond`, `inject`,
    /// `token_ttl`, `pass`).
    pub fn default_for(action: &Action, was_resigned: bool) -> Option<Self> {
        match action {
            Action::Strip | Action::Replace(_) | Action::Expire { .. } | Action::Claims { .. } => {
                Some(Self::defaults(&[401]))
            }
            Action::Scope { .. } if was_resigned => Some(Self::defaults(&[403])),
            Action::Scope { .. } => Some(Self::defaults(&[401])),
            Action::Corrupt(mode) => Some(match mode {
                CorruptMode::Signature
                | CorruptMode::Truncate
                | CorruptMode::AlgNone
                | CorruptMode::Garbage => Self::defaults(&[401]),
                CorruptMode::Scheme | CorruptMode::Empty | CorruptMode::Duplicate => {
                    Self::defaults(&[400, 401])
                }
                // Schemes are case-insensitive (RFC 9110 §11.1): a correct
                // API accepts `bearer`.
                CorruptMode::LowercaseScheme => Self {
                    statuses: Statuses(vec![(200, 299)]),
                    headers: Vec::new(),
                    body: None,
                    needs_challenge: false,
                },
            }),
            Action::Respond(_) | Action::Inject(_) | Action::TokenTtl { .. } | Action::Pass => None,
        }
    }

    /// Whether judging needs the response body (a body regex).
    pub fn needs_body(&self) -> bool {
        self.body.is_some()
    }

    /// A rule's own `expect`, which replaces the default entirely.
    pub fn from_spec(spec: &ExpectSpec) -> Result<Self, String> {
        let headers = spec
            .headers
            .iter()
            .map(|(name, pattern)| {
                let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("`{name}` is not a header name"))?;
                let re = Regex::new(pattern).map_err(|e| format!("expect.headers.{name}: {e}"))?;
                Ok((header, re))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            statuses: spec
                .status
                .as_deref()
                .map_or_else(|| Statuses(vec![(100, 599)]), Statuses::codes),
            headers,
            body: spec
                .body
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|e| format!("expect.body: {e}"))?,
            needs_challenge: false,
        })
    }
}

/// The response as the verdict sees it: status, headers, and the captured
/// start of the body.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A verdict and the reason for it, in words a report can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub verdict: Verdict,
    pub reason: String,
}

/// Judges a response to a perturbed exchange against its expectation.
pub fn judge(expectation: &Expectation, observed: &Observed<'_>) -> Judged {
    let status = observed.status;
    let statuses = &expectation.statuses;
    let mismatch = |reason: String| Judged {
        verdict: Verdict::Mismatch,
        reason,
    };
    if !statuses.contains(status) {
        if statuses.wants_rejection() && (200..400).contains(&status) {
            return Judged {
                verdict: Verdict::Bypassed,
                reason: format!(
                    "status {status}: the API accepted the bad credential (expected {statuses})"
                ),
            };
        }
        return mismatch(format!("status {status}, expected {statuses}"));
    }
    if expectation.needs_challenge
        && status == 401
        && !observed.headers.contains_key(WWW_AUTHENTICATE)
    {
        return mismatch("status 401 but no www-authenticate header".to_string());
    }
    for (name, pattern) in &expectation.headers {
        let values: Vec<&str> = observed
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return mismatch(format!("status {status} but no {name} header"));
        }
        if !values.iter().any(|v| pattern.is_match(v)) {
            return mismatch(format!("header {name} does not match /{pattern}/"));
        }
    }
    if let Some(pattern) = &expectation.body
        && !pattern.is_match(&String::from_utf8_lossy(observed.body))
    {
        return mismatch(format!("body does not match /{pattern}/"));
    }
    Judged {
        verdict: Verdict::Enforced,
        reason: format!("status {status} in {statuses}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(status: u16, headers: &[(&'static str, &'static str)]) -> (u16, HeaderMap) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, http::HeaderValue::from_static(v));
        }
        (status, map)
    }

    fn run(
        exp: &Expectation,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &[u8],
    ) -> Judged {
        let (status, headers) = observed(status, headers);
        judge(
            exp,
            &Observed {
                status,
                headers: &headers,
                body,
            },
        )
    }

    #[test]
    fn a_401_with_a_challenge_is_enforced() {
        let judged = run(
            &Expectation::default_rejection(),
            401,
            &[("www-authenticate", "Bearer")],
            b"",
        );
        assert_eq!(judged.verdict, Verdict::Enforced);
        assert_eq!(judged.reason, "status 401 in [401]");
    }

    #[test]
    fn a_401_without_www_authenticate_is_a_mismatch() {
        let judged = run(&Expectation::default_rejection(), 401, &[], b"");
        assert_eq!(judged.verdict, Verdict::Mismatch);
        assert_eq!(judged.reason, "status 401 but no www-authenticate header");
    }

    #[test]
    fn a_2xx_or_3xx_to_a_bad_credential_is_bypassed_and_a_5xx_a_mismatch() {
        let exp = Expectation::default_rejection();
        assert_eq!(run(&exp, 200, &[], b"").verdict, Verdict::Bypassed);
        assert_eq!(run(&exp, 302, &[], b"").verdict, Verdict::Bypassed);
        let judged = run(&exp, 500, &[], b"");
        assert_eq!(judged.verdict, Verdict::Mismatch);
        assert_eq!(judged.reason, "status 500, expected [401]");
        assert_eq!(run(&exp, 403, &[], b"").verdict, Verdict::Mismatch);
    }

    #[test]
    fn defaults_follow_the_action_table() {
        let scope = Action::Scope {
            change: crate::perturb::token::ScopeChange::Set("read".into()),
            claim: None,
            key: None,
        };
        let scope_signed = Expectation::default_for(&scope, true).expect("default");
        assert_eq!(run(&scope_signed, 403, &[], b"").verdict, Verdict::Enforced);
        let scope_unsigned = Expectation::default_for(&scope, false).expect("default");
        assert_eq!(
            run(&scope_unsigned, 403, &[], b"").verdict,
            Verdict::Mismatch
        );
        let scheme = Expectation::default_for(&Action::Corrupt(CorruptMode::Scheme), false)
            .expect("default");
        assert_eq!(run(&scheme, 400, &[], b"").verdict, Verdict::Enforced);
        let lower = Expectation::default_for(&Action::Corrupt(CorruptMode::LowercaseScheme), false)
            .expect("default");
        assert_eq!(run(&lower, 204, &[], b"").verdict, Verdict::Enforced);
        assert_eq!(
            run(&lower, 401, &[], b"").verdict,
            Verdict::Mismatch,
            "rejecting `bearer` is wrong"
        );
        let without = [
            Action::Respond(crate::perturb::Synthetic::rfc6750(
                http::StatusCode::UNAUTHORIZED,
            )),
            Action::Inject(crate::perturb::action::Injection::Token(
                crate::perturb::action::Secret("t".into()),
            )),
            Action::TokenTtl { expires_in: 5 },
            Action::Pass,
        ];
        for action in &without {
            assert!(
                Expectation::default_for(action, false).is_none(),
                "{action:?}"
            );
        }
    }

    #[test]
    fn an_explicit_expect_replaces_the_default_entirely() {
        let spec: ExpectSpec = serde_json::from_value(serde_json::json!({
            "status": [401],
            "headers": {"www-authenticate": "error=\"invalid_token\""},
            "body": "\"error\""
        }))
        .expect("spec");
        let exp = Expectation::from_spec(&spec).expect("compiles");
        let ok = run(
            &exp,
            401,
            &[("www-authenticate", "Bearer error=\"invalid_token\"")],
            br#"{"error":"x"}"#,
        );
        assert_eq!(ok.verdict, Verdict::Enforced);
        let bad_body = run(
            &exp,
            401,
            &[("www-authenticate", "Bearer error=\"invalid_token\"")],
            b"nope",
        );
        assert_eq!(bad_body.verdict, Verdict::Mismatch);
        let status_only: ExpectSpec =
            serde_json::from_value(serde_json::json!({"status": [401]})).expect("spec");
        let exp = Expectation::from_spec(&status_only).expect("compiles");
        assert_eq!(
            run(&exp, 401, &[], b"").verdict,
            Verdict::Enforced,
            "no challenge needed"
        );
    }
}
