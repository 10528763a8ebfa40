//! What the scheduler queues, and the daemon's own bookkeeping.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::model::{DueChainPing, DueSinglePing, PingCounts};

impl Store {
    /// Queues the due single pings; a (key, slot) already queued is left alone, so a tick
    /// repeated after a restart never sends a ping twice. Returns how many were new.
    pub fn queue_single_pings(&mut self, due: &[DueSinglePing], now: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO pings (remailer1_id, type1, key1_id, slot_time, created_at)
                 SELECT remailer_id, ping_type, id, ?2, ?3 FROM keys WHERE id = ?1
                 ON CONFLICT DO NOTHING",
            )?;
            for d in due {
                added += stmt.execute(params![d.key_row_id, d.slot_time, now])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Queues the due chain pings, one per (pair, type, slot).
    pub fn queue_chain_pings(&mut self, due: &[DueChainPing], now: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO pings (remailer1_id, type1, key1_id, remailer2_id, type2, key2_id,
                                    chain_type, slot_time, created_at)
                 SELECT k1.remailer_id, k1.ping_type, k1.id, k2.remailer_id, k2.ping_type, k2.id,
                        ?3, ?4, ?5
                 FROM keys k1, keys k2 WHERE k1.id = ?1 AND k2.id = ?2
                 ON CONFLICT DO NOTHING",
            )?;
            for d in due {
                added += stmt.execute(params![
                    d.hop1_key_row_id,
                    d.hop2_key_row_id,
                    d.chain_type.as_str(),
                    d.slot_time,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Counts pings by outcome (for logs, `list` and health checks).
    pub fn ping_counts(&self) -> Result<PingCounts> {
        let mut counts = PingCounts::default();
        let mut stmt = self.conn.prepare("SELECT outcome, COUNT(*) FROM pings GROUP BY outcome")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (outcome, n) = row?;
            let n = n.max(0) as u64;
            match outcome.as_str() {
                "queued" => counts.queued = n,
                "sent" => counts.sent = n,
                "returned" => counts.returned = n,
                "not_sent" => counts.not_sent = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    pub fn state(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM daemon_state WHERE name = ?1", [name], |r| r.get(0))
            .optional()?)
    }

    pub fn set_state(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO daemon_state (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }
}
