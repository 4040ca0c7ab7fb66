//! JWTs (RFC 7519) decoded without verifying: header, claims and signature
//! as they arrived. One implementation that matching (`match.claims`),
//! perturbing (`expire`, `scope`, `claims`, `corrupt`) and recording (claims
//! instead of secrets) share. Signing is `perturb::sign`'s job.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// base64url without padding when encoding (RFC 7515 §2), padding optional
/// when decoding: some issuers pad anyway.
pub const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a token is not a JWT. Never carries the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a JWT has three dot-separated parts; this token has {0}")]
    Parts(usize),
    #[error("the {0} is not base64url")]
    Base64(&'static str),
    #[error("the {0} is not a JSON object")]
    Json(&'static str),
}

/// A decoded JWT. `header` and `claims` keep their member order.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// The signature segment, base64url, as received (empty for `alg: none`).
    pub signature: String,
}

/// Decodes `token` without checking its signature.
pub fn decode(token: &str) -> Result<Jwt, DecodeError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DecodeError::Parts(token.split('.').count()));
    };
    Ok(Jwt {
        header: object(header, "header")?,
        claims: object(claims, "payload")?,
        signature: signature.to_string(),
    })
}

/// Now, in seconds since the epoch: the unit of `exp`, `iat` and `nbf`.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `token` decodes as a JWT.
pub fn is_jwt(token: &str) -> bool {
    decode(token).is_ok()
}

fn object(segment: &str, what: &'static str) -> Result<Map<String, Value>, DecodeError> {
    let bytes = B64.decode(segment).map_err(|_| DecodeError::Base64(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DecodeError::Json(what)),
    }
}

impl Jwt {
    /// The `alg` of the header, if it is a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// A numeric claim such as `exp`, `iat` or `nbf`, in seconds.
    pub fn numeric(&self, claim: &str) -> Option<i64> {
        let value = self.claims.get(claim)?;
        value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
    }

    /// `header.payload`, base64url: the input the signature covers.
    pub fn signing_input(&self) -> String {
        let header = serde_json::to_vec(&self.header).expect("a JSON map serializes");
        let claims = serde_json::to_vec(&self.claims).expect("a JSON map serializes");
        let mut out = B64.encode(header);
        out.push('.');
        out.push_str(&B64.encode(claims));
        out
    }

    /// The token with `signature` (base64url) appended.
    pub fn encode_with(&self, signature: &str) -> String {
        let mut out = self.signing_input();
        out.push('.');
        out.push_str(signature);
        out
    }

    /// The token re-encoded with its original signature: after a claim
    /// changed, that signature no longer holds (a tampered token).
    pub fn encode_keeping_signature(&self) -> String {
        self.encode_with(&self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // {"alg":"HS256","typ":"JWT","kid":"k1"}.{"sub":"ada","exp":1764315600,"scope":"orders:read"}
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJzdWIiOiJhZGEiLCJleHAiOjE3NjQzMTU2MDAsInNjb3BlIjoib3JkZXJzOnJlYWQifQ.c2lnbmF0dXJl";

    #[test]
    fn a_jwt_decodes_into_header_claims_and_signature() {
        let jwt = decode(TOKEN).expect("decodes");
        assert_eq!(jwt.alg(), Some("HS256"));
        assert_eq!(jwt.header["kid"], "k1");
        assert_eq!(jwt.claims["sub"], "ada");
        assert_eq!(jwt.numeric("exp"), Some(1_764_315_600));
        assert_eq!(jwt.signature, "c2lnbmF0dXJl");
    }

    #[test]
    fn re_encoding_an_unchanged_jwt_gives_the_same_token() {
        let jwt = decode(TOKEN).expect("decodes");
        assert_eq!(jwt.encode_keeping_signature(), TOKEN);
    }

    #[test]
    fn tokens_that_are_not_jwts_say_why() {
        assert_eq!(decode("opaque-token"), Err(DecodeError::Parts(1)));
        assert_eq!(decode("a.b.c.d"), Err(DecodeError::Parts(4)));
        assert_eq!(decode("!!.e30.x"), Err(DecodeError::Base64("header")));
        assert_eq!(decode("e30.WzFd.x"), Err(DecodeError::Json("payload")));
    }

    proptest! {
        #[test]
        fn decoding_never_panics_on_any_string(token in ".*") {
            let _ = decode(&token);
        }

        #[test]
        fn decoding_never_panics_on_dotted_base64ish_strings(
            token in "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,40}"
        ) {
            let _ = decode(&token);
        }
    }
}
