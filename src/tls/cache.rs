//! One `Arc<ServerConfig>` per intercepted host, minted on first use and
//! kept. All configs share one leaf key, one session cache and one ticketer,
//! so a client resumes its TLS session whichever host it reconnects to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};

use super::ca::Ca;
use super::leaf;

/// How many hosts keep their config before the cache starts over. A suite
/// talks to a handful of hosts; this bounds memory against a client that
/// walks through thousands of names.
const CAPACITY: usize = 10_000;

/// TLS session resumption entries kept for clients (stateful resumption,
/// TLS 1.2 and 1.3).
const SESSIONS: usize = 8_192;

/// Why the leaf cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot generate the leaf key: {0}")]
    Key(#[source] rcgen::Error),
    #[error("cannot set up TLS towards clients: {0}")]
    Tls(#[source] rustls::Error),
}

/// Server configs per host, signed by one CA.
pub struct LeafCache {
    ca: Arc<Ca>,
    key: KeyPair,
    signing_key: Arc<dyn SigningKey>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
    configs: Mutex<HashMap<Box<str>, Arc<ServerConfig>>>,
}

impl LeafCache {
    /// Sets up the cache; the leaf key is made here, once per process.
    pub fn new(ca: Arc<Ca>, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(Error::Key)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = provider
            .key_provider
            .load_private_key(der)
            .map_err(Error::Tls)?;
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(Error::Tls)?;
        Ok(Self {
            ca,
            key,
            signing_key,
            provider,
            sessions: ServerSessionMemoryCache::new(SESSIONS),
            ticketer,
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The config for `host` (an SNI name, a CONNECT host or an IP literal),
    /// minting its leaf on first use. Names are compared case-insensitively.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, leaf::Error> {
        let host = host.to_ascii_lowercase();
        if let Some(config) = self.lock().get(host.as_str()) {
            return Ok(config.clone());
        }
        // Minting happens outside the lock: two first requests for one host
        // may both mint, and the second insert wins; both leaves are valid.
        let config = Arc::new(self.build(&host)?);
        let mut configs = self.lock();
        if configs.len() >= CAPACITY {
            configs.clear();
        }
        configs.insert(host.into_boxed_str(), config.clone());
        Ok(config)
    }

    /// How many hosts have a leaf in the cache.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no leaf has been minted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<ServerConfig>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (inserts are single calls), so a poisoned lock is still usable.
        self.configs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn build(&self, host: &str) -> Result<ServerConfig, leaf::Error> {
        let leaf = leaf::mint(&self.ca, &self.key, host)?;
        let chain = vec![leaf, self.ca.cert_der().clone()];
        let certified = CertifiedKey::new(chain, self.signing_key.clone());
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| leaf::Error::Tls {
                host: host.to_string(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = self.sessions.clone();
        config.ticketer = self.ticketer.clone();
        Ok(config)
    }
}
