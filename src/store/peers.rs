//! Peers' fetched files in the store (migration 0009): the last good copy of each, its
//! validators, and how the last attempt went.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

/// One file of one peer as held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFile {
    pub peer: String,
    pub file: String,
    pub body: Option<String>,
    pub fetched_at: Option<i64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub attempted_at: i64,
    pub error: Option<String>,
    pub failures: i64,
}

impl Store {
    /// What is held of `peer`'s `file`.
    pub fn peer_file(&self, peer: &str, file: &str) -> Result<Option<PeerFile>> {
        Ok(self
            .conn
            .query_row(
                "SELECT body, fetched_at, etag, last_modified, attempted_at, error, failures
                 FROM peer_files WHERE peer = ?1 AND file = ?2",
                params![peer, file],
                |r| {
                    Ok(PeerFile {
                        peer: peer.to_owned(),
                        file: file.to_owned(),
                        body: r.get(0)?,
                        fetched_at: r.get(1)?,
                        etag: r.get(2)?,
                        last_modified: r.get(3)?,
                        attempted_at: r.get(4)?,
                        error: r.get(5)?,
                        failures: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// A good copy came (or a 304 confirmed the one held, `body` None): kept with its
    /// validators, the failures reset.
    pub fn peer_file_fetched(
        &mut self,
        peer: &str,
        file: &str,
        body: Option<&str>,
        etag: Option<&str>,
        last_modified: Option<&str>,
        at: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO peer_files (peer, file, body, fetched_at, etag, last_modified,
                                     attempted_at, error, failures)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4, NULL, 0)
             ON CONFLICT (peer, file) DO UPDATE SET
                 body = COALESCE(excluded.body, body),
                 fetched_at = excluded.fetched_at,
                 etag = COALESCE(excluded.etag, etag),
                 last_modified = COALESCE(excluded.last_modified, last_modified),
                 attempted_at = excluded.attempted_at, error = NULL, failures = 0",
            params![peer, file, body, at, etag, last_modified],
        )?;
        Ok(())
    }

    /// An attempt failed (or the file was refused): the last good copy stays.
    pub fn peer_file_failed(&mut self, peer: &str, file: &str, error: &str, at: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO peer_files (peer, file, attempted_at, error, failures)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (peer, file) DO UPDATE SET
                 attempted_at = excluded.attempted_at, error = excluded.error,
                 failures = failures + 1",
            params![peer, file, at, error],
        )?;
        Ok(())
    }

    /// Every file held of every peer, in one read.
    pub fn peer_files(&self) -> Result<Vec<PeerFile>> {
        let mut stmt = self.conn.prepare(
            "SELECT peer, file, body, fetched_at, etag, last_modified, attempted_at, error,
                    failures
             FROM peer_files ORDER BY peer, file",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PeerFile {
                peer: r.get(0)?,
                file: r.get(1)?,
                body: r.get(2)?,
                fetched_at: r.get(3)?,
                etag: r.get(4)?,
                last_modified: r.get(5)?,
                attempted_at: r.get(6)?,
                error: r.get(7)?,
                failures: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_good_copy_and_a_304_keeps_the_body() {
        let mut store = Store::open_in_memory().unwrap();
        store.peer_file_fetched("p", "mlist2.txt", Some("v1"), Some("\"e1\""), None, 100).unwrap();
        store.peer_file_failed("p", "mlist2.txt", "timeout", 200).unwrap();
        store.peer_file_failed("p", "mlist2.txt", "timeout", 300).unwrap();
        let held = store.peer_file("p", "mlist2.txt").unwrap().unwrap();
        assert_eq!(
            (held.body.as_deref(), held.fetched_at, held.failures),
            (Some("v1"), Some(100), 2)
        );
        assert_eq!(held.error.as_deref(), Some("timeout"));
        store.peer_file_fetched("p", "mlist2.txt", None, None, None, 400).unwrap();
        let held = store.peer_file("p", "mlist2.txt").unwrap().unwrap();
        assert_eq!(
            (held.body.as_deref(), held.etag.as_deref(), held.failures),
            (Some("v1"), Some("\"e1\""), 0)
        );
        store.peer_file_failed("q", "pubring.mix", "HTTP status 404", 500).unwrap();
        assert_eq!(store.peer_files().unwrap().len(), 2);
        assert!(store.peer_file_failed("q", "evil.txt", "x", 1).is_err(), "only the three files");
    }
}
