//! Re-signing and minting JWTs with the keys a rule file names
//! (`keys:`): HS256/384/512 from a secret, RS256/384/512 and PS256/384/512
//! from an RSA PEM, ES256/384 from an EC PEM, EdDSA from an Ed25519 PEM.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

use crate::credential::Jwt;

/// Why a key could not be made or used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "`{0}` is not a supported algorithm; use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
    )]
    UnknownAlgorithm(String),
    #[error("{alg} needs a {needs}")]
    WrongKind { alg: String, needs: &'static str },
    #[error("not a {expected} private key in PEM form: {reason}")]
    BadPem {
        expected: &'static str,
        reason: String,
    },
    #[error("signing with {alg} failed: {reason}")]
    Sign { alg: String, reason: String },
}

/// A signing key of the test identity provider.
#[derive(Clone)]
pub struct Key {
    alg: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn algorithm(name: &str) -> Result<Algorithm, KeyError> {
    name.parse::<Algorithm>()
        .map_err(|_| KeyError::UnknownAlgorithm(name.to_string()))
}

impl Key {
    /// An HMAC key from a shared secret (`secret_env`).
    pub fn from_secret(alg: &str, secret: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        let alg_parsed = algorithm(alg)?;
        if !matches!(
            alg_parsed,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(KeyError::WrongKind {
                alg: alg.to_string(),
                needs: "private_key_file, not a secret",
            });
        }
        let encoding = EncodingKey::from_secret(secret).map_err(|e| KeyError::BadPem {
            expected: "HMAC",
            reason: e.to_string(),
        })?;
        Ok(Self {
            alg: alg_parsed,
            kid,
            encoding,
        })
    }

    /// An RSA, EC or Ed25519 key from a PEM private key (`private_key_file`).
    pub fn from_pem(alg: &str, pem: &[u8], kid: Option<String>) -> Result<Self, KeyError> {
        let alg_parsed = algorithm(alg)?;
        let (expected, encoding) = match alg_parsed {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(KeyError::WrongKind {
                    alg: alg.to_string(),
                    needs: "secret_env (a shared secret), not a PEM file",
                });
            }
            Algorithm::ES256 | Algorithm::ES384 => ("EC", EncodingKey::from_ec_pem(pem)),
            Algorithm::EdDSA => ("Ed25519", EncodingKey::from_ed_pem(pem)),
            _ => ("RSA", EncodingKey::from_rsa_pem(pem)),
        };
        let encoding = encoding.map_err(|e| KeyError::BadPem {
            expected,
            reason: e.to_string(),
        })?;
        Ok(Self {
            alg: alg_parsed,
            kid,
            encoding,
        })
    }

    /// The algorithm name as it goes in a JWT header.
    pub fn alg_name(&self) -> String {
        format!("{:?}", self.alg)
    }

    /// Signs `jwt` with this key: the header's `alg` becomes the key's, its
    /// `kid` the key's when the key has one (else the token's is kept), and
    /// every other header field stays. Returns the complete token.
    pub fn sign(&self, jwt: &mut Jwt) -> Result<String, KeyError> {
        jwt.header
            .insert("alg".to_string(), Value::String(self.alg_name()));
        if let Some(kid) = &self.kid {
            jwt.header
                .insert("kid".to_string(), Value::String(kid.clone()));
        }
        let input = jwt.signing_input();
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg)
            .map_err(|e| KeyError::Sign {
                alg: self.alg_name(),
                reason: e.to_string(),
            })?;
        // The input already encoded is the token's start: encoding the
        // header and claims again would only repeat the work.
        let mut token = input;
        token.push('.');
        token.push_str(&signature);
        jwt.signature = signature;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::jwt;
    use jsonwebtoken::DecodingKey;

    fn verifies(token: &str, key: &DecodingKey, alg: Algorithm) -> bool {
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), key, alg).expect("verify runs")
    }

    fn sample() -> Jwt {
        jwt::decode(&format!(
            "{}.{}.sig",
            jwt::B64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"old","x-custom":1}"#),
            jwt::B64.encode(br#"{"sub":"ada","scope":"orders:read"}"#)
        ))
        .expect("sample decodes")
    }

    use base64::Engine;

    #[test]
    fn hmac_signatures_verify_under_the_same_secret_for_each_size() {
        for alg in ["HS256", "HS384", "HS512"] {
            let key = Key::from_secret(alg, b"qa-secret", None).expect("key");
            let mut jwt = sample();
            let token = key.sign(&mut jwt).expect("signs");
            let alg_parsed: Algorithm = alg.parse().expect("alg");
            assert!(
                verifies(
                    &token,
                    &DecodingKey::from_secret(b"qa-secret").expect("key"),
                    alg_parsed
                ),
                "{alg}"
            );
            assert!(
                !verifies(
                    &token,
                    &DecodingKey::from_secret(b"other").expect("key"),
                    alg_parsed
                ),
                "{alg}"
            );
            let decoded = jwt::decode(&token).expect("decodes");
            assert_eq!(decoded.alg(), Some(alg));
            assert_eq!(decoded.header["kid"], "old", "kid kept without a key kid");
            assert_eq!(decoded.header["x-custom"], 1, "other header fields kept");
        }
    }

    #[test]
    fn ec_and_ed25519_signatures_verify_under_their_public_keys() {
        let cases = [
            ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("ES384", &rcgen::PKCS_ECDSA_P384_SHA384),
            ("EdDSA", &rcgen::PKCS_ED25519),
        ];
        for (alg, rcgen_alg) in cases {
            let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("keygen");
            let key = Key::from_pem(alg, pair.serialize_pem().as_bytes(), Some("k2".into()))
                .expect("key");
            let mut jwt = sample();
            let token = key.sign(&mut jwt).expect("signs");
            let public = pair.public_key_pem();
            let decoding = match alg {
                "EdDSA" => DecodingKey::from_ed_pem(public.as_bytes()),
                _ => DecodingKey::from_ec_pem(public.as_bytes()),
            }
            .expect("public key");
            assert!(
                verifies(&token, &decoding, alg.parse().expect("alg")),
                "{alg}"
            );
            assert_eq!(jwt::decode(&token).expect("decodes").header["kid"], "k2");
        }
    }

    #[test]
    fn rsa_and_pss_signatures_verify_under_the_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("rsa.pem");
        let public = dir.path().join("rsa.pub.pem");
        let ok = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private)
            .status()
            .expect("openssl runs")
            .success()
            && std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&private)
                .arg("-out")
                .arg(&public)
                .status()
                .expect("openssl runs")
                .success();
        assert!(ok, "openssl made an RSA key");
        let pem = std::fs::read(&private).expect("read");
        let decoding =
            DecodingKey::from_rsa_pem(&std::fs::read(&public).expect("read")).expect("public key");
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let key = Key::from_pem(alg, &pem, None).expect("key");
            let token = key.sign(&mut sample()).expect("signs");
            assert!(
                verifies(&token, &decoding, alg.parse().expect("alg")),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused_with_what_is_needed() {
        let err = Key::from_secret("RS256", b"s", None).expect_err("RSA needs a PEM");
        assert!(err.to_string().contains("private_key_file"), "{err}");
        let err = Key::from_pem("ES256", b"not a pem", None).expect_err("bad PEM");
        assert!(err.to_string().contains("EC private key"), "{err}");
        let err = Key::from_secret("HS1024", b"s", None).expect_err("unknown alg");
        assert!(err.to_string().contains("HS256"), "{err}");
    }
}
