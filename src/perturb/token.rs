//! The token-level mutations of SPEC section 5: `expire`, `scope`,
//! `claims` and the `corrupt` modes that change the token itself. Each takes
//! a token and gives the token to send; the header-shape modes (`scheme`,
//! `empty`, `duplicate`, `lowercase_scheme`) work on the request and live
//! with the actions.

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};

use super::sign::{Key, KeyError};
use crate::credential::Token;
use crate::credential::jwt::{B64, Jwt};

/// What a JWT mutation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutated {
    /// The token to send instead, and whether it was re-signed (else its
    /// old signature no longer matches: the token is also tampered).
    Jwt { token: Token, was_resigned: bool },
    /// The credential is not a JWT: the action cannot apply (`skipped`).
    NotJwt,
}

/// How `scope` changes the scope claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeChange {
    /// Replace the scopes with these (space-separated in a string claim).
    Set(String),
    /// Add these scopes (missing ones only).
    Add(Vec<String>),
    /// Remove these scopes.
    Remove(Vec<String>),
}

/// Lets `change` edit a copy of `token`'s JWT and encodes it again: signed
/// with `key` when given, else with the old signature kept.
pub fn rewrite(
    token: &Token,
    key: Option<&Key>,
    change: impl FnOnce(&mut Jwt),
) -> Result<Mutated, KeyError> {
    let Some(decoded) = token.jwt() else {
        return Ok(Mutated::NotJwt);
    };
    let mut decoded = decoded.clone();
    change(&mut decoded);
    let (text, was_resigned) = match key {
        Some(key) => (key.sign(&mut decoded)?, true),
        None => (decoded.encode_keeping_signature(), false),
    };
    Ok(Mutated::Jwt {
        token: Token::encoded(text, decoded),
        was_resigned,
    })
}

/// `expire`: `exp` becomes `now` minus `by`. `iat` and `nbf`, where they
/// would not lie before the new `exp`, move back by as much as `exp` did, so
/// the token keeps its lifetime and stays internally consistent.
pub fn expire(
    token: &Token,
    by: Duration,
    now_secs: i64,
    key: Option<&Key>,
) -> Result<Mutated, KeyError> {
    let by = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
    let new_exp = now_secs.saturating_sub(by);
    rewrite(token, key, |jwt| {
        let old_exp = jwt.numeric("exp");
        let shift = old_exp.map_or(0, |old| new_exp.saturating_sub(old));
        for claim in ["iat", "nbf"] {
            if let Some(value) = jwt.numeric(claim)
                && value >= new_exp
            {
                let moved = if shift < 0 {
                    value.saturating_add(shift)
                } else {
                    new_exp.saturating_sub(3600)
                };
                let moved = moved.min(new_exp.saturating_sub(1));
                jwt.claims.insert(claim.to_string(), Value::from(moved));
            }
        }
        jwt.claims.insert("exp".to_string(), Value::from(new_exp));
    })
}

/// `scope`: changes the scope claim, `claim` when given, else `scope`, else
/// `scp` when only that is present. A string claim stays a space-separated
/// string, an array stays an array.
pub fn scope(
    token: &Token,
    change: &ScopeChange,
    claim: Option<&str>,
    key: Option<&Key>,
) -> Result<Mutated, KeyError> {
    rewrite(token, key, |jwt| {
        let name = claim.map_or_else(
            || {
                if !jwt.claims.contains_key("scope") && jwt.claims.contains_key("scp") {
                    "scp".to_string()
                } else {
                    "scope".to_string()
                }
            },
            str::to_string,
        );
        let (mut scopes, is_array) = match jwt.claims.get(&name) {
            Some(Value::Array(items)) => (
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
                true,
            ),
            Some(Value::String(s)) => (s.split_whitespace().map(str::to_string).collect(), false),
            _ => (Vec::new(), false),
        };
        match change {
            ScopeChange::Set(set) => scopes = set.split_whitespace().map(str::to_string).collect(),
            ScopeChange::Add(add) => {
                for scope in add {
                    if !scopes.contains(scope) {
                        scopes.push(scope.clone());
                    }
                }
            }
            ScopeChange::Remove(remove) => scopes.retain(|s| !remove.contains(s)),
        }
        let value = if is_array {
            Value::Array(scopes.into_iter().map(Value::String).collect())
        } else {
            Value::String(scopes.join(" "))
        };
        jwt.claims.insert(name, value);
    })
}

/// `claims`: sets and removes any claims.
pub fn claims(
    token: &Token,
    set: &Map<String, Value>,
    remove: &[String],
    key: Option<&Key>,
) -> Result<Mutated, KeyError> {
    rewrite(token, key, |jwt| {
        for name in remove {
            jwt.claims.shift_remove(name);
        }
        for (name, value) in set {
            jwt.claims.insert(name.clone(), value.clone());
        }
    })
}

/// `corrupt: signature`: flips bits in the signature, keeping it valid
/// base64url of the same length, so only the cryptographic check fails.
pub fn flip_signature(token: &Token) -> Mutated {
    let Some(decoded) = token.jwt() else {
        return Mutated::NotJwt;
    };
    let mut signature = match B64.decode(&decoded.signature) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        // No signature to flip (alg none) or one that is not base64url:
        // make one that is wrong for certain.
        _ => vec![0u8; 32],
    };
    for byte in signature.iter_mut().step_by(7) {
        *byte ^= 0x5a;
    }
    let (input, _) = token
        .rsplit_once('.')
        .expect("a decoded JWT has three parts");
    Mutated::Jwt {
        token: Token::encoded(
            format!("{input}.{}", B64.encode(signature)),
            decoded.clone(),
        ),
        was_resigned: false,
    }
}

/// `corrupt: alg_none`: the header's `alg` becomes `none` and the signature
/// is empty; the token ends with `.` (SPEC section 4).
pub fn alg_none(token: &Token) -> Mutated {
    let Some(decoded) = token.jwt() else {
        return Mutated::NotJwt;
    };
    let mut decoded = decoded.clone();
    decoded
        .header
        .insert("alg".to_string(), Value::String("none".to_string()));
    Mutated::Jwt {
        token: Token::encoded(decoded.encode_with(""), decoded),
        was_resigned: false,
    }
}

/// `corrupt: truncate`: the first half of the token.
pub fn truncate(token: &str) -> String {
    let half = token.chars().count() / 2;
    token.chars().take(half).collect()
}

/// `corrupt: garbage`: a token of random bytes, base64url.
pub fn garbage(random: &[u8]) -> String {
    B64.encode(random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::jwt;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn token(claims: &str) -> Token {
        Token::new(format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(claims.as_bytes()),
            B64.encode(b"original-signature")
        ))
    }

    fn claims_of(token: &str) -> Map<String, Value> {
        jwt::decode(token).expect("a JWT").claims
    }

    fn mutated(m: Mutated) -> (Token, bool) {
        match m {
            Mutated::Jwt {
                token,
                was_resigned,
            } => (token, was_resigned),
            Mutated::NotJwt => panic!("expected a JWT"),
        }
    }

    #[test]
    fn expire_puts_exp_in_the_past_and_keeps_iat_and_nbf_before_it() {
        let t = token(&format!(
            r#"{{"sub":"a","iat":{},"nbf":{},"exp":{}}}"#,
            NOW - 60,
            NOW - 60,
            NOW + 3540
        ));
        let (out, was_resigned) =
            mutated(expire(&t, Duration::from_secs(3600), NOW, None).expect("ok"));
        let c = claims_of(&out);
        assert_eq!(c["exp"], NOW - 3600);
        assert!(c["iat"].as_i64().expect("iat") < NOW - 3600);
        assert!(c["nbf"].as_i64().expect("nbf") < NOW - 3600);
        assert_eq!(
            c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
            3600,
            "lifetime kept"
        );
        assert!(!was_resigned);
        assert!(
            out.ends_with(&B64.encode(b"original-signature")),
            "old signature kept"
        );
    }

    #[test]
    fn expire_re_signs_with_a_key() {
        let key = Key::from_secret("HS256", b"k", None).expect("key");
        let t = token(r#"{"exp":1}"#);
        let (out, was_resigned) =
            mutated(expire(&t, Duration::from_secs(60), NOW, Some(&key)).expect("ok"));
        assert!(was_resigned);
        assert!(!out.ends_with(&B64.encode(b"original-signature")));
    }

    #[test]
    fn scope_set_add_and_remove_keep_the_claims_form() {
        let t = token(r#"{"scope":"orders:read orders:write"}"#);
        let (out, _) = mutated(
            scope(
                &t,
                &ScopeChange::Remove(vec!["orders:write".into()]),
                None,
                None,
            )
            .expect("ok"),
        );
        assert_eq!(claims_of(&out)["scope"], "orders:read");
        let (out, _) =
            mutated(scope(&t, &ScopeChange::Add(vec!["admin".into()]), None, None).expect("ok"));
        assert_eq!(claims_of(&out)["scope"], "orders:read orders:write admin");
        let t = token(r#"{"scp":["a","b"]}"#);
        let (out, _) = mutated(scope(&t, &ScopeChange::Set("c".into()), None, None).expect("ok"));
        assert_eq!(claims_of(&out)["scp"], serde_json::json!(["c"]));
        assert!(
            claims_of(&out).get("scope").is_none(),
            "scp used when scope is absent"
        );
    }

    #[test]
    fn claims_sets_and_removes_and_keeps_the_rest_in_order() {
        let t = token(r#"{"iss":"a","aud":"b","sub":"c"}"#);
        let set: Map<String, Value> =
            serde_json::from_str(r#"{"aud":"other","tenant":"t2"}"#).expect("json");
        let (out, _) = mutated(claims(&t, &set, &["sub".to_string()], None).expect("ok"));
        let c = claims_of(&out);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["iss", "aud", "tenant"]);
        assert_eq!(c["aud"], "other");
    }

    #[test]
    fn flip_signature_changes_only_the_signature_and_keeps_it_base64url() {
        let t = token(r#"{"sub":"a"}"#);
        let (out, _) = mutated(flip_signature(&t));
        let (input, sig) = out.rsplit_once('.').expect("parts");
        assert_eq!(input, t.rsplit_once('.').expect("parts").0);
        assert_ne!(sig, B64.encode(b"original-signature"));
        assert_eq!(
            B64.decode(sig).expect("base64url").len(),
            b"original-signature".len()
        );
    }

    #[test]
    fn alg_none_empties_the_signature() {
        let (out, _) = mutated(alg_none(&token(r#"{"sub":"a"}"#)));
        assert!(out.ends_with('.'));
        assert_eq!(jwt::decode(&out).expect("jwt").alg(), Some("none"));
    }

    #[test]
    fn jwt_mutations_of_an_opaque_token_say_it_is_not_a_jwt() {
        let opaque = Token::new("opaque");
        assert_eq!(flip_signature(&opaque), Mutated::NotJwt);
        assert_eq!(alg_none(&opaque), Mutated::NotJwt);
        assert_eq!(
            expire(&opaque, Duration::from_secs(1), NOW, None),
            Ok(Mutated::NotJwt)
        );
        assert_eq!(truncate("abcdef"), "abc");
    }

    proptest! {
        #[test]
        fn no_mutation_panics_on_any_token(t in ".*", by in 0u64..u64::MAX) {
            let t = Token::new(t);
            let _ = expire(&t, Duration::from_secs(by), NOW, None);
            let _ = scope(&t, &ScopeChange::Add(vec!["x".into()]), None, None);
            let _ = claims(&t, &Map::new(), &["sub".into()], None);
            let _ = flip_signature(&t);
            let _ = alg_none(&t);
            let _ = truncate(&t);
        }

        #[test]
        fn no_mutation_panics_on_jwt_shaped_tokens(
            claims_json in r#"\{("[a-z]{1,5}":(-?[0-9]{1,20}|"[a-z ]{0,8}"|\[\]|null),?){0,4}\}"#,
        ) {
            let t = token(&claims_json);
            let _ = expire(&t, Duration::from_secs(3600), NOW, None);
            let _ = scope(&t, &ScopeChange::Remove(vec!["a".into()]), None, None);
            let _ = flip_signature(&t);
        }
    }
}
