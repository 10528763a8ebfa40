//! The ping history: imported from CSV, and read back as the rows a statistics build needs.

use rusqlite::{Transaction, params};

use super::{Result, Store, StoreError, remailer_id, upsert_key_tx};
use crate::model::{
    CLEAR_KEY_ID, ChainRow, ChainType, HistoryRows, ImportSummary, ImportedChain, ImportedPing,
    Ping, PingType, RemailerInfo, SECONDS_PER_DAY, SingleRow, UNKNOWN_KEY_ID,
};

impl Store {
    /// Loads a ping history in one transaction: remailer identities first, then single and
    /// chain pings. Remailers named only in pings are created; pings already present (same
    /// key and send time) are skipped, so importing a file twice changes nothing.
    pub fn import(
        &mut self,
        remailers: &[RemailerInfo],
        pings: &[ImportedPing],
        chains: &[ImportedChain],
        now: i64,
    ) -> Result<ImportSummary> {
        let mut summary = ImportSummary::default();
        let tx = self.conn.transaction()?;
        for info in remailers {
            let existed = remailer_id(&tx, &info.address)?.is_some();
            tx.execute(
                "INSERT INTO remailers (address, nick, caps, hidden, first_seen, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (address) DO UPDATE SET
                    nick = excluded.nick, caps = excluded.caps, hidden = excluded.hidden,
                    updated_at = excluded.updated_at",
                params![info.address, info.nick, info.caps, info.hidden, now],
            )?;
            if existed {
                summary.remailers_updated += 1;
            } else {
                summary.remailers_added += 1;
            }
        }
        let mut ensure_remailer = |tx: &Transaction, address: &str| -> Result<i64> {
            if let Some(id) = remailer_id(tx, address)? {
                return Ok(id);
            }
            tx.execute(
                "INSERT INTO remailers (address, first_seen, updated_at) VALUES (?1, ?2, ?2)",
                params![address, now],
            )?;
            summary.remailers_added += 1;
            Ok(tx.last_insert_rowid())
        };
        let mut single_rows = Vec::with_capacity(pings.len());
        for p in pings {
            let rid = ensure_remailer(&tx, &p.address)?;
            let key_id = p.key_id.as_deref().unwrap_or(match p.ping_type {
                PingType::CpunkClear => CLEAR_KEY_ID,
                _ => UNKNOWN_KEY_ID,
            });
            single_rows.push((rid, p, key_id));
        }
        let mut chain_rows = Vec::with_capacity(chains.len());
        for c in chains {
            let r1 = ensure_remailer(&tx, &c.addr1)?;
            let r2 = ensure_remailer(&tx, &c.addr2)?;
            chain_rows.push((r1, r2, c));
        }
        {
            let mut insert_single = tx.prepare(
                "INSERT INTO pings (remailer1_id, type1, key1_id, slot_time, sent_at,
                                    returned_at, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING",
            )?;
            for (rid, p, key_id) in single_rows {
                let (key_row, created) = upsert_key_tx(&tx, rid, p.ping_type, key_id, now)?;
                summary.keys_added += usize::from(created);
                let outcome = if p.returned.is_some() { "returned" } else { "sent" };
                let n = insert_single.execute(params![
                    rid,
                    p.ping_type.as_str(),
                    key_row,
                    p.sent,
                    p.returned,
                    outcome,
                    now
                ])?;
                if n == 1 {
                    summary.pings_added += 1;
                } else {
                    summary.pings_skipped_duplicate += 1;
                }
            }
            let mut insert_chain = tx.prepare(
                "INSERT INTO pings (remailer1_id, type1, remailer2_id, type2, chain_type,
                                    slot_time, sent_at, returned_at, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?5, ?6, ?7, ?8)
                 ON CONFLICT DO NOTHING",
            )?;
            for (r1, r2, c) in chain_rows {
                // The hop type of an imported chain is not recorded in the CSV; the chain
                // family's preferred type stands in for it.
                let hop_type = c.chain_type.preferred_hop_types()[0];
                let outcome = if c.returned.is_some() { "returned" } else { "sent" };
                let n = insert_chain.execute(params![
                    r1,
                    hop_type.as_str(),
                    r2,
                    c.chain_type.as_str(),
                    c.sent,
                    c.returned,
                    outcome,
                    now
                ])?;
                if n == 1 {
                    summary.chains_added += 1;
                } else {
                    summary.chains_skipped_duplicate += 1;
                }
            }
        }
        // An imported history is older than the import: a key and its remailer were first
        // seen when their first ping was sent (Longevity counts from there).
        tx.execute(
            "UPDATE keys SET first_seen = MIN(first_seen,
                 COALESCE((SELECT MIN(sent_at) FROM pings
                           WHERE key1_id = keys.id AND remailer2_id IS NULL), first_seen))",
            [],
        )?;
        tx.execute(
            "UPDATE remailers SET first_seen = MIN(first_seen,
                 COALESCE((SELECT MIN(sent_at) FROM pings WHERE remailer1_id = remailers.id),
                          first_seen))",
            [],
        )?;
        tx.commit()?;
        Ok(summary)
    }

    /// The rows the statistics read as of `now`: every remailer with its keys, the pings the
    /// MTA accepted that were sent in `(since, now]` (returns delivered after `now` reported
    /// as not yet returned; bounced and corrupted pings were sent and did not arrive intact),
    /// the self-checks of the window and the day before it, and the mail counters. Rows only:
    /// which of them count is for the statistics to decide ([`crate::model::HistoryRows`]).
    pub fn history(&self, since: i64, now: i64) -> Result<HistoryRows> {
        let self_checks: Vec<(i64, Option<i64>)> = self
            .self_checks_since(since - SECONDS_PER_DAY)?
            .into_iter()
            .filter(|c| c.created_at <= now)
            .filter_map(|c| c.sent_at.map(|s| (s, c.returned_at.filter(|&r| r <= now))))
            .collect();
        let remailers = self.remailers()?;
        // One pass over the covering index `pings_window` (migration 0005): no table lookups.
        // The rows are put in the order the statistics have always read them (singles by
        // type, key, send time; chains by send time), so every sum adds up in the same order.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, remailer1_id, remailer2_id, type1, key1_id, chain_type, sent_at,
                    CASE WHEN outcome = 'returned' AND returned_at <= ?2 THEN returned_at END,
                    CASE WHEN outcome IN ('bounced', 'corrupted') AND failed_at <= ?2
                         THEN failed_at END
             FROM pings INDEXED BY pings_window
             WHERE sent_at > ?1 AND sent_at <= ?2
               AND outcome IN ('sent', 'returned', 'bounced', 'corrupted')",
        )?;
        let mut rows = stmt.query(params![since, now])?;
        // (type, key row, send time, ping id): the order the statistics read singles in.
        type SingleOrder = (PingType, Option<i64>, i64, i64);
        let mut singles: Vec<(SingleOrder, SingleRow)> = Vec::new();
        let mut chains: Vec<((i64, i64), ChainRow)> = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let remailer1_id: i64 = r.get(1)?;
            let sent: i64 = r.get(6)?;
            let returned: Option<i64> = r.get(7)?;
            let failed: Option<i64> = r.get(8)?;
            match r.get::<_, Option<i64>>(2)? {
                None => {
                    let ping_type = parse_column::<PingType>(r.get_ref(3)?)?;
                    let key: Option<i64> = r.get(4)?;
                    let row = SingleRow {
                        remailer_id: remailer1_id,
                        ping: Ping { ping_type, sent, returned, failed },
                    };
                    singles.push(((ping_type, key, sent, id), row));
                }
                Some(remailer2_id) => {
                    let chain_type = parse_column::<ChainType>(r.get_ref(5)?)?;
                    let row =
                        ChainRow { chain_type, remailer1_id, remailer2_id, sent, returned, failed };
                    chains.push(((sent, id), row));
                }
            }
        }
        singles.sort_unstable_by(|(a, _), (b, _)| {
            (a.0.as_str(), a.1, a.2, a.3).cmp(&(b.0.as_str(), b.1, b.2, b.3))
        });
        chains.sort_unstable_by_key(|(key, _)| *key);
        let singles = singles.into_iter().map(|(_, row)| row).collect();
        let chains = chains.into_iter().map(|(_, row)| row).collect();
        let returns = self.return_counters(since)?;
        Ok(HistoryRows { remailers, singles, chains, self_checks, returns })
    }
}

/// A text column holding one of the model's names (a ping type, a chain type).
fn parse_column<T: std::str::FromStr<Err = String>>(
    value: rusqlite::types::ValueRef<'_>,
) -> Result<T> {
    let text = value.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    text.parse().map_err(StoreError::Corrupt)
}
