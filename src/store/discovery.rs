//! Discovery in the store: the request outbox, what replies teach us (capabilities, keys,
//! candidates, the thesaurus), and the key history.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::model::{
    DiscoveryEffect, DueRequest, KeyChange, KeyEvent, OutboxRequest, PingType, PublishableKey,
    RequestKind, StoredReply, TaggedRequest,
};

use super::{Result, Store, StoreError, remailer_id, upsert_key_tx};

/// A question asked at once (after `add`, or of a newly vouched-for remailer) makes the daily
/// scheduled one of the same kind redundant for this long: its answer is still fresh, and
/// asking twice within minutes only adds mail a remailer operator may find odd.
pub const MANUAL_REQUEST_COVERS_SECS: i64 = 12 * 3600;

impl Store {
    /// Queues a request under `tag`; false when this (remailer, kind, slot) is queued already,
    /// or, for a scheduled request, when the same question was asked at once within
    /// [`MANUAL_REQUEST_COVERS_SECS`].
    pub fn queue_request(
        &mut self,
        due: &DueRequest,
        manual: bool,
        tag: &str,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO requests (remailer_id, kind, slot_time, manual, tag, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6
             WHERE ?4 OR NOT EXISTS (
                 SELECT 1 FROM requests
                 WHERE remailer_id = ?1 AND kind = ?2 AND manual AND created_at > ?6 - ?7)
             ON CONFLICT DO NOTHING",
            params![
                due.remailer_id,
                due.kind.as_str(),
                due.slot_time,
                manual,
                tag,
                now,
                MANUAL_REQUEST_COVERS_SECS
            ],
        )?;
        Ok(n == 1)
    }

    /// Queued requests whose next attempt is due.
    pub fn requests_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxRequest>> {
        let mut stmt = self.conn.prepare(
            "SELECT q.id, r.address, q.kind, q.slot_time, q.tag, q.attempts
             FROM requests q JOIN remailers r ON r.id = q.remailer_id
             WHERE q.outcome = 'queued' AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= ?1)
             ORDER BY q.slot_time, q.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, address, kind, slot_time, tag, attempts) = row?;
            out.push(OutboxRequest {
                id,
                address,
                kind: parse_kind(&kind)?,
                slot_time,
                tag,
                attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
        Ok(out)
    }

    /// The MTA accepted the request. A scheduled conf request counts towards the remailer's
    /// unanswered requests; at `unanswered_limit` an active remailer becomes unresponsive.
    pub fn mark_request_sent(&mut self, id: i64, at: i64, unanswered_limit: u32) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE requests SET outcome = 'sent', sent_at = ?2, attempts = attempts + 1,
                                 next_attempt_at = NULL
             WHERE id = ?1",
            params![id, at],
        )?;
        tx.execute(
            "UPDATE remailers SET
                unanswered = unanswered + 1,
                status = CASE WHEN status = 'active' AND unanswered + 1 >= ?2
                              THEN 'unresponsive' ELSE status END,
                status_reason = CASE WHEN status = 'active' AND unanswered + 1 >= ?2
                              THEN (unanswered + 1) || ' conf requests unanswered'
                              ELSE status_reason END
             WHERE id = (SELECT remailer_id FROM requests
                         WHERE id = ?1 AND kind = 'conf' AND manual = 0)",
            params![id, unanswered_limit],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn defer_request(&mut self, id: i64, next_attempt_at: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE requests SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
             WHERE id = ?1",
            params![id, next_attempt_at, error],
        )?;
        Ok(())
    }

    pub fn mark_request_not_sent(&mut self, id: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE requests SET outcome = 'not_sent', attempts = attempts + 1, last_error = ?2
             WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    /// The request a reply's tag belongs to.
    pub fn lookup_request(&self, tag: &str) -> Result<Option<TaggedRequest>> {
        let row = self
            .conn
            .query_row(
                "SELECT q.id, q.remailer_id, r.address, q.kind, q.sent_at
                 FROM requests q JOIN remailers r ON r.id = q.remailer_id WHERE q.tag = ?1",
                [tag],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, remailer_id, address, kind, sent_at)| {
            Ok(TaggedRequest { id, remailer_id, address, kind: parse_kind(&kind)?, sent_at })
        })
        .transpose()
    }

    /// The latest reply of each kind from a remailer, by kind.
    /// The latest replies of every remailer, by remailer row id (one query for the pages).
    pub fn all_replies(&self) -> Result<BTreeMap<i64, Vec<StoredReply>>> {
        let mut stmt = self.conn.prepare(
            "SELECT remailer_id, kind, received_at, body FROM replies ORDER BY remailer_id, kind",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out: BTreeMap<i64, Vec<StoredReply>> = BTreeMap::new();
        for row in rows {
            let (remailer_id, kind, received_at, body) = row?;
            out.entry(remailer_id).or_default().push(StoredReply {
                kind: parse_kind(&kind)?,
                received_at,
                body,
            });
        }
        Ok(out)
    }

    pub fn replies_of(&self, remailer_id: i64) -> Result<Vec<StoredReply>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, received_at, body FROM replies WHERE remailer_id = ?1 ORDER BY kind",
        )?;
        let rows = stmt.query_map([remailer_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, received_at, body) = row?;
            out.push(StoredReply { kind: parse_kind(&kind)?, received_at, body });
        }
        Ok(out)
    }

    /// A remailer's key history, oldest first.
    pub fn key_history(&self, remailer_id: i64) -> Result<Vec<KeyEvent>> {
        let mut stmt = self.conn.prepare(
            "SELECT k.ping_type, k.key_id, e.at, e.event, e.detail
             FROM key_events e JOIN keys k ON k.id = e.key_row_id
             WHERE k.remailer_id = ?1 ORDER BY e.at, e.id",
        )?;
        let rows = stmt.query_map([remailer_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ping_type, key_id, at, event, detail) = row?;
            out.push(KeyEvent {
                ping_type: ping_type.parse().map_err(StoreError::Corrupt)?,
                key_id,
                at,
                event,
                detail,
            });
        }
        Ok(out)
    }

    /// Turns candidates into remailers: an address named by itself, or vouched for by at
    /// least `min_vouchers` distinct remailers within `ttl` seconds. Older candidate rows
    /// are dropped. Returns the addresses added.
    pub fn commit_candidates(
        &mut self,
        now: i64,
        ttl: i64,
        min_vouchers: u32,
    ) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM candidates WHERE seen_at < ?1", [now - ttl])?;
        tx.execute("DELETE FROM candidates WHERE address IN (SELECT address FROM remailers)", [])?;
        let ready: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT address FROM candidates GROUP BY address
                 HAVING MAX(reason IN ('self-conf', 'self-key')) = 1
                     OR COUNT(DISTINCT recommender) >= ?1
                 ORDER BY address",
            )?;
            stmt.query_map([min_vouchers], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        for address in &ready {
            tx.execute(
                "INSERT INTO remailers (address, first_seen, updated_at) VALUES (?1, ?2, ?2)
                 ON CONFLICT (address) DO NOTHING",
                params![address, now],
            )?;
            tx.execute("DELETE FROM candidates WHERE address = ?1", [address])?;
        }
        tx.commit()?;
        Ok(ready)
    }

    /// The key to publish per remailer and type: of the current keys (valid at `now`, not
    /// retired) of remailers that have a nick and are not disabled, the newest. Ordered by
    /// address and type.
    pub fn publishable_keys(&self, now: i64) -> Result<Vec<PublishableKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.address, r.nick, k.id, k.ping_type, k.key_id, k.material, k.valid_from,
                    k.valid_until
             FROM keys k JOIN remailers r ON r.id = k.remailer_id
             WHERE r.nick IS NOT NULL AND r.status <> 'disabled' AND k.retired_at IS NULL
               AND k.material IS NOT NULL
               AND k.ping_type IN ('mix', 'cpunk-rsa', 'cpunk-dsa', 'yamn')
             ORDER BY r.address, k.ping_type, COALESCE(k.valid_from, 0) DESC, k.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ))
        })?;
        let mut out: Vec<PublishableKey> = Vec::new();
        for row in rows {
            let (address, nick, id, ping_type, key_id, material, valid_from, valid_until) = row?;
            let ping_type: PingType = ping_type.parse().map_err(StoreError::Corrupt)?;
            let key = super::RemailerKey {
                id,
                ping_type,
                key_id,
                valid_from,
                valid_until,
                retired_at: None,
                first_seen: 0,
            };
            let taken =
                out.last().is_some_and(|k| k.address == address && k.ping_type == ping_type);
            if taken || !key.is_current(now) {
                continue;
            }
            out.push(PublishableKey { address, nick, ping_type, key_id: key.key_id, material });
        }
        Ok(out)
    }

    /// Candidates not yet added: address and the number of distinct vouchers.
    pub fn candidates(&self) -> Result<Vec<(String, u32)>> {
        let mut stmt = self.conn.prepare(
            "SELECT address, COUNT(DISTINCT recommender) FROM candidates
             GROUP BY address ORDER BY address",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn parse_kind(s: &str) -> Result<RequestKind> {
    RequestKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("request kind {s}")))
}

/// Stores a key in `tx`, recording the change in the key history. A retired key offered
/// again is restored.
#[allow(clippy::too_many_arguments)]
pub(super) fn store_key_tx(
    tx: &Transaction,
    remailer_id: i64,
    ping_type: PingType,
    key_id: &str,
    material: &str,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    now: i64,
) -> Result<KeyChange> {
    // (material, valid_from, valid_until, retired_at) of the stored key, if any.
    type Stored = (Option<String>, Option<i64>, Option<i64>, Option<i64>);
    let before: Option<Stored> = tx
        .query_row(
            "SELECT material, valid_from, valid_until, retired_at FROM keys
             WHERE remailer_id = ?1 AND ping_type = ?2 AND key_id = ?3",
            params![remailer_id, ping_type.as_str(), key_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (id, created) = upsert_key_tx(tx, remailer_id, ping_type, key_id, now)?;
    tx.execute(
        "UPDATE keys SET material = ?2, valid_from = ?3, valid_until = ?4, retired_at = NULL
         WHERE id = ?1",
        params![id, material, valid_from, valid_until],
    )?;
    let change = match &before {
        None if created => KeyChange::Added,
        Some((m, f, u, None))
            if m.as_deref() == Some(material) && *f == valid_from && *u == valid_until =>
        {
            KeyChange::Unchanged
        }
        _ => KeyChange::Updated,
    };
    let event = match (&before, change) {
        (_, KeyChange::Unchanged) => None,
        (Some((_, _, _, Some(_))), _) => Some("restored"),
        (_, KeyChange::Added) => Some("added"),
        (_, KeyChange::Updated) => Some("updated"),
    };
    if let Some(event) = event {
        key_event(tx, id, now, event, None)?;
    }
    Ok(change)
}

fn key_event(
    tx: &Transaction,
    key_row_id: i64,
    at: i64,
    event: &str,
    detail: Option<&str>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO key_events (key_row_id, at, event, detail) VALUES (?1, ?2, ?3, ?4)",
        params![key_row_id, at, event, detail],
    )?;
    Ok(())
}

/// Retires the remailer's current keys of `ping_type` not in `keep`.
fn retire_missing(
    tx: &Transaction,
    remailer_id: i64,
    ping_type: PingType,
    keep: &[&str],
    at: i64,
    why: &str,
) -> Result<()> {
    let current: Vec<(i64, String)> = {
        let mut stmt = tx.prepare(
            "SELECT id, key_id FROM keys
             WHERE remailer_id = ?1 AND ping_type = ?2 AND retired_at IS NULL",
        )?;
        stmt.query_map(params![remailer_id, ping_type.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (id, key_id) in current.into_iter().filter(|(_, k)| !keep.contains(&k.as_str())) {
        tx.execute("UPDATE keys SET retired_at = ?2 WHERE id = ?1", params![id, at])?;
        key_event(tx, id, at, "retired", Some(why))?;
        tracing::info!(remailer_id, %ping_type, key_id, "key retired: {why}");
    }
    Ok(())
}

/// Applies one discovery effect inside the mail's transaction.
pub(super) fn apply(tx: &Transaction, effect: &DiscoveryEffect) -> Result<()> {
    match effect {
        DiscoveryEffect::Answered { request_id, remailer_id, at, restores } => {
            tx.execute(
                "UPDATE requests SET outcome = 'answered', answered_at = COALESCE(answered_at, ?2)
                 WHERE id = ?1",
                params![request_id, at],
            )?;
            if *restores {
                tx.execute(
                    "UPDATE remailers SET unanswered = 0, last_answer_at = ?2,
                        status = CASE WHEN status = 'unresponsive' THEN 'active' ELSE status END,
                        status_reason = CASE WHEN status = 'unresponsive' THEN NULL
                                             ELSE status_reason END
                     WHERE id = ?1",
                    params![remailer_id, at],
                )?;
            }
        }
        DiscoveryEffect::Thesaurus { remailer_id, kind, body, at } => {
            tx.execute(
                "INSERT INTO replies (remailer_id, kind, received_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (remailer_id, kind) DO UPDATE
                 SET received_at = excluded.received_at, body = excluded.body
                 WHERE excluded.received_at >= replies.received_at",
                params![remailer_id, kind.as_str(), at, body],
            )?;
        }
        DiscoveryEffect::Capabilities { remailer_id, caps, remailer_type, request_time } => {
            let n = tx.execute(
                "UPDATE remailers SET nick = ?2, caps = ?3, remailer_type = COALESCE(?4, remailer_type),
                                      caps_updated_at = ?5, updated_at = ?5
                 WHERE id = ?1 AND (caps_updated_at IS NULL OR caps_updated_at <= ?5)",
                params![remailer_id, caps.nick, caps.line, remailer_type, request_time],
            )?;
            if n == 1 {
                // Plaintext type I is a "key" of its own (Echolot's cpunk-clear pseudo key).
                if caps.accepts_clear() {
                    store_key_tx(
                        tx,
                        *remailer_id,
                        PingType::CpunkClear,
                        super::CLEAR_KEY_ID,
                        "N/A",
                        None,
                        None,
                        *request_time,
                    )?;
                } else {
                    retire_missing(
                        tx,
                        *remailer_id,
                        PingType::CpunkClear,
                        &[],
                        *request_time,
                        "capabilities no longer accept plaintext",
                    )?;
                }
            }
        }
        DiscoveryEffect::Keys { remailer_id, keys, complete_types, at } => {
            for k in keys {
                store_key_tx(
                    tx,
                    *remailer_id,
                    k.ping_type,
                    &k.key_id,
                    &k.material,
                    k.valid_from,
                    k.valid_until,
                    *at,
                )?;
            }
            for t in complete_types {
                let keep: Vec<&str> =
                    keys.iter().filter(|k| k.ping_type == *t).map(|k| k.key_id.as_str()).collect();
                retire_missing(tx, *remailer_id, *t, &keep, *at, "no longer in the key reply")?;
            }
        }
        DiscoveryEffect::NotARemailer { remailer_id, at } => {
            tx.execute(
                "UPDATE remailers SET status = 'disabled',
                        status_reason = 'replied: not a remailer', updated_at = ?2
                 WHERE id = ?1",
                params![remailer_id, at],
            )?;
        }
        DiscoveryEffect::Candidates { recommender, candidates, at } => {
            for c in candidates {
                if remailer_id(tx, &c.address)?.is_some() {
                    continue;
                }
                tx.execute(
                    "INSERT INTO candidates (address, recommender, reason, seen_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (address, recommender) DO UPDATE
                     SET reason = excluded.reason, seen_at = excluded.seen_at",
                    params![c.address, recommender, c.reason.as_str(), at],
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::caps::parse_caps_line;
    use crate::model::*;
    use crate::model::{CandidateReason, MailEffect};
    use crate::model::{MailKind, MailRecord};

    fn apply_effects(store: &mut Store, digest: &str, effects: Vec<DiscoveryEffect>) {
        let record = MailRecord {
            digest: digest.into(),
            source: "test".into(),
            delivered_at: Some(0),
            processed_at: 0,
            kind: MailKind::Reply,
            ping_id: None,
            detail: None,
            raw: None,
        };
        let effects: Vec<MailEffect> = effects.into_iter().map(MailEffect::Discovery).collect();
        store.record_mail(&record, &effects).unwrap();
    }

    fn vouch(address: &str, by: &str, at: i64) -> DiscoveryEffect {
        DiscoveryEffect::Candidates {
            recommender: by.into(),
            candidates: vec![Candidate {
                address: address.into(),
                reason: CandidateReason::VouchedType2,
            }],
            at,
        }
    }

    #[test]
    fn a_candidate_needs_enough_distinct_recent_vouchers() {
        let mut s = Store::open_in_memory().unwrap();
        let day = 86_400;
        // Five remailers vouch, one of them twice; a sixth vouched too long ago.
        let mut effects: Vec<DiscoveryEffect> =
            (0..5).map(|i| vouch("new@x", &format!("r{i}@x"), 10 * day)).collect();
        effects.push(vouch("new@x", "r0@x", 10 * day));
        effects.push(vouch("new@x", "old@x", 2 * day));
        apply_effects(&mut s, "a", effects);
        assert!(s.commit_candidates(10 * day, 5 * day, 6).unwrap().is_empty());
        assert_eq!(s.candidates().unwrap(), [("new@x".to_owned(), 5)]);
        apply_effects(&mut s, "b", vec![vouch("new@x", "r5@x", 11 * day)]);
        assert_eq!(s.commit_candidates(11 * day, 5 * day, 6).unwrap(), ["new@x"]);
        assert!(s.find_remailer("new@x").is_ok());
        assert!(s.candidates().unwrap().is_empty());
        // A remailer naming its own new address is added at once.
        let own = DiscoveryEffect::Candidates {
            recommender: "r0@x".into(),
            candidates: vec![Candidate {
                address: "moved@x".into(),
                reason: CandidateReason::SelfConf,
            }],
            at: 12 * day,
        };
        apply_effects(&mut s, "c", vec![own]);
        assert_eq!(s.commit_candidates(12 * day, 5 * day, 6).unwrap(), ["moved@x"]);
    }

    #[test]
    fn a_question_asked_at_once_stands_in_for_the_scheduled_one_for_12_hours() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let at = 1_000_000;
        let asked = DueRequest { remailer_id: id, kind: RequestKind::Conf, slot_time: at };
        assert!(s.queue_request(&asked, true, "manual", at).unwrap());
        let daily = |slot_time| DueRequest { slot_time, ..asked };
        let key = DueRequest { kind: RequestKind::Key, ..daily(at + 60) };
        assert!(!s.queue_request(&daily(at + 60), false, "soon", at + 60).unwrap());
        assert!(s.queue_request(&key, false, "other kind", at + 60).unwrap());
        let later = at + MANUAL_REQUEST_COVERS_SECS;
        assert!(!s.queue_request(&daily(later - 1), false, "still", later - 1).unwrap());
        assert!(s.queue_request(&daily(later), false, "next day", later).unwrap());
        // Asking at once again is always allowed (the operator asked for it).
        assert!(s.queue_request(&daily(at + 120), true, "again", at + 120).unwrap());
    }

    #[test]
    fn unanswered_conf_requests_make_a_remailer_unresponsive_until_it_answers() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        for day in 0..5 {
            let due =
                DueRequest { remailer_id: id, kind: RequestKind::Conf, slot_time: day * 86_400 };
            s.queue_request(&due, false, &format!("tag{day}"), 0).unwrap();
            // Manual requests (after `add`) do not count.
            let manual = DueRequest { kind: RequestKind::Key, ..due };
            s.queue_request(&manual, true, &format!("key{day}"), 0).unwrap();
        }
        let mut conf_sent = 0;
        for r in s.requests_due(10 * 86_400, 100).unwrap() {
            let expected =
                if conf_sent < 5 { RemailerStatus::Active } else { RemailerStatus::Unresponsive };
            assert_eq!(s.find_remailer("a@x").unwrap().status, expected);
            s.mark_request_sent(r.id, r.slot_time, 5).unwrap();
            conf_sent += usize::from(r.kind == RequestKind::Conf);
        }
        let r = s.find_remailer("a@x").unwrap();
        assert_eq!(r.status, RemailerStatus::Unresponsive);
        assert_eq!(r.status_reason.as_deref(), Some("5 conf requests unanswered"));
        let request = s.lookup_request("tag4").unwrap().unwrap();
        apply_effects(
            &mut s,
            "answer",
            vec![DiscoveryEffect::Answered {
                request_id: request.id,
                remailer_id: id,
                at: 5,
                restores: true,
            }],
        );
        let r = s.find_remailer("a@x").unwrap();
        assert_eq!((r.status.as_str(), r.status_reason), ("active", None));
    }

    #[test]
    fn keys_missing_from_a_newer_reply_are_retired_and_come_back_when_offered_again() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let key = |key_id: &str| OfferedKey {
            ping_type: PingType::Mix,
            key_id: key_id.into(),
            material: format!("entry {key_id}"),
            valid_from: Some(0),
            valid_until: None,
        };
        let reply = |keys: Vec<OfferedKey>, at| DiscoveryEffect::Keys {
            remailer_id: id,
            keys,
            complete_types: vec![PingType::Mix],
            at,
        };
        apply_effects(&mut s, "1", vec![reply(vec![key("old")], 100)]);
        // Rollover: both keys, then only the new one.
        apply_effects(&mut s, "2", vec![reply(vec![key("old"), key("new")], 200)]);
        apply_effects(&mut s, "3", vec![reply(vec![key("new")], 300)]);
        let r = s.find_remailer("a@x").unwrap();
        let retired: Vec<(&str, Option<i64>)> =
            r.keys.iter().map(|k| (k.key_id.as_str(), k.retired_at)).collect();
        assert_eq!(retired, [("new", None), ("old", Some(300))]);
        apply_effects(&mut s, "4", vec![reply(vec![key("old"), key("new")], 400)]);
        let events: Vec<(String, String)> =
            s.key_history(id).unwrap().into_iter().map(|e| (e.key_id, e.event)).collect();
        let expect = [("old", "added"), ("new", "added"), ("old", "retired"), ("old", "restored")];
        assert_eq!(events, expect.map(|(k, e)| (k.to_owned(), e.to_owned())),);
    }

    #[test]
    fn capabilities_set_clear_type_i_and_testing_hides() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let caps = |line: &str, t| DiscoveryEffect::Capabilities {
            remailer_id: id,
            caps: parse_caps_line(line).unwrap(),
            remailer_type: None,
            request_time: t,
        };
        apply_effects(
            &mut s,
            "1",
            vec![caps("$remailer{\"a\"} = \"<a@x> cpunk mix testing\";", 10)],
        );
        let r = s.find_remailer("a@x").unwrap();
        assert!(r.is_hidden() && !r.hidden);
        assert_eq!(r.keys[0].ping_type, PingType::CpunkClear);
        // An older reply arriving late changes nothing.
        apply_effects(&mut s, "2", vec![caps("$remailer{\"b\"} = \"<a@x> mix\";", 5)]);
        assert_eq!(s.find_remailer("a@x").unwrap().nick.as_deref(), Some("a"));
        apply_effects(
            &mut s,
            "3",
            vec![caps("$remailer{\"a\"} = \"<a@x> cpunk pgponly mix\";", 20)],
        );
        let r = s.find_remailer("a@x").unwrap();
        assert!(!r.is_hidden());
        assert!(r.keys[0].retired_at.is_some(), "pgponly: no more plaintext pings");
    }
}
