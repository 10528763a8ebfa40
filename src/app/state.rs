//! The state directory on disk: who may read it, who owns it, and which daemon runs on it.
//!
//! Everything under `state_dir` is private to the user running fathometer, whatever the umask
//! it was started with: directories 0700, files 0600 (the database holds every tag and the
//! raw quarantine, the secret keys the MAC of every return). A state directory that others
//! can write to, or that another user owns, is refused: whoever can replace files in it can
//! replace the secret or the database. One daemon at a time runs on a state directory; it
//! holds an exclusive lock on `daemon.lock` for its lifetime.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The daemon's lock file inside the state directory.
pub const LOCK_FILE: &str = "daemon.lock";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error(
        "{path} is writable by others (mode {mode:03o}): anyone could replace the secret or \
         the database; run `chmod 700 {path}`"
    )]
    WritableByOthers { path: String, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to the user running fathometer (uid {us}); run \
         fathometer as its owner, or `chown` it"
    )]
    OwnedByAnother { path: String, owner: u32, us: u32 },
    #[error("another fathometer daemon already runs on {path}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: String, pid: Option<u32> },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.display().to_string(), source }
}

/// Makes every file and directory this process creates private (0600 / 0700), so nothing
/// under the state directory is ever readable by others, even for an instant between a
/// create and a chmod.
pub fn use_private_umask() {
    // SAFETY: umask only changes the process's file-mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates the state directory (0700) if it is missing, refuses one that is not a directory,
/// is writable by others or belongs to another user, and tightens the modes of what
/// fathometer keeps in it (an installation made under umask 022 had 0644 and 0755).
pub fn prepare(dir: &Path) -> Result<(), StateError> {
    if !dir.exists() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
    }
    check_dir(dir)?;
    tighten(dir, true)?;
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        // Not the secret: one that others could read may have been read, and the operator must
        // hear of it (`secret::load_or_create` refuses it) rather than have it fixed silently.
        let ours = name == LOCK_FILE
            || name.starts_with("fathometer.sqlite")
            || name == "results"
            || name == "results.private";
        if ours {
            tighten_tree(&path)?;
        }
    }
    Ok(())
}

/// The checks of [`prepare`] that change nothing: the directory (if it exists) is a
/// directory of ours that others cannot write to.
pub fn check_dir(dir: &Path) -> Result<(), StateError> {
    let meta = fs::metadata(dir).map_err(io_error(dir))?;
    let path = dir.display().to_string();
    if !meta.is_dir() {
        return Err(StateError::NotADirectory { path });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(StateError::WritableByOthers { path, mode });
    }
    let us = effective_uid();
    if meta.uid() != us {
        return Err(StateError::OwnedByAnother { path, owner: meta.uid(), us });
    }
    Ok(())
}

/// Clears the group and other bits of one of our files or directories.
fn tighten(path: &Path, is_dir: bool) -> Result<(), StateError> {
    let meta = fs::symlink_metadata(path).map_err(io_error(path))?;
    if meta.file_type().is_symlink() || meta.uid() != effective_uid() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    let wanted = if is_dir { 0o700 } else { 0o600 };
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode((mode & !0o077) | wanted))
            .map_err(io_error(path))?;
    }
    Ok(())
}

///
/// A running daemon renames its temporary files into place while a command walks the tree:
/// an entry that is gone by the time it is looked at needs no tightening and is skipped.
fn tighten_tree(path: &Path) -> Result<(), StateError> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(io_error(path))?,
    };
    let gone = |r: Result<(), StateError>| match r {
        Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if meta.is_dir() {
        gone(tighten(path, true))?;
        let entries = match fs::read_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(io_error(path))?,
        };
        for entry in entries {
            tighten_tree(&entry.map_err(io_error(path))?.path())?;
        }
        Ok(())
    } else {
        gone(tighten(path, false))
    }
}

/// The daemon's hold on its state directory; released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DaemonLock {
    _file: fs::File,
    pub path: PathBuf,
}

/// Takes the state directory for this daemon, or says which one has it.
pub fn lock_for_daemon(dir: &Path) -> Result<DaemonLock, StateError> {
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(&path))?;
    if !try_lock(&file) {
        let pid = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok());
        return Err(StateError::Locked { path: dir.display().to_string(), pid });
    }
    file.set_len(0).map_err(io_error(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_error(&path))?;
    Ok(DaemonLock { _file: file, path })
}

/// Whether a daemon holds the state directory now, and its pid if it wrote one.
pub fn running_daemon(dir: &Path) -> Option<Option<u32>> {
    let path = dir.join(LOCK_FILE);
    let file = fs::File::open(&path).ok()?;
    if try_lock(&file) {
        // Nobody holds it; ours is released when `file` closes.
        return None;
    }
    Some(fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()))
}

fn try_lock(file: &fs::File) -> bool {
    // SAFETY: flock on a descriptor we own; LOCK_NB makes it return at once.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Bytes available to us on the file system holding `path`, if it can be told.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed statvfs to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    // The field types differ between platforms (c_ulong, fsblkcnt_t).
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
    Some(free)
}

/// An error of the store or the file system, said plainly when the cause is a full disk
/// (SQLite reports that as "disk I/O error" on some steps, which sends an operator looking
/// for a failing drive).
pub fn explain_storage_error(dir: &Path, error: &dyn std::fmt::Display) -> String {
    // Less than a page or two: nothing more can be written.
    match free_bytes(dir) {
        Some(free) if free < 64 * 1024 => format!(
            "the file system holding {} is full ({free} bytes free): {error}",
            dir.display()
        ),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `fathometer replay-probe` beside a running daemon failed with "No such
    /// file or directory" when a temporary file of the daemon's build was renamed away while
    /// the command tightened the results tree.
    #[test]
    fn a_file_that_vanishes_while_the_tree_is_tightened_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert!(tighten_tree(&dir.path().join(".mlist.txt.tmp.1234")).is_ok());
        fs::write(dir.path().join("kept"), b"").unwrap();
        fs::set_permissions(dir.path().join("kept"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(tighten_tree(dir.path()).is_ok());
        let mode = fs::metadata(dir.path().join("kept")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_state_directory_made_under_a_loose_umask_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(state.join("fathometer.sqlite"), b"").unwrap();
        fs::set_permissions(state.join("fathometer.sqlite"), fs::Permissions::from_mode(0o644))
            .unwrap();
        fs::create_dir_all(state.join("results/thesaurus")).unwrap();
        fs::write(state.join("results/thesaurus/1.conf"), b"x").unwrap();
        fs::set_permissions(
            state.join("results/thesaurus/1.conf"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        prepare(&state).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("fathometer.sqlite")), 0o600);
        assert_eq!(mode(&state.join("results/thesaurus")), 0o700);
        assert_eq!(mode(&state.join("results/thesaurus/1.conf")), 0o600);
    }

    #[test]
    fn a_state_directory_writable_by_others_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(prepare(&state), Err(StateError::WritableByOthers { .. })));
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(prepare(&file), Err(StateError::NotADirectory { .. })));
    }

    #[test]
    fn one_daemon_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_daemon(dir.path()), None);
        let lock = lock_for_daemon(dir.path()).unwrap();
        assert_eq!(running_daemon(dir.path()), Some(Some(std::process::id())));
        assert!(matches!(lock_for_daemon(dir.path()), Err(StateError::Locked { .. })));
        drop(lock);
        assert_eq!(running_daemon(dir.path()), None);
        lock_for_daemon(dir.path()).unwrap();
    }
}
