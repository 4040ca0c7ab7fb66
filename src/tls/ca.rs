//! The certificate authority on disk: `ca.pem` (0644) and `ca-key.pem` (0600)
//! in the CA folder, made on first use. Minting leaves is `leaf.rs`'s job.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside the CA folder.
pub const CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA folder.
pub const KEY_FILE: &str = "ca-key.pem";

const GITIGNORE: &str =
    "# Written by authfault: the CA private key must never be committed.\n*-key.pem\n*.key\n";

/// Why the CA could not be loaded or made. Each message names the file and
/// the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read {}: {source}; check its permissions, or run `authfault ca init --force --ca-dir {}` to make a new CA",
        .path.display(), .dir.display()
    )]
    Read {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a usable CA {what}: {reason}; run `authfault ca init --force --ca-dir {}` to make a new CA (clients must then trust the new ca.pem)",
        .path.display(), .dir.display()
    )]
    Corrupt {
        path: PathBuf,
        dir: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error(
        "{} is readable by group or others (mode {mode:o}); run `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error(
        "{} exists but {} is missing; run `authfault ca init --force --ca-dir {}` to make a new CA",
        .present.display(), .missing.display(), .dir.display()
    )]
    HalfPresent {
        present: PathBuf,
        missing: PathBuf,
        dir: PathBuf,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the CA: {0}")]
    Generate(#[source] rcgen::Error),
}

/// A loaded CA: its certificate and the issuer that signs leaves.
pub struct Ca {
    cert_path: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    // The key stays out of every Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// What `init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    Created,
    Kept,
}

/// Paths of the certificate and key inside `dir`.
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(CERT_FILE), dir.join(KEY_FILE))
}

/// Makes a CA in `dir` unless one is there; with `force`, replaces it.
/// An existing CA is loaded (and so checked) before it is kept.
pub fn init(dir: &Path, force: bool) -> Result<InitOutcome, Error> {
    let (cert, key) = paths(dir);
    if !force && (cert.exists() || key.exists()) {
        load(dir)?;
        return Ok(InitOutcome::Kept);
    }
    create(dir)?;
    Ok(InitOutcome::Created)
}

/// Loads the CA in `dir`, making it first when neither file exists.
pub fn load_or_create(dir: &Path) -> Result<Ca, Error> {
    let (cert, key) = paths(dir);
    if !cert.exists() && !key.exists() {
        create(dir)?;
    }
    load(dir)
}

/// Loads and checks the CA in `dir`: both files parse, the key is private to
/// its owner, and the key belongs to the certificate.
pub fn load(dir: &Path) -> Result<Ca, Error> {
    let (cert_path, key_path) = paths(dir);
    for (present, missing) in [(&cert_path, &key_path), (&key_path, &cert_path)] {
        if present.exists() && !missing.exists() {
            return Err(Error::HalfPresent {
                present: present.clone(),
                missing: missing.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        })
    };
    let corrupt = |path: &Path, what, reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        what,
        reason,
    };

    let key_pem = read(&key_path)?;
    check_key_mode(&key_path)?;
    let cert_pem = read(&cert_path)?;

    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| corrupt(&key_path, "key", format!("not a PEM private key ({e})")))?;
    let cert_der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| {
            corrupt(
                &cert_path,
                "certificate",
                format!("no PEM certificate ({e})"),
            )
        })
        .map(|der: CertificateDer<'_>| der.into_owned())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| corrupt(&cert_path, "certificate", e.to_string()))?;
    if !parsed.is_ca() {
        return Err(corrupt(
            &cert_path,
            "certificate",
            "it is not a CA certificate (basicConstraints CA:FALSE or missing)".into(),
        ));
    }
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(corrupt(
            &key_path,
            "key",
            format!("it does not belong to {}", cert_path.display()),
        ));
    }
    let issuer = Issuer::from_ca_cert_der(&cert_der, key)
        .map_err(|e| corrupt(&cert_path, "certificate", e.to_string()))?;
    Ok(Ca {
        cert_path,
        cert_pem,
        cert_der,
        issuer,
    })
}

impl Ca {
    /// Where the certificate lives, for banners and `ca path`.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The certificate in PEM, as clients install it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate in DER, sent after each leaf in the chain.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The issuer that signs leaves.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

fn check_key_mode(path: &Path) -> Result<(), Error> {
    let mode = fs::metadata(path)
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyExposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn create(dir: &Path) -> Result<(), Error> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        fs::write(&gitignore, GITIGNORE).map_err(write_err(&gitignore))?;
    }

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(Error::Generate)?;
    let cert = ca_params().self_signed(&key).map_err(Error::Generate)?;

    let (cert_path, key_path) = paths(dir);
    // The key is written to a 0600 temporary file and renamed, so it is never
    // readable by others, not even for a moment, and never half written.
    write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(write_err(&key_path))?;
    write_atomically(&cert_path, cert.pem().as_bytes(), 0o644).map_err(write_err(&cert_path))?;
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let host = hostname();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("authfault CA ({host})"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "authfault");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params.serial_number = Some(super::leaf::random_serial());
    params
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // The umask may have narrowed the mode; the spec fixes it.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ca_is_written_with_private_key_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(init(dir.path(), false).expect("init"), InitOutcome::Created);
        let (cert, key) = paths(dir.path());
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&cert), 0o644);
        assert!(
            fs::read_to_string(dir.path().join(".gitignore"))
                .expect("gitignore")
                .contains("*-key.pem")
        );
    }

    #[test]
    fn init_keeps_an_existing_ca_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), false).expect("init");
        let before = fs::read(dir.path().join(CERT_FILE)).expect("read");
        assert_eq!(init(dir.path(), false).expect("init"), InitOutcome::Kept);
        assert_eq!(fs::read(dir.path().join(CERT_FILE)).expect("read"), before);
        assert_eq!(init(dir.path(), true).expect("init"), InitOutcome::Created);
        assert_ne!(fs::read(dir.path().join(CERT_FILE)).expect("read"), before);
    }

    #[test]
    fn a_corrupt_certificate_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), false).expect("init");
        fs::write(dir.path().join(CERT_FILE), "not a certificate").expect("write");
        let msg = load(dir.path()).expect_err("corrupt").to_string();
        assert!(msg.contains("ca.pem"), "{msg}");
        assert!(msg.contains("authfault ca init --force"), "{msg}");
    }

    #[test]
    fn a_group_readable_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), false).expect("init");
        let key = dir.path().join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = load(dir.path()).expect_err("exposed key");
        assert!(
            matches!(err, Error::KeyExposed { mode: 0o640, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_key_from_another_ca_is_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        init(a.path(), false).expect("init");
        init(b.path(), false).expect("init");
        fs::copy(b.path().join(KEY_FILE), a.path().join(KEY_FILE)).expect("copy");
        let msg = load(a.path()).expect_err("mismatch").to_string();
        assert!(msg.contains("does not belong"), "{msg}");
    }
}
