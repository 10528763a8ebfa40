//! Announced downtime: entered by the operator, or applied from a signed announcement (in
//! the transaction that records its mail).

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError};
use crate::model::downtime::{Announcement, Downtime, DowntimeSource};

const COLUMNS: &str = "d.id, d.remailer_id, r.address, d.starts_at, d.until, d.reason, d.source,
                       d.signer, d.announced_at, d.removed_at, d.superseded_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Downtime, String)> {
    let source: String = r.get(6)?;
    Ok((
        Downtime {
            id: r.get(0)?,
            remailer_id: r.get(1)?,
            address: r.get(2)?,
            announcement: Announcement {
                starts_at: r.get(3)?,
                until: r.get(4)?,
                reason: r.get(5)?,
            },
            source: DowntimeSource::Operator,
            signer: r.get(7)?,
            announced_at: r.get(8)?,
            removed_at: r.get(9)?,
            superseded_at: r.get(10)?,
        },
        source,
    ))
}

fn with_source((mut d, source): (Downtime, String)) -> Result<Downtime> {
    d.source = DowntimeSource::parse(&source)
        .ok_or_else(|| StoreError::Corrupt(format!("downtime source `{source}`")))?;
    Ok(d)
}

/// Applies a signed announcement unless one of the same remailer signed at the same time or
/// later was applied before (a replay). Its earlier signed announcements are replaced.
/// Returns whether it was applied.
pub(super) fn apply_signed(
    tx: &Transaction<'_>,
    remailer_id: i64,
    a: &Announcement,
    signer: &str,
    signed_at: i64,
    now: i64,
) -> Result<bool> {
    let newest: Option<i64> = tx.query_row(
        "SELECT MAX(announced_at) FROM downtimes WHERE remailer_id = ?1 AND source = 'signed'",
        [remailer_id],
        |r| r.get(0),
    )?;
    if newest.is_some_and(|t| t >= signed_at) {
        return Ok(false);
    }
    tx.execute(
        "UPDATE downtimes SET removed_at = ?2, superseded_at = ?2
         WHERE remailer_id = ?1 AND source = 'signed' AND removed_at IS NULL",
        params![remailer_id, now],
    )?;
    tx.execute(
        "INSERT INTO downtimes (remailer_id, starts_at, until, reason, source, signer,
                                announced_at, created_at)
         VALUES (?1, ?2, ?3, ?4, 'signed', ?5, ?6, ?7)",
        params![remailer_id, a.starts_at, a.until, a.reason, signer, signed_at, now],
    )?;
    Ok(true)
}

impl Store {
    /// Records a downtime the operator entered; returns its id.
    pub fn add_downtime(&mut self, remailer_id: i64, a: &Announcement, now: i64) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO downtimes (remailer_id, starts_at, until, reason, source, announced_at,
                                    created_at)
             VALUES (?1, ?2, ?3, ?4, 'operator', ?5, ?5)",
            params![remailer_id, a.starts_at, a.until, a.reason, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Removes a downtime (it no longer counts anywhere); false if there is no such one in
    /// force.
    pub fn remove_downtime(&mut self, id: i64, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE downtimes SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    /// The downtimes still of interest at `since`: not removed before it, and not ended
    /// before it (with removed and replaced ones, which the statistics need to see go).
    pub fn downtimes(&self, since: i64) -> Result<Vec<Downtime>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM downtimes d JOIN remailers r ON r.id = d.remailer_id
             WHERE d.until >= ?1 AND (d.removed_at IS NULL OR d.removed_at >= ?1)
             ORDER BY d.starts_at, d.id"
        ))?;
        let rows = stmt.query_map([since], row)?;
        rows.map(|r| with_source(r?)).collect()
    }

    /// When the newest signed announcement of a remailer applied was signed.
    pub fn newest_signed_downtime(&self, remailer_id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MAX(announced_at) FROM downtimes
                 WHERE remailer_id = ?1 AND source = 'signed'",
                [remailer_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// The latest admin-key reply of a remailer (what `remailer-adminkey` returned, or what
    /// the operator imported), with the remailer's row id.
    pub fn admin_key(&self, address: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.id, p.body FROM remailers r
                 JOIN replies p ON p.remailer_id = r.id AND p.kind = 'adminkey'
                 WHERE r.address = ?1 COLLATE NOCASE",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Stores an admin key the operator vouches for, as the remailer's admin-key reply.
    pub fn import_admin_key(&mut self, remailer_id: i64, armoured: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO replies (remailer_id, kind, received_at, body)
             VALUES (?1, 'adminkey', ?2, ?3)
             ON CONFLICT (remailer_id, kind) DO UPDATE
             SET received_at = excluded.received_at, body = excluded.body",
            params![remailer_id, now, armoured],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MailEffect;

    fn announcement(starts_at: i64, until: i64) -> Announcement {
        Announcement { starts_at, until, reason: "new disks".into() }
    }

    #[test]
    fn operator_downtimes_are_listed_until_removed() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let d = s.add_downtime(id, &announcement(1_000, 5_000), 900).unwrap();
        let listed = s.downtimes(0).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].address.as_str(), listed[0].source),
            ("a@x", DowntimeSource::Operator)
        );
        assert!(s.downtimes(6_000).unwrap().is_empty(), "over before `since`");
        assert!(s.remove_downtime(d, 2_000).unwrap());
        assert!(!s.remove_downtime(d, 2_001).unwrap(), "removed once");
        assert_eq!(s.downtimes(1_500).unwrap()[0].removed_at, Some(2_000));
        assert!(s.downtimes(2_500).unwrap().is_empty());
    }

    #[test]
    fn a_signed_announcement_replaces_older_ones_and_replays_change_nothing() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let record = |s: &mut Store, digest: &str, signed_at: i64, a: Announcement| {
            let mail = crate::model::MailRecord {
                digest: digest.into(),
                source: "test".into(),
                delivered_at: Some(signed_at),
                processed_at: signed_at,
                kind: crate::model::MailKind::Reply,
                ping_id: None,
                detail: None,
                raw: None,
            };
            let effect = MailEffect::SignedDowntime {
                remailer_id: id,
                announcement: a,
                signer: "FPR".into(),
                signed_at,
                at: signed_at + 5,
            };
            s.record_mail(&mail, &[effect]).unwrap()
        };
        assert_eq!(
            record(&mut s, "m1", 100, announcement(1_000, 2_000)),
            Some(crate::model::MailKind::Reply)
        );
        assert_eq!(
            record(&mut s, "m2", 200, announcement(1_500, 3_000)),
            Some(crate::model::MailKind::Reply)
        );
        assert_eq!(
            record(&mut s, "m3", 100, announcement(1_000, 2_000)),
            Some(crate::model::MailKind::Duplicate),
            "a replay of the first"
        );
        let all = s.downtimes(0).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].superseded_at, all[0].removed_at), (Some(205), Some(205)));
        assert_eq!(all[1].removed_at, None);
        assert_eq!(all[1].signer.as_deref(), Some("FPR"));
        assert_eq!(s.newest_signed_downtime(id).unwrap(), Some(200));
    }
}
