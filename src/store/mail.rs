//! What the ingester records: one row per mail, and the mail's effect on its ping, in one
//! transaction (decision 7: the mail leaves the inbox only after this commit).

use std::collections::BTreeMap;

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{OptionalExtension, params};

use crate::model::{
    FromLine, MailEffect, MailHealth, MailKind, MailRecord, QuarantinedMail, ReturnCounters,
    TagTarget, TaggedPing,
};

use super::{Result, Store, StoreError, discovery};

/// A deliberate bug, set only by `fathometer simulate --inject-bug count-duplicates`: a
/// second return of a ping is recorded as a return instead of a duplicate. It exists to show
/// that the simulation's invariants catch such a bug; nothing else sets it.
pub static INJECTED_BUG_COUNT_DUPLICATES: AtomicBool = AtomicBool::new(false);

impl Store {
    /// How a mail with this digest was recorded, if it was (processed before a crash).
    pub fn recorded_mail_kind(&self, digest: &str) -> Result<Option<MailKind>> {
        let kind: Option<String> = self
            .conn
            .query_row("SELECT kind FROM mails WHERE digest = ?1", [digest], |r| r.get(0))
            .optional()?;
        kind.map(|k| {
            MailKind::parse(&k).ok_or_else(|| StoreError::Corrupt(format!("mail kind {k}")))
        })
        .transpose()
    }

    /// The ping or self-check a return-address tag belongs to.
    pub fn lookup_tag(&self, tag: &str) -> Result<Option<TagTarget>> {
        let ping = self
            .conn
            .query_row(
                "SELECT p.id, p.outcome, p.sent_at, p.chain_type, p.with_from,
                        p.remailer1_id, r1.address, p.type1, k1.key_id,
                        p.remailer2_id, r2.address, p.type2, k2.key_id
                 FROM pings p
                 JOIN remailers r1 ON r1.id = p.remailer1_id
                 LEFT JOIN keys k1 ON k1.id = p.key1_id
                 LEFT JOIN remailers r2 ON r2.id = p.remailer2_id
                 LEFT JOIN keys k2 ON k2.id = p.key2_id
                 WHERE p.tag = ?1",
                [tag],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, bool>(4)?,
                        (r.get::<_, i64>(5)?, r.get::<_, String>(6)?, r.get::<_, String>(7)?),
                        r.get::<_, Option<String>>(8)?,
                        (
                            r.get::<_, Option<i64>>(9)?,
                            r.get::<_, Option<String>>(10)?,
                            r.get::<_, Option<String>>(11)?,
                        ),
                        r.get::<_, Option<String>>(12)?,
                    ))
                },
            )
            .optional()?;
        if let Some((id, outcome, sent_at, chain_type, with_from, h1, k1, h2, k2)) = ping {
            let mut hops = vec![(h1.0, h1.1, h1.2.parse().map_err(StoreError::Corrupt)?, k1)];
            if let (Some(rid), Some(addr), Some(t)) = h2 {
                hops.push((rid, addr, t.parse().map_err(StoreError::Corrupt)?, k2));
            }
            let chain_type = match chain_type {
                Some(c) => Some(c.parse().map_err(StoreError::Corrupt)?),
                None => None,
            };
            return Ok(Some(TagTarget::Ping(TaggedPing {
                id,
                outcome,
                sent_at,
                chain_type,
                hops,
                with_from,
            })));
        }
        if let Some(request) = self.lookup_request(tag)? {
            return Ok(Some(TagTarget::Request(request)));
        }
        let probe = self
            .conn
            .query_row("SELECT id, first_sent_at FROM replay_probes WHERE tag = ?1", [tag], |r| {
                Ok(TagTarget::ReplayProbe { id: r.get(0)?, first_sent_at: r.get(1)? })
            })
            .optional()?;
        if probe.is_some() {
            return Ok(probe);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT id, sent_at, returned_at FROM self_checks WHERE tag = ?1",
                [tag],
                |r| {
                    Ok(TagTarget::SelfCheck {
                        id: r.get(0)?,
                        sent_at: r.get(1)?,
                        returned_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records a mail and its effects in one transaction. Returns the kind finally recorded
    /// (a "return" whose ping is already returned becomes a duplicate), or None when this
    /// mail was recorded before (read again after a crash): then nothing changes.
    pub fn record_mail(
        &mut self,
        mail: &MailRecord,
        effects: &[MailEffect],
    ) -> Result<Option<MailKind>> {
        let tx = self.conn.transaction()?;
        let seen: bool = tx
            .query_row("SELECT 1 FROM mails WHERE digest = ?1", [&mail.digest], |_| Ok(()))
            .optional()?
            .is_some();
        if seen {
            return Ok(None);
        }
        let mut kind = mail.kind;
        for effect in effects {
            match effect {
                MailEffect::Returned { ping_id, sent, returned_at } => {
                    // The send time comes from the authenticated payload, so a return of a
                    // ping whose 250 was never committed (crash) still gets its latency.
                    let n = tx.execute(
                        "UPDATE pings SET outcome = 'returned', returned_at = ?2,
                                sent_at = COALESCE(sent_at, ?3), next_attempt_at = NULL
                         WHERE id = ?1 AND outcome <> 'returned'",
                        params![ping_id, returned_at, sent],
                    )?;
                    if n == 0 && !INJECTED_BUG_COUNT_DUPLICATES.load(Ordering::Relaxed) {
                        kind = MailKind::Duplicate;
                    }
                }
                MailEffect::Corrupted { ping_id, at } => {
                    tx.execute(
                        "UPDATE pings SET outcome = 'corrupted', last_error = 'returned altered',
                                          failed_at = ?2
                         WHERE id = ?1 AND outcome = 'sent'",
                        params![ping_id, at],
                    )?;
                }
                MailEffect::Bounced { ping_id, reason, at } => {
                    tx.execute(
                        "UPDATE pings SET outcome = 'bounced', last_error = ?2, failed_at = ?3
                         WHERE id = ?1 AND outcome = 'sent'",
                        params![ping_id, reason, at],
                    )?;
                }
                MailEffect::SelfCheckReturned { id, returned_at } => {
                    let n = tx.execute(
                        "UPDATE self_checks SET returned_at = ?2
                         WHERE id = ?1 AND returned_at IS NULL",
                        params![id, returned_at],
                    )?;
                    if n == 0 {
                        kind = MailKind::Duplicate;
                    }
                }
                MailEffect::ProbeReturned { id, returned_at } => {
                    // A second copy is no duplicate of ours: the remailer delivered the same
                    // packet twice. The probe's verdict says so; the mail stays a probe copy.
                    super::probes::count_probe_return(&tx, *id, *returned_at)?;
                }
                MailEffect::Discovery(effect) => discovery::apply(&tx, effect)?,
                MailEffect::SignedDowntime { remailer_id, announcement, signer, signed_at, at } => {
                    let applied = super::downtime::apply_signed(
                        &tx,
                        *remailer_id,
                        announcement,
                        signer,
                        *signed_at,
                        *at,
                    )?;
                    if !applied {
                        kind = MailKind::Duplicate;
                    }
                }
                MailEffect::FromLine { remailer_id, ping_type, with_from, header, seen_at } => {
                    tx.execute(
                        "INSERT INTO from_lines (remailer_id, ping_type, with_from, from_header,
                                                 seen_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (remailer_id, ping_type, with_from) DO UPDATE
                         SET from_header = excluded.from_header, seen_at = excluded.seen_at
                         WHERE excluded.seen_at >= from_lines.seen_at",
                        params![remailer_id, ping_type.as_str(), with_from, header, seen_at],
                    )?;
                }
            }
        }
        tx.execute(
            "INSERT INTO mails (digest, source, delivered_at, processed_at, kind, ping_id,
                                detail, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                mail.digest,
                mail.source,
                mail.delivered_at,
                mail.processed_at,
                kind.as_str(),
                mail.ping_id,
                mail.detail,
                mail.raw
            ],
        )?;
        tx.commit()?;
        Ok(Some(kind))
    }

    /// Counts of returned, duplicate, forged, corrupted and bounced mail per remailer address
    /// (a chain's mail counts for both hops), for mail processed after `since`.
    pub fn return_counters(&self, since: i64) -> Result<BTreeMap<String, ReturnCounters>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.address, m.kind, COUNT(*)
             FROM mails m
             JOIN pings p ON p.id = m.ping_id
             JOIN remailers r ON r.id = p.remailer1_id OR r.id = p.remailer2_id
             WHERE m.processed_at > ?1
               AND m.kind IN ('returned', 'duplicate', 'forged', 'corrupted', 'bounced')
             GROUP BY r.address, m.kind",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut out: BTreeMap<String, ReturnCounters> = BTreeMap::new();
        for row in rows {
            let (address, kind, n) = row?;
            let c = out.entry(address).or_default();
            let n = n.max(0) as u64;
            match kind.as_str() {
                "returned" => c.returned += n,
                "duplicate" => c.duplicate += n,
                "forged" => c.forged += n,
                "corrupted" => c.corrupted += n,
                "bounced" => c.bounced += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Mail processed after `since`, by kind (all mail, attributed or not).
    pub fn mail_counts(&self, since: i64) -> Result<BTreeMap<String, u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, COUNT(*) FROM mails WHERE processed_at > ?1 GROUP BY kind")?;
        let rows =
            stmt.query_map([since], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (kind, n) = row?;
            out.insert(kind, n.max(0) as u64);
        }
        Ok(out)
    }

    /// The mail side's health as of `now` (`deadline`: how long a self-check may take).
    pub fn mail_health(&self, now: i64, deadline: i64) -> Result<MailHealth> {
        let last: Option<(i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT processed_at, delivered_at FROM mails ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (returned, failed): (Option<i64>, i64) = self.conn.query_row(
            "SELECT MAX(returned_at),
                    COALESCE(SUM(sent_at IS NOT NULL AND returned_at IS NULL
                                 AND sent_at >= ?1 AND sent_at < ?2), 0)
             FROM self_checks",
            params![now - 86_400, now - deadline],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let requests: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM requests WHERE outcome = 'queued'",
            [],
            |r| r.get(0),
        )?;
        Ok(MailHealth {
            last_mail_processed_at: last.map(|(p, _)| p),
            last_mail_lag_secs: last.and_then(|(p, d)| d.map(|d| (p - d).max(0))),
            last_self_check_returned_at: returned,
            self_checks_failed_last_day: failed.max(0) as u64,
            requests_queued: requests.max(0) as u64,
        })
    }

    /// Every recorded From: line, by address, type and whether ours was asked for.
    pub fn from_lines(&self) -> Result<Vec<FromLine>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.address, f.ping_type, f.with_from, f.from_header
             FROM from_lines f JOIN remailers r ON r.id = f.remailer_id
             ORDER BY r.address, f.ping_type, f.with_from",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (address, ping_type, with_from, header) = row?;
            let ping_type = ping_type.parse().map_err(StoreError::Corrupt)?;
            out.push(FromLine { address, ping_type, with_from, header });
        }
        Ok(out)
    }

    /// Forgets the raw bytes of mail processed before `before` (quarantined mail and replies);
    /// the verdict and its reason stay. Returns how many mails lost their bytes.
    pub fn prune_raw_mail(&mut self, before: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE mails SET raw = NULL WHERE raw IS NOT NULL AND processed_at < ?1",
            [before],
        )?)
    }

    /// The quarantine, newest first.
    pub fn quarantine(&self, limit: usize) -> Result<Vec<QuarantinedMail>> {
        let mut stmt = self.conn.prepare(
            "SELECT processed_at, source, kind, detail, raw IS NOT NULL FROM mails
             WHERE kind IN ('forged', 'corrupted', 'unknown')
             ORDER BY processed_at DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(QuarantinedMail {
                processed_at: r.get(0)?,
                source: r.get(1)?,
                kind: r.get(2)?,
                reason: r.get(3)?,
                raw_kept: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
