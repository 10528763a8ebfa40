//! Reading the store back whole, for `fathometer simulate`'s invariants: every ping with its
//! tag and fate, the verdicts of the mail, and SQLite's own consistency check.

use rusqlite::params;

use super::{Result, Store};

/// One ping as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedPing {
    pub id: i64,
    pub tag: Option<String>,
    pub sent_at: Option<i64>,
    pub returned_at: Option<i64>,
    pub outcome: String,
    /// The first (or only) remailer's address.
    pub remailer: String,
    /// The first hop's ping type (`mix`, `cpunk-rsa`, ...).
    pub ping_type: String,
    /// A two-hop chain ping.
    pub chain: bool,
}

impl Store {
    /// Every ping, oldest first.
    pub fn audit_pings(&self) -> Result<Vec<AuditedPing>> {
        let mut stmt = self.conn.prepare(
            "SELECT p.id, p.tag, p.sent_at, p.returned_at, p.outcome, r.address, p.type1,
                    p.remailer2_id IS NOT NULL
             FROM pings p JOIN remailers r ON r.id = p.remailer1_id ORDER BY p.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AuditedPing {
                id: r.get(0)?,
                tag: r.get(1)?,
                sent_at: r.get(2)?,
                returned_at: r.get(3)?,
                outcome: r.get(4)?,
                remailer: r.get(5)?,
                ping_type: r.get(6)?,
                chain: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many pings have the outcome `outcome` (`returned`, `sent`, ...).
    pub fn count_pings(&self, outcome: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM pings WHERE outcome = ?1",
            params![outcome],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// How many mails got the verdict `kind` (`returned`, `duplicate`, `corrupted`, ...).
    pub fn count_mails(&self, kind: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM mails WHERE kind = ?1",
            params![kind],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// A full disk for this connection (`fathometer simulate`'s disk-full fault): with
    /// `full`, every write fails (`PRAGMA query_only`) and reads go on; without, writes work
    /// again. A real full disk refuses only the writes that need a new page, but which ones
    /// those are depends on how the pinger's random bytes filled the pages, and a simulation's
    /// seed must replay: refusing every write is the harder case anyway.
    pub fn simulate_disk_full(&self, full: bool) -> Result<()> {
        self.conn.pragma_update(None, "query_only", full)?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: "ok", or what SQLite found.
    pub fn integrity_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> =
            stmt.query_map([], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
        Ok(lines.join("; "))
    }
}
