//! Credentials: `place` says where one lives in a request and separates
//! scheme from token; `fingerprint` is how it appears in anything written;
//! `jwt` decodes tokens without verifying them; a `Token` is decoded at most
//! once. Signing and I/O live elsewhere (`perturb`).

pub mod fingerprint;
pub mod jwt;
pub mod place;
pub mod token;

pub use fingerprint::Fingerprint;
pub use jwt::Jwt;
pub use place::{Found, Place};
pub use token::Token;
