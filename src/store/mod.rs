//! The SQLite store. This module owns every SQL statement of the project.
//!
//! The database runs in WAL mode with `synchronous = FULL` and foreign keys on; each public
//! method that changes anything does so in one transaction, so a crash at any instant leaves
//! either all or none of a change. Migrations (`migrations/NNNN_name.sql`) are compiled in and
//! applied in order when the database opens; `PRAGMA user_version` records the last one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::model::{CLEAR_KEY_ID, PingType, RemailerKey, RemailerStatus};

mod audit;
pub use audit::AuditedPing;
pub use mail::INJECTED_BUG_COUNT_DUPLICATES;
pub use peers::PeerFile;
pub use probes::ProbeRow;
mod discovery;
mod downtime;
mod events;
mod history;
mod mail;
mod outbox;
mod peers;
mod probes;
mod remailers;
mod schedule;
mod stability;

/// Embedded migrations, in order. The number is the `user_version` after applying it.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "0001_initial", include_str!("../../migrations/0001_initial.sql")),
    (2, "0002_mail_path", include_str!("../../migrations/0002_mail_path.sql")),
    (3, "0003_discovery", include_str!("../../migrations/0003_discovery.sql")),
    (4, "0004_hardening", include_str!("../../migrations/0004_hardening.sql")),
    (5, "0005_window_index", include_str!("../../migrations/0005_window_index.sql")),
    (6, "0006_known_failures", include_str!("../../migrations/0006_known_failures.sql")),
    (7, "0007_stability", include_str!("../../migrations/0007_stability.sql")),
    (8, "0008_downtime_events", include_str!("../../migrations/0008_downtime_events.sql")),
    (9, "0009_peers", include_str!("../../migrations/0009_peers.sql")),
    (10, "0010_replay_probes", include_str!("../../migrations/0010_replay_probes.sql")),
    (11, "0011_yamn", include_str!("../../migrations/0011_yamn.sql")),
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
        // A build reads the whole 12-day window (tens of thousands of rows): map the file
        // instead of one pread per page, and keep its pages cached between builds.
        conn.pragma_update(None, "mmap_size", 256i64 << 20)?;
        conn.pragma_update(None, "cache_size", -32768i64)?;
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
            // A migration that edits table definitions in place (`writable_schema`, only to
            // widen a CHECK) bumps the schema version, so that every connection reads the new
            // definitions, and proves the database intact before it commits.
            let edits_schema = sql.contains("writable_schema");
            let schema_version: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
            tx.execute_batch(sql).map_err(|source| StoreError::Migration { name, source })?;
            if edits_schema {
                tx.pragma_update(None, "schema_version", schema_version + 1)?;
                let verdict: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
                if verdict != "ok" {
                    return Err(StoreError::Corrupt(format!("after {name}: {verdict}")));
                }
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
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

    /// Migration 0011 widens the CHECKs of a database in use for YAMN: its rows stay, `yamn`
    /// is accepted where ping types and families are named, anything else still refused.
    #[test]
    fn the_yamn_migration_widens_the_checks_of_a_database_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for (version, _, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v <= 10) {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO remailers (id, address, first_seen, updated_at) VALUES (1, 'a@x', 0, 0);
                 INSERT INTO keys (id, remailer_id, ping_type, key_id, first_seen, last_seen)
                     VALUES (1, 1, 'mix', 'k', 0, 0);
                 INSERT INTO pings (remailer1_id, type1, key1_id, slot_time, sent_at, outcome,
                                    created_at) VALUES (1, 'mix', 1, 100, 100, 'sent', 100);",
            )
            .unwrap();
            let refused = conn.execute(
                "INSERT INTO keys (remailer_id, ping_type, key_id, first_seen, last_seen)
                 VALUES (1, 'yamn', 'y', 0, 0)",
                [],
            );
            assert!(refused.is_err(), "version 10 knows no yamn");
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let c = &store.conn;
        let pings: i64 = c.query_row("SELECT COUNT(*) FROM pings", [], |r| r.get(0)).unwrap();
        assert_eq!(pings, 1, "the rows stay");
        c.execute_batch(
            "INSERT INTO keys (id, remailer_id, ping_type, key_id, first_seen, last_seen)
                 VALUES (2, 1, 'yamn', 'y', 0, 0);
             INSERT INTO pings (remailer1_id, type1, key1_id, remailer2_id, type2, key2_id,
                                chain_type, slot_time, created_at)
                 VALUES (1, 'yamn', 2, 1, 'yamn', 2, 'yamn', 200, 200);
             INSERT INTO uptime_days (remailer_id, family, day, slots)
                 VALUES (1, 'yamn', 1, '++++++++++++');",
        )
        .unwrap();
        let bogus = c.execute(
            "INSERT INTO keys (remailer_id, ping_type, key_id, first_seen, last_seen)
             VALUES (1, 'bogus', 'b', 0, 0)",
            [],
        );
        assert!(bogus.is_err(), "the CHECK still refuses what is not a ping type");
        let verdict: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(verdict, "ok");
        drop(store);
        // And a reopened connection reads the widened definitions.
        let store = Store::open(&path).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO keys (remailer_id, ping_type, key_id, first_seen, last_seen)
                 VALUES (1, 'yamn', 'z', 0, 0)",
                [],
            )
            .unwrap();
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
                ping: Ping {
                    ping_type: PingType::Mix,
                    sent: 100,
                    returned: Some(160),
                    failed: None
                }
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
