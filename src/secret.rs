//! The pinger's secret: 32 random bytes in `<state_dir>/secret`, mode 0600.
//!
//! It seeds the ping schedule (so remailers cannot predict pings) and keys the MAC of every
//! return (so returns cannot be forged). Anyone who can read it can do both, hence the
//! refusal to run with a file that group or others can read.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const SECRET_LEN: usize = 32;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Secret {
        Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` \
         (and consider the secret compromised if others could read it)"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("{path} holds {len} bytes, expected {SECRET_LEN}")]
    BadLength { path: String, len: usize },
}

/// Reads the secret, creating it with fresh random bytes on first start.
pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
    let shown = path.display().to_string();
    let io = |source| SecretError::Io { path: shown.clone(), source };
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            let bytes: [u8; SECRET_LEN] = rand::random();
            file.write_all(&bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(Secret(bytes));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen { path: shown, mode });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let len = bytes.len();
    let bytes: [u8; SECRET_LEN] =
        bytes.try_into().map_err(|_| SecretError::BadLength { path: shown.clone(), len })?;
    Ok(Secret(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_with_mode_0600_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), SECRET_LEN);
        assert_eq!(load_or_create(&path).unwrap(), first);
    }

    #[test]
    fn readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(load_or_create(&path), Err(SecretError::TooOpen { mode: 0o640, .. })));
    }

    #[test]
    fn wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(load_or_create(&path), Err(SecretError::BadLength { len: 5, .. })));
    }
}
