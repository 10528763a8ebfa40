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
///
/// Creation must be atomic: the daemon and a `fathometer ping` started beside it may both
/// find no secret, and neither may ever read a file the other has created but not yet
/// written (that reader would fail, or worse, two processes would hold different secrets).
/// So the bytes go to a private temporary file first, which is then hard-linked into place:
/// `link` never replaces an existing name, so exactly one creator wins and every loser reads
/// the winner's complete file.
pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
    let shown = path.display().to_string();
    let io = |source| SecretError::Io { path: shown.clone(), source };
    if !path.exists()
        && let Some(secret) = create(path).map_err(io)?
    {
        return Ok(secret);
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

/// Writes fresh bytes and links them to `path`; `None` when another process got there first.
fn create(path: &Path) -> std::io::Result<Option<Secret>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let bytes: [u8; SECRET_LEN] = rand::random();
    // A name no other creator (process or thread) can pick, opened exclusively and private.
    let staged = dir.join(format!(".secret.{}.{:016x}", std::process::id(), rand::random::<u64>()));
    let linked = (|| {
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        match std::fs::hard_link(&staged, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    // The temporary name goes whatever happened; the secret lives on under `path`.
    let _ = std::fs::remove_file(&staged);
    if linked? {
        std::fs::File::open(dir)?.sync_all()?;
        Ok(Some(Secret(bytes)))
    } else {
        Ok(None)
    }
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

    #[test]
    fn racing_creators_all_read_one_complete_secret() {
        // The daemon and a `ping` started beside it on a fresh state directory: every racer
        // must get the same 32 bytes, none an empty or half-written file.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secret");
            let barrier = std::sync::Barrier::new(8);
            let secrets: Vec<Secret> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            load_or_create(&path).unwrap()
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(secrets.iter().all(|s| *s == secrets[0]));
            assert_eq!(std::fs::read(&path).unwrap(), secrets[0].as_bytes());
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(names.len(), 1, "no temporary file is left behind");
        }
    }
}
