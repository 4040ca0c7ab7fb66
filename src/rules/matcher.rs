//! A rule's `match`, compiled once at load: host globs, methods, the path
//! regex, header and claim regexes, and the credential's presence. Matching
//! a request compiles nothing and allocates nothing.

use http::request::Parts;
use http::{HeaderName, Method};
use regex::Regex;

use super::schema::{MatchSpec, Presence};
use crate::credential::{Found, Jwt};
use crate::host::HostGlobs;

/// Why a `match` could not be compiled (`load` reports these with
/// positions before compiling, so they are rare here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

/// A compiled `match`.
#[derive(Debug, Clone)]
pub struct Matcher {
    hosts: Option<HostGlobs>,
    methods: Option<Vec<Method>>,
    path: Option<Regex>,
    headers: Vec<(HeaderName, Regex)>,
    presence: Presence,
    claims: Vec<(String, Regex)>,
}

/// What a request offers to be matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub parts: &'a Parts,
    /// The target host, without port.
    pub host: &'a str,
    /// The credential in the rule's place, if any; its JWT is decoded
    /// only if a rule gets as far as asking for it.
    pub credential: Option<&'a Found>,
}

impl Subject<'_> {
    /// The credential decoded as a JWT, if it is one.
    fn jwt(&self) -> Option<&Jwt> {
        self.credential.and_then(|found| found.token.jwt())
    }
}

fn regex(field: &str, pattern: &str) -> Result<Regex, CompileError> {
    Regex::new(pattern).map_err(|e| CompileError(format!("`{field}`: {e}")))
}

impl Matcher {
    /// Compiles `spec`; `default_presence` is the action's default for
    /// `match.credential` (SPEC section 4).
    pub fn compile(spec: &MatchSpec, default_presence: Presence) -> Result<Self, CompileError> {
        let hosts = spec
            .host
            .as_ref()
            .map(|h| HostGlobs::new(&h.to_vec()))
            .transpose()
            .map_err(|e| CompileError(e.to_string()))?;
        let methods = spec
            .method
            .as_ref()
            .map(|m| {
                m.to_vec()
                    .iter()
                    .map(|name| {
                        Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                            .map_err(|_| CompileError(format!("`{name}` is not an HTTP method")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let path = spec
            .path
            .as_deref()
            .map(|p| regex("match.path", p))
            .transpose()?;
        let headers = spec
            .headers
            .iter()
            .map(|(name, pattern)| {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| CompileError(format!("`{name}` is not a header name")))?;
                Ok((header, regex(&format!("match.headers.{name}"), pattern)?))
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let claims = spec
            .claims
            .iter()
            .map(|(name, pattern)| {
                Ok((
                    name.clone(),
                    regex(&format!("match.claims.{name}"), pattern)?,
                ))
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        Ok(Self {
            hosts,
            methods,
            path,
            headers,
            presence: spec.credential.unwrap_or(default_presence),
            claims,
        })
    }

    /// The `match.host` globs, if the rule has them.
    pub fn hosts(&self) -> Option<&HostGlobs> {
        self.hosts.as_ref()
    }

    /// Whether the request is one this rule owns. Cheapest checks first.
    pub fn is_match(&self, subject: &Subject<'_>) -> bool {
        let parts = subject.parts;
        if let Some(methods) = &self.methods
            && !methods.contains(&parts.method)
        {
            return false;
        }
        if let Some(hosts) = &self.hosts
            && !hosts.is_match(subject.host)
        {
            return false;
        }
        if let Some(path) = &self.path
            && !path.is_match(parts.uri.path())
        {
            return false;
        }
        let presence_holds = match self.presence {
            Presence::Any => true,
            Presence::Present => subject.credential.is_some(),
            Presence::Absent => subject.credential.is_none(),
            Presence::Jwt => subject.jwt().is_some(),
        };
        if !presence_holds {
            return false;
        }
        for (name, pattern) in &self.headers {
            let matched = parts
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| pattern.is_match(v)));
            if !matched {
                return false;
            }
        }
        if !self.claims.is_empty() {
            let Some(jwt) = subject.jwt() else {
                return false;
            };
            for (claim, pattern) in &self.claims {
                if !jwt
                    .claims
                    .get(claim)
                    .is_some_and(|v| claim_matches(v, pattern))
                {
                    return false;
                }
            }
        }
        true
    }
}

/// A claim matches when its string form does; an array when any element
/// does (`aud: [a, b]`, `scp: [..]`).
fn claim_matches(value: &serde_json::Value, pattern: &Regex) -> bool {
    match value {
        serde_json::Value::String(s) => pattern.is_match(s),
        serde_json::Value::Array(items) => items.iter().any(|v| claim_matches(v, pattern)),
        serde_json::Value::Null => false,
        other => pattern.is_match(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{Place, jwt};

    fn spec(yaml_json: serde_json::Value) -> MatchSpec {
        serde_json::from_value(yaml_json).expect("match spec")
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn matches(m: &Matcher, p: &Parts, host: &str) -> bool {
        let found = Place::default().find(p);
        m.is_match(&Subject {
            parts: p,
            host,
            credential: found.as_ref(),
        })
    }

    #[test]
    fn host_method_path_and_header_all_have_to_hold() {
        let m = Matcher::compile(
            &spec(serde_json::json!({
                "host": "*.example.com", "method": ["GET", "post"], "path": "^/v1/orders",
                "headers": {"x-tenant": "^acme$"}
            })),
            Presence::Any,
        )
        .expect("compiles");
        let ok = parts("POST", "/v1/orders/7", &[("x-tenant", "acme")]);
        assert!(matches(&m, &ok, "api.example.com"));
        assert!(!matches(&m, &ok, "api.other.com"), "host");
        assert!(
            !matches(
                &m,
                &parts("PUT", "/v1/orders", &[("x-tenant", "acme")]),
                "api.example.com"
            ),
            "method"
        );
        assert!(
            !matches(
                &m,
                &parts("GET", "/v2/orders", &[("x-tenant", "acme")]),
                "api.example.com"
            ),
            "path"
        );
        assert!(
            !matches(
                &m,
                &parts("GET", "/v1/orders", &[("x-tenant", "acme2")]),
                "api.example.com"
            ),
            "header"
        );
    }

    #[test]
    fn credential_presence_follows_the_default_unless_given() {
        let present = Matcher::compile(&MatchSpec::default(), Presence::Present).expect("compiles");
        let absent = Matcher::compile(&MatchSpec::default(), Presence::Absent).expect("compiles");
        let with = parts("GET", "/", &[("authorization", "Bearer opaque")]);
        let without = parts("GET", "/", &[]);
        assert!(matches(&present, &with, "h") && !matches(&present, &without, "h"));
        assert!(matches(&absent, &without, "h") && !matches(&absent, &with, "h"));
        let jwt_only = Matcher::compile(
            &spec(serde_json::json!({"credential": "jwt"})),
            Presence::Present,
        )
        .expect("compiles");
        assert!(
            !matches(&jwt_only, &with, "h"),
            "an opaque token is not a JWT"
        );
    }

    #[test]
    fn claims_match_strings_and_array_elements() {
        use base64::Engine;
        let token = format!(
            "{}.{}.sig",
            jwt::B64.encode(br#"{"alg":"HS256"}"#),
            jwt::B64.encode(br#"{"scope":"orders:write orders:read","aud":["a","b"]}"#)
        );
        let bearer = format!("Bearer {token}");
        let p = parts("GET", "/", &[("authorization", bearer.as_str())]);
        let m = Matcher::compile(
            &spec(serde_json::json!({"claims": {"scope": "orders:write", "aud": "^b$"}})),
            Presence::Present,
        )
        .expect("compiles");
        assert!(matches(&m, &p, "h"));
        let m = Matcher::compile(
            &spec(serde_json::json!({"claims": {"aud": "^c$"}})),
            Presence::Present,
        )
        .expect("compiles");
        assert!(!matches(&m, &p, "h"));
    }
}
