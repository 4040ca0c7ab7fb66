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

    /// `sha256:` and 12 hex digits, written into a buffer on the stack: the
    /// recorder writes several per exchange, and one `write_str` of the
    /// whole costs a tenth of a `write_char` per digit.
    fn text(&self) -> [u8; 19] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = *b"sha256:000000000000";
        for (at, byte) in self.0.iter().enumerate() {
            text[7 + 2 * at] = HEX[usize::from(byte >> 4)];
            text[8 + 2 * at] = HEX[usize::from(byte & 0xf)];
        }
        text
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        // Only ASCII was written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
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
        // Every hex digit.
        let all = Fingerprint([0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
        assert_eq!(all.to_string(), "sha256:0123456789ab");
        assert_eq!(
            Fingerprint([0xcd, 0xef, 0, 0, 0, 0xff]).to_string(),
            "sha256:cdef000000ff"
        );
    }

    #[test]
    fn different_tokens_have_different_fingerprints_and_one_token_always_the_same() {
        assert_eq!(Fingerprint::of("tok-1"), Fingerprint::of("tok-1"));
        assert_ne!(Fingerprint::of("tok-1"), Fingerprint::of("tok-2"));
    }
}
