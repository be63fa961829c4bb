//! Stored directory credentials are encrypted at rest with XChaCha20-Poly1305. The key lives outside the
//! database: a file in the data directory (created 0600 on first use) or `ROSTER_SECRET_KEY` (base64 of 32
//! bytes, for PostgreSQL deployments whose instances share it). A stolen database alone reveals nothing.

use crate::error::{AppError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;

/// Envelope version, so that a later key rotation or algorithm change can read old values.
const VERSION: &str = "v1";

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Where the key in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `secret.key` in the data directory.
    File,
    /// `ROSTER_SECRET_KEY`.
    Environment,
}

/// The key secrets are sealed with, as `secret.key` holds it (base64), for `roster backup` to carry: the
/// key a restored directory password needs. From `env_key` if given (as [`SecretBox::load`] does), else
/// the data directory's file; never creates one.
pub fn key_for_backup(data_dir: &Path, env_key: Option<&str>) -> Result<(String, KeySource)> {
    let (text, source) = match env_key.filter(|k| !k.trim().is_empty()) {
        Some(k) => (k.trim().to_owned(), KeySource::Environment),
        None => {
            let path = data_dir.join(KEY_FILE);
            let raw = std::fs::read(&path)
                .map_err(|e| AppError::SecretKey(format!("can't read {}: {e}", path.display())))?;
            (
                String::from_utf8_lossy(&raw).trim().to_owned(),
                KeySource::File,
            )
        }
    };
    let key = STANDARD
        .decode(&text)
        .map_err(|e| AppError::SecretKey(format!("it is not base64: {e}")))?;
    SecretBox::from_key(&key)?;
    Ok((text, source))
}

pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8]) -> Result<SecretBox> {
        if key.len() != 32 {
            return Err(AppError::SecretKey(format!(
                "it must be 32 bytes, it has {}",
                key.len()
            )));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key)
            .map_err(|e| AppError::SecretKey(e.to_string()))?;
        Ok(SecretBox { cipher })
    }

    /// The key from `env_key` (base64) if given, else from `<data_dir>/secret.key`, created if missing.
    pub fn load(data_dir: &Path, env_key: Option<&str>) -> Result<SecretBox> {
        if let Some(b64) = env_key.filter(|k| !k.trim().is_empty()) {
            let key = STANDARD.decode(b64.trim()).map_err(|e| {
                AppError::SecretKey(format!("ROSTER_SECRET_KEY is not base64: {e}"))
            })?;
            return SecretBox::from_key(&key);
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(raw) => {
                let key = STANDARD
                    .decode(String::from_utf8_lossy(&raw).trim())
                    .map_err(|e| {
                        AppError::SecretKey(format!("{} is not base64: {e}", path.display()))
                    })?;
                SecretBox::from_key(&key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    AppError::SecretKey(format!("can't create {}: {e}", data_dir.display()))
                })?;
                let key = random_bytes::<32>()?;
                write_private(&path, STANDARD.encode(key).as_bytes())?;
                SecretBox::from_key(&key)
            }
            Err(e) => Err(AppError::SecretKey(format!(
                "can't read {}: {e}",
                path.display()
            ))),
        }
    }

    /// `purpose` is bound in as associated data, so a ciphertext can't be moved to another setting.
    pub fn seal(&self, purpose: &str, plaintext: &str) -> Result<String> {
        let nonce_bytes = random_bytes::<24>()?;
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| AppError::Internal("encryption failed".into()))?;
        Ok(format!(
            "{VERSION}:{}:{}",
            STANDARD.encode(nonce_bytes),
            STANDARD.encode(ct)
        ))
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AppError::SecretKey(
                "a stored secret has an unknown format".into(),
            ));
        };
        let nonce = STANDARD
            .decode(nonce)
            .map_err(|e| AppError::SecretKey(e.to_string()))?;
        let ct = STANDARD
            .decode(ct)
            .map_err(|e| AppError::SecretKey(e.to_string()))?;
        if nonce.len() != 24 {
            return Err(AppError::SecretKey("a stored secret is damaged".into()));
        }
        let pt = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::SecretKey(
                    "a stored secret can't be decrypted with this key (was the key file or ROSTER_SECRET_KEY changed?); set the directory password again".into(),
                )
            })?;
        String::from_utf8(pt).map_err(|e| AppError::SecretKey(e.to_string()))
    }
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0_u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| AppError::Internal(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| AppError::SecretKey(format!("can't create {}: {e}", path.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| AppError::SecretKey(format!("can't write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_binds_the_purpose() {
        let dir = std::env::temp_dir().join(format!("roster-secret-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = SecretBox::load(&dir, None).unwrap();
        let sealed = b.seal("directory.password", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(b.open("directory.password", &sealed).unwrap(), "hunter2");
        assert!(b.open("other", &sealed).is_err());
        // The same key is read back from the file.
        let again = SecretBox::load(&dir, None).unwrap();
        assert_eq!(
            again.open("directory.password", &sealed).unwrap(),
            "hunter2"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
