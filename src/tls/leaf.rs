//! Minting leaf certificates for intercepted hosts, signed by the CA. Caching
//! them is `cache.rs`'s job.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::ca::Ca;

/// Why a leaf could not be made for a host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{host}` is not a name a certificate can carry: {source}")]
    BadName {
        host: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot set up TLS for `{host}`: {source}")]
    Tls {
        host: String,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot sign a certificate for `{host}`: {source}")]
    Sign {
        host: String,
        #[source]
        source: rcgen::Error,
    },
}

/// Signs a leaf for `host` carrying `key`'s public key.
///
/// The leaf passes strict X.509 verifiers (Python 3.13's `VERIFY_X509_STRICT`,
/// Go, Java): subjectAltName, authority and subject key identifiers,
/// serverAuth, and a validity under the 398 days browsers accept.
pub fn mint(ca: &Ca, key: &KeyPair, host: &str) -> Result<CertificateDer<'static>, Error> {
    let mut params = CertificateParams::default();
    // An IP literal goes in an iPAddress SAN (RFC 5280 §4.2.1.6): clients do not
    // match an IP against dNSName entries, so the handshake would fail.
    let san = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => {
            SanType::DnsName(
                host.to_string()
                    .try_into()
                    .map_err(|source| Error::BadName {
                        host: host.to_string(),
                        source,
                    })?,
            )
        }
    };
    params.subject_alt_names = vec![san];
    params.distinguished_name = rcgen::DistinguishedName::new();
    // A common name over 64 bytes is invalid (RFC 5280 ub-common-name); the
    // SAN carries the name that clients check.
    let cn: String = host.chars().take(64).collect();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    params.serial_number = Some(random_serial());

    let cert = params
        .signed_by(key, ca.issuer())
        .map_err(|source| Error::Sign {
            host: host.to_string(),
            source,
        })?;
    Ok(cert.der().clone())
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets,
/// and CAs should not repeat them).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // The system RNG failing is not something a certificate can recover from;
    // fall back to the clock so the serial still differs between leaves.
    if super::fill_random(&mut bytes).is_err() {
        let nanos = OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_be_bytes();
        bytes.copy_from_slice(&nanos);
    }
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}
