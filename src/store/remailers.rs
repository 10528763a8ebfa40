//! Remailers and their keys.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Result, Store, StoreError, column_status, remailer_id, upsert_key_tx};
use crate::model::{KeyChange, PingType, Remailer, RemailerKey, RemailerStatus, RequestKind};

impl Store {
    /// Adds an address; returns false if it was already known (it is then left unchanged,
    /// unlike Echolot, which reset its flags).
    pub fn add_remailer(&mut self, address: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO remailers (address, first_seen, updated_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (address) DO NOTHING",
            params![address, now],
        )?;
        Ok(n == 1)
    }

    /// Removes a remailer with its keys and ping history; returns false if unknown.
    pub fn remove_remailer(&mut self, address: &str) -> Result<bool> {
        let n = self.conn.execute("DELETE FROM remailers WHERE address = ?1", [address])?;
        Ok(n == 1)
    }

    /// Finds a remailer by address, or by nick when no address matches.
    pub fn find_remailer(&self, address_or_nick: &str) -> Result<Remailer> {
        let mut all = self.remailers()?;
        let by_address = all.iter().position(|r| r.address == address_or_nick);
        let index = by_address
            .or_else(|| all.iter().position(|r| r.nick.as_deref() == Some(address_or_nick)))
            .ok_or_else(|| StoreError::UnknownRemailer(address_or_nick.to_owned()))?;
        Ok(all.swap_remove(index))
    }

    /// Every remailer with its keys, ordered by address.
    pub fn remailers(&self) -> Result<Vec<Remailer>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, address, nick, caps, status, hidden, first_seen, status_reason,
                    remailer_type, last_answer_at
             FROM remailers ORDER BY address",
        )?;
        let mut rows: Vec<Remailer> = stmt
            .query_map([], |r| {
                Ok(Remailer {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    nick: r.get(2)?,
                    caps: r.get(3)?,
                    status: column_status(r.get::<_, String>(4)?)?,
                    status_reason: r.get(7)?,
                    remailer_type: r.get(8)?,
                    last_answer_at: r.get(9)?,
                    hidden: r.get(5)?,
                    first_seen: r.get(6)?,
                    keys: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut keys = self.conn.prepare(
            "SELECT remailer_id, id, ping_type, key_id, valid_from, valid_until, retired_at,
                    first_seen
             FROM keys ORDER BY remailer_id, ping_type, key_id",
        )?;
        let mut by_remailer: BTreeMap<i64, Vec<RemailerKey>> = BTreeMap::new();
        let key_rows = keys.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        for row in key_rows {
            let (
                remailer_id,
                id,
                ping_type,
                key_id,
                valid_from,
                valid_until,
                retired_at,
                first_seen,
            ) = row?;
            let ping_type: PingType = ping_type.parse().map_err(StoreError::Corrupt)?;
            by_remailer.entry(remailer_id).or_default().push(RemailerKey {
                id,
                ping_type,
                key_id,
                valid_from,
                valid_until,
                retired_at,
                first_seen,
            });
        }
        for row in &mut rows {
            row.keys = by_remailer.remove(&row.id).unwrap_or_default();
        }
        Ok(rows)
    }

    /// Records a key (or notes that we saw it again); returns its row id.
    pub fn upsert_key(
        &mut self,
        address: &str,
        ping_type: PingType,
        key_id: &str,
        now: i64,
    ) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let remailer_id = remailer_id(&tx, address)?
            .ok_or_else(|| StoreError::UnknownRemailer(address.to_owned()))?;
        let (id, _) = upsert_key_tx(&tx, remailer_id, ping_type, key_id, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// Stores a key with its material (from `import-keys` or a key reply). A key seen before
    /// gets its material and dates refreshed; returns what changed.
    #[allow(clippy::too_many_arguments)]
    pub fn store_key(
        &mut self,
        address: &str,
        ping_type: PingType,
        key_id: &str,
        material: &str,
        valid_from: Option<i64>,
        valid_until: Option<i64>,
        now: i64,
    ) -> Result<KeyChange> {
        let tx = self.conn.transaction()?;
        let remailer_id = remailer_id(&tx, address)?
            .ok_or_else(|| StoreError::UnknownRemailer(address.to_owned()))?;
        let change = super::discovery::store_key_tx(
            &tx,
            remailer_id,
            ping_type,
            key_id,
            material,
            valid_from,
            valid_until,
            now,
        )?;
        tx.commit()?;
        Ok(change)
    }

    /// Sets a remailer's nick and capability line when it has none yet (a key reply carries
    /// both); returns whether anything changed.
    pub fn fill_identity(
        &mut self,
        address: &str,
        nick: &str,
        caps: &str,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE remailers SET nick = COALESCE(nick, ?2), caps = COALESCE(caps, ?3),
                                  updated_at = ?4
             WHERE address = ?1 AND (nick IS NULL OR caps IS NULL)",
            params![address, nick, caps, now],
        )?;
        Ok(n == 1)
    }

    /// Sets a remailer's status and its reason (an import from another pinger); returns
    /// whether it changed.
    pub fn set_status(
        &mut self,
        address: &str,
        status: RemailerStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE remailers SET status = ?2, status_reason = ?3, updated_at = ?4
             WHERE address = ?1 AND (status <> ?2 OR status_reason IS NOT ?3)",
            params![address, status.as_str(), reason, now],
        )?;
        Ok(n == 1)
    }

    /// Keeps a raw reply for the thesaurus unless a newer one of its kind is kept; returns
    /// whether it was stored.
    pub fn store_reply(
        &mut self,
        remailer_id: i64,
        kind: RequestKind,
        received_at: i64,
        body: &str,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO replies (remailer_id, kind, received_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (remailer_id, kind) DO UPDATE
             SET received_at = excluded.received_at, body = excluded.body
             WHERE excluded.received_at > replies.received_at",
            params![remailer_id, kind.as_str(), received_at, body],
        )?;
        Ok(n == 1)
    }

    /// Keeps the From: line a remailer's returns had, unless a newer one is kept; returns
    /// whether it was stored.
    pub fn store_from_line(
        &mut self,
        remailer_id: i64,
        ping_type: PingType,
        with_from: bool,
        header: &str,
        seen_at: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO from_lines (remailer_id, ping_type, with_from, from_header, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (remailer_id, ping_type, with_from) DO UPDATE
             SET from_header = excluded.from_header, seen_at = excluded.seen_at
             WHERE excluded.seen_at > from_lines.seen_at",
            params![remailer_id, ping_type.as_str(), with_from, header, seen_at],
        )?;
        Ok(n == 1)
    }

    /// Sets a remailer's nick when it has none (from a Mix key entry's header line); returns
    /// whether it changed.
    pub fn fill_nick(&mut self, address: &str, nick: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE remailers SET nick = ?2, updated_at = ?3 WHERE address = ?1 AND nick IS NULL",
            params![address, nick, now],
        )?;
        Ok(n == 1)
    }
}
