//! The certificate authority and the leaf certificates it signs: `ca` keeps
//! it on disk, `leaf` mints, `cache` holds one server config per host.
//! Nothing here reads or writes HTTP messages.

pub mod ca;
pub mod cache;
pub mod leaf;

pub use ca::Ca;
pub use cache::LeafCache;

use std::sync::{Arc, LazyLock};

use rustls::crypto::{CryptoProvider, SecureRandom};

/// The crypto provider every TLS config of the process uses (ring), passed
/// explicitly so no process-wide default has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's secure RNG, taken from the provider once: building a
/// provider allocates, and garbage tokens and `jti`s are drawn per request.
static RNG: LazyLock<&'static dyn SecureRandom> =
    LazyLock::new(|| rustls::crypto::ring::default_provider().secure_random);

/// Fills `buf` with secure random bytes: leaf serials, the probability
/// seed, garbage tokens, minted `jti`s.
pub fn fill_random(buf: &mut [u8]) -> Result<(), rustls::Error> {
    RNG.fill(buf)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)
}
