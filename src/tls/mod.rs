//! The certificate authority and the leaf certificates it signs: `ca` keeps
//! it on disk, `leaf` mints, `cache` holds one server config per host.
//! Nothing here reads or writes HTTP messages.

pub mod ca;
pub mod cache;
pub mod leaf;

pub use ca::Ca;
pub use cache::LeafCache;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider every TLS config of the process uses (ring), passed
/// explicitly so no process-wide default has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
