//! The outbox (queued pings on their way to the MTA) and the self-check records.
//!
//! Decision 3: a ping is `sent` only once the MTA answered 250. Before each attempt the tag
//! and attempt count are committed, so a crash between the MTA's 250 and our commit leaves a
//! queued ping whose return still finds it by tag.

use rusqlite::{OptionalExtension, params};

use crate::model::{ChainType, OutboxHop, OutboxPing, PingType, SelfCheck};

use super::{Result, Store, StoreError};

impl Store {
    /// Queued pings whose next attempt is due at `now`, oldest slot first. Manual pings are
    /// left to the `fathometer ping` that recorded them: a running daemon must not send a
    /// second copy of one while the command is still talking to the MTA.
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxPing>> {
        self.outbox_pings(
            "p.outcome = 'queued' AND p.manual = 0
             AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= ?1)
             ORDER BY p.slot_time, p.id LIMIT ?2",
            params![now, limit as i64],
        )
    }

    /// One ping as the sender sees it (a manual ping, just recorded).
    pub fn outbox_ping(&self, id: i64) -> Result<OutboxPing> {
        self.outbox_pings("p.id = ?1", params![id])?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("no ping {id}")))
    }

    fn outbox_pings(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<OutboxPing>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT p.id, p.slot_time, p.chain_type, p.tag, p.attempts,
                    p.remailer1_id, r1.address, p.type1, k1.key_id, k1.material,
                    p.remailer2_id, r2.address, p.type2, k2.key_id, k2.material
             FROM pings p
             JOIN remailers r1 ON r1.id = p.remailer1_id
             LEFT JOIN keys k1 ON k1.id = p.key1_id
             LEFT JOIN remailers r2 ON r2.id = p.remailer2_id
             LEFT JOIN keys k2 ON k2.id = p.key2_id
             WHERE {condition}"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ),
                (
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ),
                (
                    r.get::<_, Option<i64>>(10)?,
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, Option<String>>(14)?,
                ),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ((id, slot_time, chain_type, tag, attempts), h1, h2) = row?;
            let mut hops = vec![OutboxHop {
                remailer_id: h1.0,
                address: h1.1,
                ping_type: h1.2.parse().map_err(StoreError::Corrupt)?,
                key_id: h1.3,
                material: h1.4,
            }];
            if let (Some(rid), Some(address), Some(t)) = (h2.0, h2.1, h2.2) {
                hops.push(OutboxHop {
                    remailer_id: rid,
                    address,
                    ping_type: t.parse().map_err(StoreError::Corrupt)?,
                    key_id: h2.3,
                    material: h2.4,
                });
            }
            let chain_type = match chain_type {
                Some(c) => Some(c.parse().map_err(StoreError::Corrupt)?),
                None => None,
            };
            out.push(OutboxPing {
                id,
                slot_time,
                chain_type,
                hops,
                tag,
                attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
        Ok(out)
    }

    /// Commits the tag (first attempt only: it never changes) and counts the attempt, before
    /// the message is handed to the MTA.
    pub fn begin_attempt(&mut self, ping_id: i64, tag: &str, with_from: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE pings SET tag = COALESCE(tag, ?2), with_from = ?3, attempts = attempts + 1
             WHERE id = ?1",
            params![ping_id, tag, with_from],
        )?;
        Ok(())
    }

    /// The MTA answered 250 for a message whose payload says `sent_at`.
    pub fn mark_sent(&mut self, ping_id: i64, sent_at: i64) -> Result<()> {
        // A return may already have been recorded (crash after the 250, or a very fast
        // remailer): only a still-queued ping changes.
        self.conn.execute(
            "UPDATE pings SET outcome = 'sent', sent_at = ?2, next_attempt_at = NULL,
                              last_error = NULL
             WHERE id = ?1 AND outcome = 'queued'",
            params![ping_id, sent_at],
        )?;
        Ok(())
    }

    /// A transient failure: try again at `next_attempt_at`.
    pub fn defer_ping(&mut self, ping_id: i64, next_attempt_at: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE pings SET next_attempt_at = ?2, last_error = ?3
             WHERE id = ?1 AND outcome = 'queued'",
            params![ping_id, next_attempt_at, error],
        )?;
        Ok(())
    }

    /// The ping never got out: recorded, never charged to the remailer.
    pub fn mark_not_sent(&mut self, ping_id: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE pings SET outcome = 'not_sent', next_attempt_at = NULL, last_error = ?2
             WHERE id = ?1 AND outcome = 'queued'",
            params![ping_id, error],
        )?;
        Ok(())
    }

    /// Records a ping sent outside the outbox (`fathometer ping`): queued and sent at once.
    #[allow(clippy::too_many_arguments)]
    pub fn record_manual_ping(
        &mut self,
        key1_row_id: i64,
        hop2: Option<(ChainType, i64)>,
        slot_time: i64,
        tag: &str,
        with_from: bool,
        sent_at: Option<i64>,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        match hop2 {
            None => tx.execute(
                "INSERT INTO pings (remailer1_id, type1, key1_id, slot_time, created_at, tag,
                                    with_from, attempts, manual)
                 SELECT remailer_id, ping_type, id, ?2, ?2, ?3, ?4, 0, 1 FROM keys WHERE id = ?1",
                params![key1_row_id, slot_time, tag, with_from],
            )?,
            Some((chain_type, key2)) => tx.execute(
                "INSERT INTO pings (remailer1_id, type1, key1_id, remailer2_id, type2, key2_id,
                                    chain_type, slot_time, created_at, tag, with_from, attempts,
                                    manual)
                 SELECT k1.remailer_id, k1.ping_type, k1.id, k2.remailer_id, k2.ping_type,
                        k2.id, ?3, ?4, ?4, ?5, ?6, 0, 1
                 FROM keys k1, keys k2 WHERE k1.id = ?1 AND k2.id = ?2",
                params![key1_row_id, key2, chain_type.as_str(), slot_time, tag, with_from],
            )?,
        };
        let id = tx.last_insert_rowid();
        if let Some(sent_at) = sent_at {
            tx.execute(
                "UPDATE pings SET outcome = 'sent', sent_at = ?2, attempts = 1 WHERE id = ?1",
                params![id, sent_at],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// The row id of a key, by remailer, type and key id.
    pub fn key_row(&self, remailer_id: i64, ping_type: PingType, key_id: &str) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT id FROM keys WHERE remailer_id = ?1 AND ping_type = ?2 AND key_id = ?3",
                params![remailer_id, ping_type.as_str(), key_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("no key {key_id} of type {ping_type}")))
    }

    /// The key material stored for a key row.
    pub fn key_material(&self, key_row_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT material FROM keys WHERE id = ?1", [key_row_id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    // ----- self-checks -----------------------------------------------------------------

    pub fn create_self_check(&mut self, tag: &str, now: i64) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO self_checks (tag, created_at) VALUES (?1, ?2)",
            params![tag, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn self_check_sent(&mut self, id: i64, sent_at: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE self_checks SET sent_at = ?2, last_error = NULL WHERE id = ?1",
            params![id, sent_at],
        )?;
        Ok(())
    }

    /// An attempt to send a self-check failed: try again at `retry_at`, or, without one
    /// (refused for good), never again.
    pub fn self_check_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE self_checks SET last_error = ?2, attempts = attempts + 1,
                                    next_attempt_at = ?3,
                                    abandoned_at = CASE WHEN ?3 IS NULL THEN ?4 END
             WHERE id = ?1",
            params![id, error, retry_at, now],
        )?;
        Ok(())
    }

    /// Self-checks created after `since`, oldest first.
    pub fn self_checks_since(&self, since: i64) -> Result<Vec<SelfCheck>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tag, created_at, sent_at, returned_at FROM self_checks
             WHERE created_at > ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok(SelfCheck {
                id: r.get(0)?,
                tag: r.get(1)?,
                created_at: r.get(2)?,
                sent_at: r.get(3)?,
                returned_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Self-checks created after `since` that the MTA has not accepted yet, are not abandoned
    /// and are due for an attempt at `now`, with the attempts made so far.
    pub fn pending_self_checks(&self, since: i64, now: i64) -> Result<Vec<(SelfCheck, u32)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tag, created_at, sent_at, returned_at, attempts FROM self_checks
             WHERE created_at > ?1 AND sent_at IS NULL AND abandoned_at IS NULL
               AND (next_attempt_at IS NULL OR next_attempt_at <= ?2)
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map(params![since, now], |r| {
            Ok((
                SelfCheck {
                    id: r.get(0)?,
                    tag: r.get(1)?,
                    created_at: r.get(2)?,
                    sent_at: r.get(3)?,
                    returned_at: r.get(4)?,
                },
                r.get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn last_self_check_created(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row("SELECT MAX(created_at) FROM self_checks", [], |r| r.get(0))?)
    }
}
