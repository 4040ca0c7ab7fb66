//! What each fuzz target does (fuzz/fuzz_targets/), here so that the
//! inputs the fuzzer found are replayed by `cargo test` too
//! (tests/integration/fuzz_regressions.rs). Each function takes raw bytes,
//! must not panic, and asserts the property its input must keep.

use std::path::Path;
use std::time::Duration;

use crate::credential::{Token, jwt};
use crate::perturb::token::{self, Mutated, ScopeChange};

/// A fixed "now" so that runs repeat.
const NOW: i64 = 1_800_000_000;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A rule file: parsing and compiling never panic, whatever the text.
pub fn rule_file(data: &[u8]) {
    let text = text(data);
    let no_env = |_: &str| None;
    if let Ok(parsed) = crate::rules::load::parse_text(Path::new("fuzz.yaml"), &text, &no_env) {
        let _ = crate::rules::set::RuleSet::compile(&[parsed], &no_env, 1);
    }
}

/// JWT decoding: a token that decodes re-encodes (keeping its signature)
/// to one that decodes to the same header and claims.
pub fn jwt(data: &[u8]) {
    let token = text(data);
    if let Ok(decoded) = jwt::decode(&token) {
        let again =
            jwt::decode(&decoded.encode_keeping_signature()).expect("a re-encoded JWT decodes");
        assert_eq!(again.header, decoded.header);
        assert_eq!(again.claims, decoded.claims);
    }
}

/// Each mutation: a JWT stays a JWT, with the property the mutation
/// promises; anything else is `NotJwt`, never a panic.
pub fn mutations(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let token = Token::new(text(rest));
    let is_jwt = jwt::decode(&token).is_ok();
    let mutated = match which % 7 {
        0 => token::expire(&token, Duration::from_secs(3600), NOW, None).ok(),
        1 => token::scope(&token, &ScopeChange::Set("read".into()), None, None).ok(),
        2 => token::scope(
            &token,
            &ScopeChange::Remove(vec!["write".into()]),
            None,
            None,
        )
        .ok(),
        3 => {
            let mut set = serde_json::Map::new();
            set.insert("sub".into(), "fuzz".into());
            token::claims(&token, &set, &["exp".to_string()], None).ok()
        }
        4 => Some(token::flip_signature(&token)),
        5 => Some(token::alg_none(&token)),
        _ => {
            let half = token::truncate(&token);
            assert!(half.chars().count() <= token.chars().count());
            None
        }
    };
    match mutated {
        Some(Mutated::Jwt { token: out, .. }) => {
            assert!(is_jwt, "only a JWT is mutated");
            let decoded = jwt::decode(&out).expect("a mutated JWT is still a JWT");
            assert_eq!(
                out.jwt(),
                Some(&decoded),
                "the JWT a mutated token carries is what its text decodes to"
            );
            match which % 7 {
                0 => assert_eq!(decoded.numeric("exp"), Some(NOW - 3600)),
                3 => assert!(!decoded.claims.contains_key("exp")),
                4 => assert_ne!(out, token, "a flipped signature differs"),
                5 => assert_eq!(decoded.alg(), Some("none")),
                _ => {}
            }
        }
        Some(Mutated::NotJwt) => assert!(!is_jwt, "a JWT was not mutated"),
        None => {}
    }
}

/// CONNECT authorities and absolute URIs: a target that is accepted has a
/// host and a port that read back the same.
pub fn targets(data: &[u8]) {
    use crate::proxy::target::{absolute_target, connect_target};
    let Ok(uri) = http::Uri::try_from(data) else {
        return;
    };
    if let Ok(target) = connect_target(&uri) {
        assert!(!target.host.is_empty());
        assert_ne!(target.port, 0);
        let again: http::Uri = format!("{}:{}", target.authority.host(), target.port)
            .parse()
            .expect("host:port parses again");
        let back = connect_target(&again).expect("and is accepted again");
        assert_eq!((back.host, back.port), (target.host, target.port));
    }
    if let Ok(Some(target)) = absolute_target(&uri) {
        assert!(matches!(uri.scheme_str(), Some("http" | "https")));
        assert_eq!(Some(target.host), uri.host());
    }
}

/// Redaction: a credential of realistic length never survives masking of
/// a text or a body that contains it.
pub fn redaction(data: &[u8]) {
    use crate::record::Credential;
    use crate::record::redact::{Masker, stand_in};
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let secret = text(&rest[..len]);
    let body = &rest[len..];
    let credential = Credential {
        place: crate::credential::place::Place::default(),
        before: Some(Token::new(secret.as_str())),
        after: None,
        resigned: false,
    };
    let masker = Masker::new(Some(&credential), None);
    let body_text = text(body);
    let masked_text = masker.text(&body_text);
    let masked_body = masker.bytes(body, true);
    // A short secret, or one that is part of its own stand-in, can appear
    // by chance; a token cannot.
    let is_checkable = secret.trim().len() >= 8 && !stand_in(&secret).contains(&secret);
    if is_checkable {
        assert!(
            !masked_text.contains(&secret),
            "the secret survived in text"
        );
        let found = memchr::memmem::find(&masked_body, secret.as_bytes());
        assert!(found.is_none(), "the secret survived in a body");
    }
}
