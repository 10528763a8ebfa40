//! The SQLite store. This module owns every SQL statement of the project.
//!
//! The database runs in WAL mode with `synchronous = FULL` and foreign keys on; each public
//! method that changes anything does so in one transaction, so a crash at any instant leaves
//! either all or none of a change. Migrations (`migrations/NNNN_name.sql`) are compiled in and
//! applied in order when the database opens; `PRAGMA user_version` records the last one.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::model::{
    CLEAR_KEY_ID, ChainRow, ChainType, DueChainPing, DueSinglePing, HistoryRows, ImportSummary,
    ImportedChain, ImportedPing, KeyChange, Ping, PingCounts, PingType, Remailer, RemailerInfo,
    RemailerKey, RemailerStatus, SECONDS_PER_DAY, SingleRow, UNKNOWN_KEY_ID,
};

mod discovery;
mod mail;
mod outbox;

/// Embedded migrations, in order. The number is the `user_version` after applying it.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "0001_initial", include_str!("../../migrations/0001_initial.sql")),
    (2, "0002_mail_path", include_str!("../../migrations/0002_mail_path.sql")),
    (3, "0003_discovery", include_str!("../../migrations/0003_discovery.sql")),
    (4, "0004_hardening", include_str!("../../migrations/0004_hardening.sql")),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this fathometer understands \
         ({supported}); upgrade fathometer or restore a matching backup"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("migration {name} failed: {source}")]
    Migration {
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no remailer with address or nick `{0}`")]
    UnknownRemailer(String),
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
}

/// Switches a database to WAL. Switching a fresh file needs a lock that SQLite does not wait
/// for (the busy handler is not called for it), so when another process is opening the same
/// new file at that instant, retry for as long as the busy timeout would have waited.
fn enable_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return Ok(result?),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        Store::init(conn)
    }

    /// A private in-memory database, for tests and offline analysis.
    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL lets the web server read while the daemon writes; FULL makes every commit
        // durable before it returns, so an acknowledged return is never lost to a crash.
        enable_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    pub fn schema_version(&self) -> Result<u32> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found, supported: SCHEMA_VERSION });
        }
        for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
            // Another process (the daemon beside a `fathometer ping`) may be migrating the
            // same file: take the write lock first, then look again, so each step runs once.
            let tx =
                self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current >= version {
                continue;
            }
            tx.execute_batch(sql).map_err(|source| StoreError::Migration { name, source })?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
        Ok(())
    }

    // ----- remailers -------------------------------------------------------------------

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
            "SELECT remailer_id, id, ping_type, key_id, valid_from, valid_until, retired_at
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
            ))
        })?;
        for row in key_rows {
            let (remailer_id, id, ping_type, key_id, valid_from, valid_until, retired_at) = row?;
            let ping_type: PingType = ping_type.parse().map_err(StoreError::Corrupt)?;
            by_remailer.entry(remailer_id).or_default().push(RemailerKey {
                id,
                ping_type,
                key_id,
                valid_from,
                valid_until,
                retired_at,
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
        let change = discovery::store_key_tx(
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

    /// Sets a remailer's nick when it has none (from a Mix key entry's header line); returns
    /// whether it changed.
    pub fn fill_nick(&mut self, address: &str, nick: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE remailers SET nick = ?2, updated_at = ?3 WHERE address = ?1 AND nick IS NULL",
            params![address, nick, now],
        )?;
        Ok(n == 1)
    }

    // ----- import ----------------------------------------------------------------------

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
        tx.commit()?;
        Ok(summary)
    }

    // ----- statistics input ------------------------------------------------------------

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
        let mut stmt = self.conn.prepare(
            "SELECT remailer1_id, type1, sent_at,
                    CASE WHEN outcome = 'returned' AND returned_at <= ?2 THEN returned_at END
             FROM pings
             WHERE remailer2_id IS NULL AND sent_at IS NOT NULL
               AND outcome IN ('sent', 'returned', 'bounced', 'corrupted')
               AND sent_at > ?1 AND sent_at <= ?2
             ORDER BY type1, key1_id, sent_at, id",
        )?;
        let rows = stmt.query_map(params![since, now], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut singles = Vec::new();
        for row in rows {
            let (remailer_id, ping_type, sent, returned) = row?;
            let ping_type: PingType = ping_type.parse().map_err(StoreError::Corrupt)?;
            singles.push(SingleRow { remailer_id, ping: Ping { ping_type, sent, returned } });
        }
        let mut stmt = self.conn.prepare(
            "SELECT chain_type, remailer1_id, remailer2_id, sent_at,
                    CASE WHEN outcome = 'returned' AND returned_at <= ?2 THEN returned_at END
             FROM pings
             WHERE remailer2_id IS NOT NULL AND sent_at IS NOT NULL
               AND outcome IN ('sent', 'returned', 'bounced', 'corrupted')
               AND sent_at > ?1 AND sent_at <= ?2
             ORDER BY sent_at, id",
        )?;
        let rows = stmt.query_map(params![since, now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        let mut chains = Vec::new();
        for row in rows {
            let (chain_type, remailer1_id, remailer2_id, sent, returned) = row?;
            let chain_type: ChainType = chain_type.parse().map_err(StoreError::Corrupt)?;
            chains.push(ChainRow { chain_type, remailer1_id, remailer2_id, sent, returned });
        }
        let returns = self.return_counters(since)?;
        Ok(HistoryRows { remailers, singles, chains, self_checks, returns })
    }

    // ----- scheduling ------------------------------------------------------------------

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

    // ----- daemon bookkeeping ----------------------------------------------------------

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

/// A remailer's status column as the model's enum; another value is a corrupt row.
fn column_status(text: String) -> rusqlite::Result<RemailerStatus> {
    RemailerStatus::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("remailer status `{text}`").into(),
        )
    })
}

fn remailer_id(tx: &Transaction, address: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_row("SELECT id FROM remailers WHERE address = ?1", [address], |r| r.get(0))
        .optional()?)
}

/// Returns the key's row id and whether it was created.
fn upsert_key_tx(
    tx: &Transaction,
    remailer_id: i64,
    ping_type: PingType,
    key_id: &str,
    now: i64,
) -> Result<(i64, bool)> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM keys WHERE remailer_id = ?1 AND ping_type = ?2 AND key_id = ?3",
            params![remailer_id, ping_type.as_str(), key_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        tx.execute(
            "UPDATE keys SET last_seen = MAX(last_seen, ?2) WHERE id = ?1",
            params![id, now],
        )?;
        return Ok((id, false));
    }
    tx.execute(
        "INSERT INTO keys (remailer_id, ping_type, key_id, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![remailer_id, ping_type.as_str(), key_id, now],
    )?;
    Ok((tx.last_insert_rowid(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::*;

    fn ping(address: &str, t: PingType, sent: i64, returned: Option<i64>) -> ImportedPing {
        ImportedPing { address: address.into(), ping_type: t, key_id: None, sent, returned }
    }

    #[test]
    fn migrations_set_user_version_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn processes_opening_a_fresh_file_together_migrate_it_once() {
        // The daemon's first start and a `fathometer ping` beside it both find an empty file.
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.sqlite");
            let barrier = std::sync::Barrier::new(6);
            std::thread::scope(|scope| {
                let openers: Vec<_> = (0..6)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            Store::open(&path).map(|s| s.schema_version().unwrap())
                        })
                    })
                    .collect();
                for opener in openers {
                    assert_eq!(opener.join().unwrap().unwrap(), SCHEMA_VERSION);
                }
            });
        }
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        match Store::open(&path) {
            Err(StoreError::TooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn add_remove_and_find() {
        let mut s = Store::open_in_memory().unwrap();
        assert!(s.add_remailer("a@x.example", 10).unwrap());
        assert!(!s.add_remailer("a@x.example", 20).unwrap());
        assert_eq!(s.find_remailer("a@x.example").unwrap().first_seen, 10);
        assert!(matches!(s.find_remailer("nobody"), Err(StoreError::UnknownRemailer(_))));
        assert!(s.remove_remailer("a@x.example").unwrap());
        assert!(!s.remove_remailer("a@x.example").unwrap());
    }

    #[test]
    fn import_is_idempotent_and_feeds_the_dataset() {
        let mut s = Store::open_in_memory().unwrap();
        let info = RemailerInfo {
            address: "a@x.example".into(),
            nick: Some("a".into()),
            caps: Some("$remailer{\"a\"} = \"<a@x.example> mix\";".into()),
            hidden: true,
        };
        let pings = vec![
            ping("a@x.example", PingType::Mix, 100, Some(160)),
            ping("a@x.example", PingType::Mix, 200, None),
            ping("b@y.example", PingType::CpunkClear, 300, Some(400)),
        ];
        let chains = vec![ImportedChain {
            chain_type: ChainType::Mix,
            addr1: "a@x.example".into(),
            addr2: "b@y.example".into(),
            sent: 150,
            returned: Some(250),
        }];
        let first = s.import(std::slice::from_ref(&info), &pings, &chains, 1000).unwrap();
        assert_eq!(first.pings_added, 3);
        assert_eq!(first.chains_added, 1);
        assert_eq!(first.remailers_added, 2);
        let second = s.import(&[info], &pings, &chains, 1000).unwrap();
        assert_eq!(second.pings_added, 0);
        assert_eq!(second.pings_skipped_duplicate, 3);
        assert_eq!(second.chains_skipped_duplicate, 1);

        // As of 180, the ping sent at 200 does not exist yet and the one sent at 100 is back.
        let h = s.history(0, 180).unwrap();
        let a = h.remailers.iter().find(|r| r.address == "a@x.example").unwrap();
        assert!(a.hidden);
        assert_eq!(a.current_key_types(180), vec![PingType::Mix]);
        assert_eq!(
            h.singles,
            vec![SingleRow {
                remailer_id: a.id,
                ping: Ping { ping_type: PingType::Mix, sent: 100, returned: Some(160) }
            }]
        );
        // As of 200 the chain ping has not come back yet.
        let h = s.history(0, 200).unwrap();
        assert_eq!(h.chains.len(), 1);
        assert_eq!(h.chains[0].returned, None);
        let h = s.history(0, 1000).unwrap();
        assert_eq!(h.chains[0].returned, Some(250));
        let b = s.find_remailer("b@y.example").unwrap();
        assert_eq!(b.keys[0].key_id, CLEAR_KEY_ID);
    }

    #[test]
    fn queued_pings_are_unique_per_key_and_slot_and_not_in_stats() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x.example", 0).unwrap();
        let key = s.upsert_key("a@x.example", PingType::Mix, "k1", 0).unwrap();
        let due = [DueSinglePing { key_row_id: key, slot_time: 7200 }];
        assert_eq!(s.queue_single_pings(&due, 7200).unwrap(), 1);
        assert_eq!(s.queue_single_pings(&due, 7230).unwrap(), 0);
        assert_eq!(s.ping_counts().unwrap().queued, 1);
        // Queued pings have not been accepted by an MTA: not charged to the remailer.
        assert!(s.history(0, 10_000).unwrap().singles.is_empty());
    }

    #[test]
    fn the_history_carries_the_self_checks_as_of_now() {
        let mut s = Store::open_in_memory().unwrap();
        let p = |sent, returned| ImportedPing {
            address: "a@x.example".into(),
            ping_type: PingType::Mix,
            key_id: None,
            sent,
            returned,
        };
        let pings = [p(10_000, Some(10_100)), p(20_000, None), p(30_000, Some(30_050))];
        s.import(&[], &pings, &[], 0).unwrap();
        // Self-checks at 5000 (back), 15000 (never back), 25000 (back).
        for (tag, sent, returned) in
            [("a", 5_000, Some(5_001)), ("b", 15_000, None), ("c", 25_000, Some(25_002))]
        {
            let id = s.create_self_check(tag, sent).unwrap();
            s.self_check_sent(id, sent).unwrap();
            if let Some(r) = returned {
                s.record_mail(
                    &MailRecord {
                        digest: tag.into(),
                        source: "test".into(),
                        delivered_at: Some(r),
                        processed_at: r,
                        kind: MailKind::SelfCheck,
                        ping_id: None,
                        detail: None,
                        raw: None,
                    },
                    &[MailEffect::SelfCheckReturned { id, returned_at: r }],
                )
                .unwrap();
            }
        }
        let h = s.history(0, 40_000).unwrap();
        assert_eq!(h.singles.len(), 3, "rows only: the statistics decide what counts");
        assert_eq!(
            h.self_checks,
            vec![(5_000, Some(5_001)), (15_000, None), (25_000, Some(25_002))]
        );
        // As of 20,000 the last check does not exist and none has come back after then.
        let h = s.history(0, 20_000).unwrap();
        assert_eq!(h.self_checks, vec![(5_000, Some(5_001)), (15_000, None)]);
    }

    #[test]
    fn a_manual_ping_is_never_drained_by_the_daemon() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x.example", 0).unwrap();
        let key = s.upsert_key("a@x.example", PingType::Mix, "k1", 0).unwrap();
        s.record_manual_ping(key, None, 100, "manualmanualmanu", false, None).unwrap();
        assert!(s.outbox_due(1000, 10).unwrap().is_empty());
        s.queue_single_pings(&[DueSinglePing { key_row_id: key, slot_time: 100 }], 100).unwrap();
        assert_eq!(s.outbox_due(1000, 10).unwrap().len(), 1);
    }

    #[test]
    fn daemon_state_round_trips() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(s.state("last_tick").unwrap(), None);
        s.set_state("last_tick", "5").unwrap();
        s.set_state("last_tick", "6").unwrap();
        assert_eq!(s.state("last_tick").unwrap().as_deref(), Some("6"));
    }
}
