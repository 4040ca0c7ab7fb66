//! The actions of SPEC section 5, compiled, and `apply`: what one action does
//! to the credential in a request's head. The body is never touched here;
//! `token_ttl` rewrites a response body through `rewrite_expires_in`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderMap, HeaderValue};
use http::request::Parts;
use serde_json::{Map, Value};

use super::sign::{Key, KeyError};
use super::token::{self, Mutated, ScopeChange};
use crate::credential::jwt::{B64, Jwt};
use crate::credential::{Found, Place, Token};

/// The `corrupt` modes of SPEC section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptMode {
    Signature,
    Truncate,
    AlgNone,
    Garbage,
    Scheme,
    Empty,
    Duplicate,
    LowercaseScheme,
}

/// A credential value from a rule file; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", crate::credential::Fingerprint::of(&self.0))
    }
}

/// A compiled action.
#[derive(Debug, Clone)]
pub enum Action {
    Strip,
    Replace(Secret),
    Expire {
        by: Duration,
        key: Option<Arc<Key>>,
    },
    Scope {
        change: ScopeChange,
        claim: Option<String>,
        key: Option<Arc<Key>>,
    },
    Claims {
        set: Map<String, Value>,
        remove: Vec<String>,
        key: Option<Arc<Key>>,
    },
    Corrupt(CorruptMode),
    Respond(Synthetic),
    Inject(Injection),
    TokenTtl {
        expires_in: i64,
    },
    Pass,
}

/// What `inject` adds.
#[derive(Debug, Clone)]
pub enum Injection {
    Token(Secret),
    Mint {
        key: Arc<Key>,
        ttl: Duration,
        claims: Map<String, Value>,
    },
}

/// An answer authfault makes itself (`respond`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Synthetic {
    /// The RFC 6750 §3.1 answer for `status`: 403 is `insufficient_scope`,
    /// anything else `invalid_token`, with `WWW-Authenticate` and a JSON body.
    pub fn rfc6750(status: StatusCode) -> Self {
        let (error, description) = if status == StatusCode::FORBIDDEN {
            (
                "insufficient_scope",
                "The request requires higher privileges than provided by the access token",
            )
        } else {
            (
                "invalid_token",
                "The access token expired, was revoked, or is malformed (authfault)",
            )
        };
        let mut headers = HeaderMap::new();
        let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(http::header::WWW_AUTHENTICATE, value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body =
            serde_json::json!({ "error": error, "error_description": description }).to_string();
        Self {
            status,
            headers,
            body: Bytes::from(body),
        }
    }
}

/// What applying an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Forward the (possibly changed) request. `after` is the token now in
    /// the place, `None` when the place is empty.
    Forward {
        after: Option<Token>,
        was_resigned: bool,
    },
    /// Answer at once; the upstream is not contacted.
    Respond(Synthetic),
    /// The action could not apply to this credential (verdict `skipped`).
    Skipped(String),
}

/// What `apply` needs besides the request.
pub struct Context<'a> {
    /// Now, in seconds since the epoch (for `exp`, `iat`, `nbf`).
    pub now_secs: i64,
    /// Fills a buffer with random bytes (`garbage`, `jti`).
    pub random: &'a mut dyn FnMut(&mut [u8]),
}

/// Applies `action` to the credential at `place` in `parts`. `found` is what
/// the place held before.
pub fn apply(
    action: &Action,
    place: &Place,
    parts: &mut Parts,
    found: Option<&Found>,
    cx: &mut Context<'_>,
) -> Applied {
    match run(action, place, parts, found, cx) {
        Ok(applied) => applied,
        Err(reason) => Applied::Skipped(reason),
    }
}

/// The request goes on with `after` in the credential's place.
fn forward(after: Option<Token>, was_resigned: bool) -> Result<Applied, String> {
    Ok(Applied::Forward {
        after,
        was_resigned,
    })
}

/// Puts `token` in the credential's place and forwards.
fn put(
    place: &Place,
    parts: &mut Parts,
    token: Token,
    was_resigned: bool,
) -> Result<Applied, String> {
    place.set(parts, &token).map_err(|e| e.to_string())?;
    forward(Some(token), was_resigned)
}

/// The token of a JWT mutation; an opaque credential cannot take it.
fn jwt_only(mutated: Mutated) -> Result<(Token, bool), String> {
    match mutated {
        Mutated::Jwt {
            token,
            was_resigned,
        } => Ok((token, was_resigned)),
        Mutated::NotJwt => Err("the credential is not a JWT".to_string()),
    }
}

fn run(
    action: &Action,
    place: &Place,
    parts: &mut Parts,
    found: Option<&Found>,
    cx: &mut Context<'_>,
) -> Result<Applied, String> {
    let token = found.map(|f| &f.token);
    let need = |what: &str| -> Result<&Token, String> {
        token.ok_or_else(|| format!("no credential to {what}"))
    };
    let mutated = |m: Result<Mutated, KeyError>| m.map_err(|e| e.to_string()).and_then(jwt_only);

    match action {
        Action::Strip => {
            place.remove(parts).map_err(|e| e.to_string())?;
            forward(None, false)
        }
        Action::Replace(secret) => put(place, parts, Token::new(secret.0.as_str()), false),
        Action::Expire { by, key } => {
            let (new, was_resigned) = mutated(token::expire(
                need("expire")?,
                *by,
                cx.now_secs,
                key.as_deref(),
            ))?;
            put(place, parts, new, was_resigned)
        }
        Action::Scope { change, claim, key } => {
            let (new, was_resigned) = mutated(token::scope(
                need("change")?,
                change,
                claim.as_deref(),
                key.as_deref(),
            ))?;
            put(place, parts, new, was_resigned)
        }
        Action::Claims {
            set: claims,
            remove,
            key,
        } => {
            let (new, was_resigned) = mutated(token::claims(
                need("change")?,
                claims,
                remove,
                key.as_deref(),
            ))?;
            put(place, parts, new, was_resigned)
        }
        Action::Corrupt(mode) => corrupt(*mode, place, parts, found, cx),
        Action::Respond(synthetic) => Ok(Applied::Respond(synthetic.clone())),
        Action::Inject(Injection::Token(secret)) => {
            put(place, parts, Token::new(secret.0.as_str()), false)
        }
        Action::Inject(Injection::Mint { key, ttl, claims }) => {
            let minted = mint(key, *ttl, claims, cx).map_err(|e| e.to_string())?;
            put(place, parts, minted, true)
        }
        Action::TokenTtl { .. } | Action::Pass => forward(token.cloned(), false),
    }
}

fn corrupt(
    mode: CorruptMode,
    place: &Place,
    parts: &mut Parts,
    found: Option<&Found>,
    cx: &mut Context<'_>,
) -> Result<Applied, String> {
    let found = found.ok_or_else(|| "no credential to corrupt".to_string())?;
    let token = &found.token;
    // The header-shape modes rewrite `Authorization` around its token.
    let scheme = || {
        if !place.has_scheme() {
            return Err(
                format!("corrupt: {mode:?} applies to the Authorization header only")
                    .to_lowercase(),
            );
        }
        Ok(found.scheme.clone().unwrap_or_else(|| "Bearer".to_string()))
    };
    let raw =
        |parts: &mut Parts, value: &str| place.set_raw(parts, value).map_err(|e| e.to_string());
    match mode {
        CorruptMode::Signature => put(
            place,
            parts,
            jwt_only(token::flip_signature(token))?.0,
            false,
        ),
        CorruptMode::AlgNone => put(place, parts, jwt_only(token::alg_none(token))?.0, false),
        CorruptMode::Truncate => put(place, parts, Token::new(token::truncate(token)), false),
        CorruptMode::Garbage => {
            let mut bytes = [0u8; 24];
            (cx.random)(&mut bytes);
            put(place, parts, Token::new(token::garbage(&bytes)), false)
        }
        CorruptMode::Scheme => {
            let other = if scheme()?.eq_ignore_ascii_case("basic") {
                "Bearer"
            } else {
                "Basic"
            };
            raw(parts, &format!("{other} {}", token.as_str()))?;
            forward(Some(token.clone()), false)
        }
        CorruptMode::Empty => {
            raw(parts, &scheme()?)?;
            forward(None, false)
        }
        CorruptMode::LowercaseScheme => {
            raw(
                parts,
                &format!("{} {}", scheme()?.to_ascii_lowercase(), token.as_str()),
            )?;
            forward(Some(token.clone()), false)
        }
        CorruptMode::Duplicate => {
            let Place::Header(name) = place else {
                return Err("corrupt: duplicate applies to a header credential only".to_string());
            };
            let value = parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| "no header to duplicate".to_string())?;
            place.append_raw(parts, &value).map_err(|e| e.to_string())?;
            forward(Some(token.clone()), false)
        }
    }
}

/// `inject: { mint }`: a fresh JWT with `iat` and `nbf` now, `exp` after
/// `ttl`, a random `jti`, and the rule's claims.
pub fn mint(
    key: &Key,
    ttl: Duration,
    claims: &Map<String, Value>,
    cx: &mut Context<'_>,
) -> Result<Token, KeyError> {
    use base64::Engine;
    let mut jti = [0u8; 16];
    (cx.random)(&mut jti);
    let mut header = Map::new();
    header.insert("alg".to_string(), Value::String(key.alg_name()));
    header.insert("typ".to_string(), Value::String("JWT".to_string()));
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut body = Map::new();
    body.insert("iat".to_string(), Value::from(cx.now_secs));
    body.insert("nbf".to_string(), Value::from(cx.now_secs));
    body.insert(
        "exp".to_string(),
        Value::from(cx.now_secs.saturating_add(ttl)),
    );
    body.insert("jti".to_string(), Value::String(B64.encode(jti)));
    for (name, value) in claims {
        body.insert(name.clone(), value.clone());
    }
    let mut jwt = Jwt {
        header,
        claims: body,
        signature: String::new(),
    };
    let text = key.sign(&mut jwt)?;
    Ok(Token::encoded(text, jwt))
}

/// `token_ttl`: the token endpoint's JSON answer with `expires_in` set to
/// `expires_in`; `None` when the body is not a JSON object with that member
/// (then it passes unchanged). Other members keep their order and values.
pub fn rewrite_expires_in(body: &[u8], expires_in: i64) -> Option<Vec<u8>> {
    let mut object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        _ => return None,
    };
    let slot = object.get_mut("expires_in")?;
    *slot = Value::from(expires_in);
    serde_json::to_vec(&object).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::jwt;
    use base64::Engine;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get("/v1?api_key=k1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn run_action(action: &Action, place: &Place, p: &mut Parts) -> Applied {
        let found = place.find(p);
        let mut random = |buf: &mut [u8]| buf.fill(7);
        let mut cx = Context {
            now_secs: 1_800_000_000,
            random: &mut random,
        };
        apply(action, place, p, found.as_ref(), &mut cx)
    }

    fn jwt_token() -> String {
        format!(
            "{}.{}.{}",
            jwt::B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            jwt::B64.encode(br#"{"sub":"a","exp":1800003600}"#),
            jwt::B64.encode(b"sig")
        )
    }

    #[test]
    fn strip_and_replace_work_on_each_place() {
        let places = [
            Place::default(),
            Place::Query("api_key".into()),
            Place::Cookie("session".into()),
        ];
        for place in places {
            let mut p = parts(&[("authorization", "Bearer t1"), ("cookie", "session=c1")]);
            assert!(matches!(
                run_action(&Action::Strip, &place, &mut p),
                Applied::Forward { after: None, .. }
            ));
            assert!(place.find(&p).is_none(), "{place}");
            let mut p = parts(&[("authorization", "Bearer t1"), ("cookie", "session=c1")]);
            run_action(&Action::Replace(Secret("rotated".into())), &place, &mut p);
            assert_eq!(
                place.find(&p).expect("replaced").token,
                "rotated",
                "{place}"
            );
        }
    }

    #[test]
    fn expire_of_an_opaque_token_is_skipped_and_of_a_jwt_applies() {
        let action = Action::Expire {
            by: Duration::from_secs(3600),
            key: None,
        };
        let mut p = parts(&[("authorization", "Bearer opaque")]);
        assert!(matches!(
            run_action(&action, &Place::default(), &mut p),
            Applied::Skipped(_)
        ));
        assert_eq!(
            p.headers["authorization"], "Bearer opaque",
            "unchanged when skipped"
        );
        let bearer = format!("Bearer {}", jwt_token());
        let mut p = parts(&[("authorization", &bearer)]);
        run_action(&action, &Place::default(), &mut p);
        let after = Place::default().find(&p).expect("a token");
        assert_eq!(
            jwt::decode(&after.token).expect("jwt").numeric("exp"),
            Some(1_800_000_000 - 3600)
        );
    }

    #[test]
    fn the_header_shape_corruptions_break_exactly_what_they_say() {
        let place = Place::default();
        let cases = [
            (CorruptMode::Scheme, "Basic t1"),
            (CorruptMode::Empty, "Bearer"),
            (CorruptMode::LowercaseScheme, "bearer t1"),
        ];
        for (mode, expected) in cases {
            let mut p = parts(&[("authorization", "Bearer t1")]);
            run_action(&Action::Corrupt(mode), &place, &mut p);
            assert_eq!(p.headers["authorization"], expected, "{mode:?}");
        }
        let mut p = parts(&[("authorization", "Bearer t1")]);
        run_action(&Action::Corrupt(CorruptMode::Duplicate), &place, &mut p);
        assert_eq!(p.headers.get_all("authorization").iter().count(), 2);
        let mut p = parts(&[]);
        assert!(matches!(
            run_action(
                &Action::Corrupt(CorruptMode::Scheme),
                &Place::Query("api_key".into()),
                &mut p
            ),
            Applied::Skipped(_)
        ));
    }

    #[test]
    fn garbage_and_truncate_replace_the_token() {
        let mut p = parts(&[("authorization", "Bearer abcdefgh")]);
        run_action(
            &Action::Corrupt(CorruptMode::Truncate),
            &Place::default(),
            &mut p,
        );
        assert_eq!(p.headers["authorization"], "Bearer abcd");
        run_action(
            &Action::Corrupt(CorruptMode::Garbage),
            &Place::default(),
            &mut p,
        );
        assert_eq!(
            p.headers["authorization"],
            format!("Bearer {}", B64.encode([7u8; 24]))
        );
    }

    #[test]
    fn a_minted_jwt_is_valid_for_its_ttl_and_carries_the_claims() {
        let key = Arc::new(Key::from_secret("HS256", b"k", Some("kid-1".into())).expect("key"));
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"svc","scope":"a b"}"#).expect("json");
        let action = Action::Inject(Injection::Mint {
            key,
            ttl: Duration::from_secs(300),
            claims,
        });
        let mut p = parts(&[]);
        let applied = run_action(&action, &Place::default(), &mut p);
        assert!(matches!(
            applied,
            Applied::Forward {
                was_resigned: true,
                ..
            }
        ));
        let token = Place::default().find(&p).expect("injected").token;
        let decoded = jwt::decode(&token).expect("jwt");
        assert_eq!(decoded.numeric("exp"), Some(1_800_000_300));
        assert_eq!(decoded.numeric("iat"), Some(1_800_000_000));
        assert_eq!(decoded.claims["scope"], "a b");
        assert_eq!(decoded.header["kid"], "kid-1");
        assert!(decoded.claims.contains_key("jti"));
        let (input, sig) = token.rsplit_once('.').expect("parts");
        let verifying = jsonwebtoken::DecodingKey::from_secret(b"k").expect("key");
        assert!(
            jsonwebtoken::crypto::verify(
                sig,
                input.as_bytes(),
                &verifying,
                jsonwebtoken::Algorithm::HS256
            )
            .expect("verify")
        );
    }

    #[test]
    fn the_default_respond_is_an_rfc6750_answer() {
        let s = Synthetic::rfc6750(StatusCode::UNAUTHORIZED);
        assert_eq!(s.status, 401);
        let challenge = s.headers["www-authenticate"].to_str().expect("ascii");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        let s = Synthetic::rfc6750(StatusCode::FORBIDDEN);
        assert!(
            s.headers["www-authenticate"]
                .to_str()
                .expect("ascii")
                .contains("insufficient_scope")
        );
    }

    #[test]
    fn token_ttl_changes_expires_in_and_nothing_else() {
        let body = br#"{"access_token":"x","expires_in":3600,"token_type":"Bearer"}"#;
        let out = rewrite_expires_in(body, 5).expect("rewritten");
        assert_eq!(
            out,
            br#"{"access_token":"x","expires_in":5,"token_type":"Bearer"}"#
        );
        assert_eq!(rewrite_expires_in(b"not json", 5), None);
        assert_eq!(rewrite_expires_in(br#"{"a":1}"#, 5), None);
    }
}
