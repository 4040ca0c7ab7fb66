//! `Token`: a credential's value and, once someone asked, its decoded JWT.
//! Matching (`match.claims`, `credential: jwt`), perturbing (`expire`,
//! `scope`, `claims`) and recording (the claims before and after) all read
//! the same token of an exchange; it is decoded at most once for all of
//! them, and a token the proxy built from a JWT is never decoded at all.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use super::jwt::{self, Jwt};

/// A token as found in or put into a request. Compares, and shows in
/// `Debug`, by its text alone (its fingerprint: the text is a secret).
#[derive(Clone)]
pub struct Token {
    text: String,
    /// `Some(None)` once known not to be a JWT. Boxed: most tokens are
    /// never decoded, and a `Token` stays small where it is carried.
    jwt: OnceLock<Option<Box<Jwt>>>,
}

impl Token {
    /// A token whose JWT, if it is one, is decoded when first asked for.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            jwt: OnceLock::new(),
        }
    }

    /// The token `jwt` encodes to: `text` is its encoding, so the JWT is
    /// known without decoding. The signature is taken from `text`.
    pub fn encoded(text: String, mut jwt: Jwt) -> Self {
        if let Some((_, signature)) = text.rsplit_once('.') {
            signature.clone_into(&mut jwt.signature);
        }
        Self {
            text,
            jwt: OnceLock::from(Some(Box::new(jwt))),
        }
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The decoded JWT; `None` when the token is not one.
    pub fn jwt(&self) -> Option<&Jwt> {
        self.jwt
            .get_or_init(|| jwt::decode(&self.text).ok().map(Box::new))
            .as_deref()
    }

    /// The JWT, taken out of the token (decoded now if it was not yet), for
    /// its last reader: the recorder keeps its claims without copying them.
    /// A later `jwt()` decodes again.
    pub fn take_jwt(&mut self) -> Option<Jwt> {
        match self.jwt.take() {
            Some(known) => known.map(|jwt| *jwt),
            None => jwt::decode(&self.text).ok(),
        }
    }
}

impl Deref for Token {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Token {}

impl PartialEq<&str> for Token {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl fmt::Debug for Token {
    // The token is a secret: Debug shows its fingerprint only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", super::Fingerprint::of(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt_text(exp: u64) -> String {
        format!(
            "{}.{}.c2ln",
            jwt::B64.encode(br#"{"alg":"HS256"}"#),
            jwt::B64.encode(format!(r#"{{"sub":"ada","exp":{exp}}}"#))
        )
    }

    #[test]
    fn a_token_decodes_its_jwt_when_asked_and_keeps_it() {
        let token = Token::new(jwt_text(7));
        assert!(token.jwt.get().is_none(), "not decoded before asked");
        assert_eq!(token.jwt().and_then(|j| j.numeric("exp")), Some(7));
        assert!(std::ptr::eq(
            token.jwt().expect("jwt"),
            token.jwt().expect("jwt")
        ));
        assert!(Token::new("opaque").jwt().is_none());
    }

    #[test]
    fn an_encoded_token_knows_its_jwt_without_decoding() {
        let mut jwt = jwt::decode(&jwt_text(7)).expect("jwt");
        jwt.claims.insert("exp".into(), 9.into());
        let text = format!("{}.bmV3", jwt.signing_input());
        let token = Token::encoded(text.clone(), jwt);
        assert!(token.jwt.get().is_some(), "known without decoding");
        // What it knows is what decoding its text would give.
        assert_eq!(token.jwt(), jwt::decode(&text).ok().as_ref());
    }

    #[test]
    fn the_jwt_taken_out_is_the_one_known_or_decoded() {
        let mut jwt = jwt::decode(&jwt_text(7)).expect("jwt");
        jwt.claims.insert("exp".into(), 9.into());
        let text = format!("{}.bmV3", jwt.signing_input());
        let mut known = Token::encoded(text, jwt);
        assert_eq!(known.take_jwt().and_then(|j| j.numeric("exp")), Some(9));
        assert!(known.jwt.get().is_none(), "taken out");
        assert_eq!(known.jwt().and_then(|j| j.numeric("exp")), Some(9));
        let mut fresh = Token::new(jwt_text(7));
        assert_eq!(fresh.take_jwt().and_then(|j| j.numeric("exp")), Some(7));
        assert_eq!(Token::new("opaque").take_jwt(), None);
    }

    #[test]
    fn tokens_compare_and_print_by_text_only() {
        let decoded = Token::new(jwt_text(7));
        let _ = decoded.jwt();
        assert_eq!(decoded, Token::new(jwt_text(7)));
        assert_eq!(Token::new("abc"), "abc");
        let shown = format!("{:?}", Token::new("secret-value"));
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.starts_with("Token(sha256:"), "{shown}");
    }
}
