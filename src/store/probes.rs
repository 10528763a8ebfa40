//! Replay-protection probes in the store (migration 0010): started, their one message kept,
//! both copies sent, their returns counted and their verdicts reached.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError};
use crate::model::{
    OutboxHop, OutboxProbe, PingType, ProbeCopy, ProbeVerdict, ReplayStatus, SLOT_SECS,
    probe_verdict,
};

/// A probe row as the pages and the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRow {
    pub id: i64,
    pub address: String,
    pub created_at: i64,
    pub first_sent_at: Option<i64>,
    pub second_sent_at: Option<i64>,
    pub returns: u32,
    pub verdict: ProbeVerdict,
    pub decided_at: Option<i64>,
    pub last_error: Option<String>,
}

fn verdict_column(text: String) -> rusqlite::Result<ProbeVerdict> {
    ProbeVerdict::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("probe verdict `{text}`").into(),
        )
    })
}

impl Store {
    /// Starts a probe through the type II key row `key_row_id` (of the remailer it belongs
    /// to).
    pub fn create_replay_probe(
        &mut self,
        key_row_id: i64,
        tag: &str,
        manual: bool,
        now: i64,
    ) -> Result<i64> {
        let n = self.conn.execute(
            "INSERT INTO replay_probes (remailer_id, key_id, tag, created_at, manual)
             SELECT remailer_id, id, ?2, ?3, ?4 FROM keys WHERE id = ?1 AND ping_type = 'mix'",
            params![key_row_id, tag, now, manual],
        )?;
        if n == 0 {
            return Err(StoreError::Corrupt(format!("no type II key row {key_row_id}")));
        }
        Ok(self.conn.last_insert_rowid())
    }

    /// When each remailer's newest scheduled probe was started (by address).
    pub fn last_scheduled_probes(&self) -> Result<BTreeMap<String, i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.address, MAX(p.created_at) FROM replay_probes p
             JOIN remailers r ON r.id = p.remailer_id
             WHERE p.manual = 0 GROUP BY r.address",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The copies due at `now`: first copies not yet accepted by the MTA, and second copies
    /// of probes whose first copy went out at least `gap_secs` ago.
    pub fn probes_due(&self, now: i64, gap_secs: i64) -> Result<Vec<OutboxProbe>> {
        let mut stmt = self.conn.prepare(
            "SELECT p.id, p.tag, p.created_at, p.first_sent_at, p.attempts, p.envelope_from,
                    p.recipient, p.message, p.remailer_id, r.address, k.key_id, k.material
             FROM replay_probes p
             JOIN remailers r ON r.id = p.remailer_id
             LEFT JOIN keys k ON k.id = p.key_id
             WHERE p.verdict = 'pending' AND p.second_sent_at IS NULL
               AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= ?1)
               AND (p.first_sent_at IS NULL OR p.first_sent_at + ?2 <= ?1)
             ORDER BY p.id",
        )?;
        let rows = stmt.query_map(params![now, gap_secs], |r| {
            let first_sent_at: Option<i64> = r.get(3)?;
            let message = match (r.get(5)?, r.get(6)?, r.get(7)?) {
                (Some(from), Some(to), Some(bytes)) => Some((from, to, bytes)),
                _ => None,
            };
            let created_at: i64 = r.get(2)?;
            let due_at = first_sent_at.map_or(created_at, |s| s.saturating_add(gap_secs));
            Ok(OutboxProbe {
                deadline: due_at.saturating_add(SLOT_SECS),
                id: r.get(0)?,
                tag: r.get(1)?,
                created_at,
                copy: if first_sent_at.is_some() { ProbeCopy::Second } else { ProbeCopy::First },
                first_sent_at,
                message,
                attempts: r.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
                hop: OutboxHop {
                    remailer_id: r.get(8)?,
                    address: r.get(9)?,
                    ping_type: PingType::Mix,
                    key_id: r.get(10)?,
                    material: r.get(11)?,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps the message of probe `id` built for its first attempt (only the first one is
    /// kept: every attempt and the second copy send these bytes).
    pub fn keep_probe_message(
        &mut self,
        id: i64,
        envelope_from: &str,
        recipient: &str,
        message: &[u8],
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE replay_probes SET envelope_from = ?2, recipient = ?3, message = ?4
             WHERE id = ?1 AND message IS NULL",
            params![id, envelope_from, recipient, message],
        )?;
        Ok(())
    }

    /// The MTA accepted `copy` of probe `id` at `at`.
    pub fn probe_sent(&mut self, id: i64, copy: ProbeCopy, at: i64) -> Result<()> {
        let column = match copy {
            ProbeCopy::First => "first_sent_at",
            ProbeCopy::Second => "second_sent_at",
        };
        self.conn.execute(
            &format!(
                "UPDATE replay_probes SET {column} = ?2, attempts = 0, next_attempt_at = NULL,
                                          last_error = NULL
                 WHERE id = ?1 AND {column} IS NULL"
            ),
            params![id, at],
        )?;
        Ok(())
    }

    /// An attempt failed: try again at `retry_at`, or, without one, give the probe up as
    /// not sent (our failure: it says nothing about the remailer).
    pub fn probe_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE replay_probes SET last_error = ?2, attempts = attempts + 1,
                                      next_attempt_at = ?3,
                                      verdict = CASE WHEN ?3 IS NULL THEN 'not_sent'
                                                     ELSE verdict END,
                                      decided_at = CASE WHEN ?3 IS NULL THEN ?4 END
             WHERE id = ?1 AND verdict = 'pending'",
            params![id, error, retry_at, now],
        )?;
        Ok(())
    }

    /// Reaches the verdict of every pending probe that can be decided at `now`, waiting
    /// `wait_secs` after the second copy for returns. Returns the probes decided.
    pub fn settle_replay_probes(&mut self, wait_secs: i64, now: i64) -> Result<Vec<ProbeRow>> {
        let pending: Vec<(i64, i64, Option<i64>)> = {
            let mut stmt = self.conn.prepare(
                "SELECT id, returns, second_sent_at FROM replay_probes WHERE verdict = 'pending'",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let tx = self.conn.transaction()?;
        let mut decided = Vec::new();
        for (id, returns, second) in pending {
            let returns = returns.clamp(0, i64::from(u32::MAX)) as u32;
            if let Some(verdict) = probe_verdict(returns, second, wait_secs, now) {
                tx.execute(
                    "UPDATE replay_probes SET verdict = ?2, decided_at = ?3 WHERE id = ?1",
                    params![id, verdict.as_str(), now],
                )?;
                decided.push(id);
            }
        }
        tx.commit()?;
        let mut rows = Vec::new();
        for id in decided {
            rows.extend(self.replay_probe(id)?);
        }
        Ok(rows)
    }

    /// One probe.
    pub fn replay_probe(&self, id: i64) -> Result<Option<ProbeRow>> {
        Ok(self.replay_probe_rows("p.id = ?1", params![id])?.pop())
    }

    /// Every probe of the remailer at `address`, newest first.
    pub fn replay_probes_of(&self, address: &str) -> Result<Vec<ProbeRow>> {
        self.replay_probe_rows("r.address = ?1", params![address])
    }

    fn replay_probe_rows(
        &self,
        condition: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<ProbeRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT p.id, r.address, p.created_at, p.first_sent_at, p.second_sent_at, p.returns,
                    p.verdict, p.decided_at, p.last_error
             FROM replay_probes p JOIN remailers r ON r.id = p.remailer_id
             WHERE {condition} ORDER BY p.created_at DESC, p.id DESC"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok(ProbeRow {
                id: r.get(0)?,
                address: r.get(1)?,
                created_at: r.get(2)?,
                first_sent_at: r.get(3)?,
                second_sent_at: r.get(4)?,
                returns: r.get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
                verdict: verdict_column(r.get(6)?)?,
                decided_at: r.get(7)?,
                last_error: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What the probes found, per remailer address: the newest conclusive verdict and the
    /// count of each verdict.
    pub fn replay_statuses(&self) -> Result<BTreeMap<String, ReplayStatus>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.address, p.verdict, p.decided_at, p.created_at
             FROM replay_probes p JOIN remailers r ON r.id = p.remailer_id
             ORDER BY p.created_at, p.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                verdict_column(r.get(1)?)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out: BTreeMap<String, ReplayStatus> = BTreeMap::new();
        for row in rows {
            let (address, verdict, decided_at, created_at) = row?;
            let status = out.entry(address).or_default();
            status.last_probe_at = Some(created_at);
            match verdict {
                ProbeVerdict::Pending => status.pending += 1,
                ProbeVerdict::Protected => status.protected += 1,
                ProbeVerdict::Replayed => status.replayed += 1,
                ProbeVerdict::Inconclusive => status.inconclusive += 1,
                ProbeVerdict::NotSent => status.not_sent += 1,
            }
            if verdict.is_conclusive() {
                status.verdict = Some(verdict);
                status.decided_at = decided_at;
            }
        }
        Ok(out)
    }
}

/// A copy of probe `id` came back at `returned_at` (inside the mail's transaction). The
/// second genuine copy is the verdict: replayed, whatever the probe's state. Returns the
/// number of copies now counted.
pub(super) fn count_probe_return(tx: &Transaction, id: i64, returned_at: i64) -> Result<u32> {
    let returns: Option<i64> = tx
        .query_row(
            "UPDATE replay_probes
             SET returns = returns + 1,
                 first_return_at = COALESCE(first_return_at, ?2),
                 last_return_at = ?2,
                 verdict = CASE WHEN returns + 1 >= 2 THEN 'replayed' ELSE verdict END,
                 decided_at = CASE WHEN returns + 1 = 2 THEN ?2 ELSE decided_at END
             WHERE id = ?1
             RETURNING returns",
            params![id, returned_at],
            |r| r.get(0),
        )
        .optional()?;
    let returns = returns.ok_or_else(|| StoreError::Corrupt(format!("no replay probe {id}")))?;
    Ok(returns.clamp(0, i64::from(u32::MAX)) as u32)
}
