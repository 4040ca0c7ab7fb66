//! Fingerprints: how a credential appears wherever authfault writes about
//! it. The first 12 hex digits of the token's SHA-256 (SPEC section 7): enough
//! to tell tokens apart and follow one through a run, useless to replay.

use std::fmt;

use sha2::{Digest, Sha256};

/// `sha256:` and the first 12 hex digits of the token's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 6]);

impl Fingerprint {
    /// Fingerprints a token (the credential without its scheme).
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut short = [0u8; 6];
        short.copy_from_slice(&digest[..6]);
        Self(short)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        f.write_str("sha256:")?;
        for byte in self.0 {
            f.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
            f.write_char(char::from(HEX[usize::from(byte & 0xf)]))?;
        }
        Ok(())
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_first_12_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(Fingerprint::of("abc").to_string(), "sha256:ba7816bf8f01");
    }

    #[test]
    fn different_tokens_have_different_fingerprints_and_one_token_always_the_same() {
        assert_eq!(Fingerprint::of("tok-1"), Fingerprint::of("tok-1"));
        assert_ne!(Fingerprint::of("tok-1"), Fingerprint::of("tok-2"));
    }
}
