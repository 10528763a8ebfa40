//! The Maildir edge of the ingester.
//!
//! New mail is read from `new/`; only after its verdict is committed is the file renamed into
//! `cur/` (marked seen), or into the Maildir++ folder `.Quarantine/cur/` for mail a person
//! should look at (IMAP clients see it as the folder "Quarantine"). A rename within one
//! file system is atomic, so a crash leaves each mail either still in `new/` (processed again
//! on restart, and recognised by its digest) or settled. The delivery time used for latency is
//! the file's modification time: the MTA writes the file once, at delivery.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use std::io::Read;

use super::{Disposition, MAX_MAIL_BYTES, Mailbox, RawMail};

/// At most this many mails are read per round, and at most [`BATCH_BYTES`] of them.
pub const BATCH_MAILS: usize = 200;
pub const BATCH_BYTES: usize = 16 << 20;

pub const QUARANTINE_FOLDER: &str = ".Quarantine";

/// A mail waiting in `new/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub path: PathBuf,
    /// The unique Maildir name (file name without flags).
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// Opens a Maildir, creating `new`, `cur`, `tmp` and the quarantine folder when missing.
    pub fn open(root: &Path) -> io::Result<Maildir> {
        for dir in [
            root.join("new"),
            root.join("cur"),
            root.join("tmp"),
            root.join(QUARANTINE_FOLDER).join("new"),
            root.join(QUARANTINE_FOLDER).join("cur"),
            root.join(QUARANTINE_FOLDER).join("tmp"),
        ] {
            fs::create_dir_all(&dir)?;
        }
        Ok(Maildir { root: root.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mail in `new/`, oldest name first (Maildir names start with the delivery time).
    pub fn pending(&self) -> io::Result<Vec<NewMail>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("new"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            let base = name.split(':').next().unwrap_or(&name).to_owned();
            out.push(NewMail { path: entry.path(), name: base });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// At most the first `limit` bytes of a mail, its size and its delivery time (file
    /// modification time, unix seconds). A huge file costs `limit` bytes of memory, not its
    /// size.
    pub fn read(&self, mail: &NewMail, limit: usize) -> io::Result<RawMail> {
        let file = fs::File::open(&mail.path)?;
        let meta = file.metadata()?;
        let delivered = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let mut bytes = Vec::with_capacity((meta.len() as usize).min(limit));
        file.take(limit as u64).read_to_end(&mut bytes)?;
        Ok(RawMail {
            bytes,
            size: Some(meta.len()),
            delivered_at: delivered,
            source: format!("maildir:{}", mail.name),
        })
    }

    /// Moves a mail out of `new/` once its verdict is committed.
    pub fn settle_mail(&self, mail: &NewMail, disposition: Disposition) -> io::Result<PathBuf> {
        let dir = match disposition {
            Disposition::Processed => self.root.join("cur"),
            Disposition::Quarantined => self.root.join(QUARANTINE_FOLDER).join("cur"),
        };
        // ":2,S" marks it seen, as a mail client would after reading it.
        let target = dir.join(format!("{}:2,S", mail.name));
        fs::rename(&mail.path, &target)?;
        Ok(target)
    }
}

impl Maildir {
    /// The oldest waiting mails, read (at most [`MAX_MAIL_BYTES`] + 1 bytes each), within the
    /// batch limits. A mail moved away between listing and reading is skipped.
    pub fn read_batch(&self) -> io::Result<Vec<(NewMail, RawMail)>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for pending in self.pending()? {
            if batch.len() >= BATCH_MAILS || (bytes >= BATCH_BYTES && !batch.is_empty()) {
                break;
            }
            match self.read(&pending, MAX_MAIL_BYTES + 1) {
                Ok(mail) => {
                    bytes += mail.bytes.len();
                    batch.push((pending, mail));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }
}

/// The file system calls run on the blocking pool: a slow disk never holds up the async
/// workers that serve HTTP and signals.
impl Mailbox for Maildir {
    type Key = NewMail;
    type Error = io::Error;

    async fn waiting(&mut self) -> io::Result<Vec<(NewMail, RawMail)>> {
        let maildir = self.clone();
        tokio::task::spawn_blocking(move || maildir.read_batch()).await.map_err(io::Error::other)?
    }

    async fn settle(&mut self, mail: NewMail, disposition: Disposition) -> io::Result<()> {
        let maildir = self.clone();
        tokio::task::spawn_blocking(move || maildir.settle_mail(&mail, disposition).map(|_| ()))
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_mail_is_listed_and_settled_into_cur_or_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::open(dir.path()).unwrap();
        fs::write(dir.path().join("new/1700000000.a.host"), b"one").unwrap();
        fs::write(dir.path().join("new/1700000001.b.host"), b"two").unwrap();
        fs::write(dir.path().join("new/.hidden"), b"skip").unwrap();
        let pending = md.pending().unwrap();
        assert_eq!(pending.len(), 2);
        let mail = md.read(&pending[0], 1000).unwrap();
        assert_eq!(mail.bytes, b"one");
        assert_eq!(mail.size, Some(3));
        assert!(mail.delivered_at.unwrap() > 1_600_000_000);
        assert_eq!(md.read(&pending[1], 2).unwrap().bytes, b"tw", "read up to the limit");
        md.settle_mail(&pending[0], Disposition::Processed).unwrap();
        md.settle_mail(&pending[1], Disposition::Quarantined).unwrap();
        assert!(dir.path().join("cur/1700000000.a.host:2,S").exists());
        assert!(dir.path().join(".Quarantine/cur/1700000001.b.host:2,S").exists());
        assert!(md.pending().unwrap().is_empty());
    }
}
