//! The daemon's runs and the compact year of observations the stability figures read.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError};
use crate::model::ChainType;
use crate::model::stability::{DaemonRun, UptimeDay};

impl Store {
    /// Records the start of a daemon run; returns its id.
    pub fn start_run(&mut self, now: i64) -> Result<i64> {
        self.conn
            .execute("INSERT INTO daemon_runs (started_at, alive_at) VALUES (?1, ?1)", [now])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The run is still alive at `now`.
    pub fn run_alive(&mut self, id: i64, now: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE daemon_runs SET alive_at = MAX(alive_at, ?2) WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// The run stopped cleanly at `now`.
    pub fn stop_run(&mut self, id: i64, now: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE daemon_runs SET alive_at = MAX(alive_at, ?2), stopped_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// The runs that were alive after `since`, oldest first, and the last one before it.
    pub fn daemon_runs(&self, since: i64) -> Result<Vec<DaemonRun>> {
        let before: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM daemon_runs WHERE alive_at <= ?1", [since], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        let mut stmt = self.conn.prepare(
            "SELECT id, started_at, alive_at, stopped_at FROM daemon_runs
             WHERE alive_at > ?1 OR id = ?2 ORDER BY started_at, id",
        )?;
        let rows = stmt.query_map(params![since, before.unwrap_or(-1)], |r| {
            Ok(DaemonRun {
                id: r.get(0)?,
                started_at: r.get(1)?,
                alive_at: r.get(2)?,
                stopped_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every stored day from `first_day` on.
    pub fn uptime_days(&self, first_day: i64) -> Result<Vec<UptimeDay>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT remailer_id, family, day, slots FROM uptime_days WHERE day >= ?1
             ORDER BY remailer_id, family, day",
        )?;
        let mut rows = stmt.query([first_day])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let family =
                match r.get_ref(1)?.as_bytes().map_err(|e| StoreError::Corrupt(e.to_string()))? {
                    b"mix" => ChainType::Mix,
                    b"cpunk" => ChainType::Cpunk,
                    b"yamn" => ChainType::Yamn,
                    other => {
                        let family = String::from_utf8_lossy(other);
                        return Err(StoreError::Corrupt(format!("uptime family `{family}`")));
                    }
                };
            let text = r.get_ref(3)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let slots = UptimeDay::parse_slots(text)
                .ok_or_else(|| StoreError::Corrupt(format!("uptime slots `{text}`")))?;
            out.push(UptimeDay { remailer_id: r.get(0)?, family, day: r.get(2)?, slots });
        }
        Ok(out)
    }

    /// Stores days (replacing what was there), in one transaction; days older than
    /// `forget_before` are removed.
    pub fn save_uptime_days(&mut self, days: &[UptimeDay], forget_before: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO uptime_days (remailer_id, family, day, slots) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (remailer_id, family, day) DO UPDATE SET slots = excluded.slots
                 WHERE slots <> excluded.slots",
            )?;
            for d in days {
                // A remailer removed since the build read its rows has no row to hang on.
                let _ =
                    stmt.execute(params![d.remailer_id, d.family.as_str(), d.day, d.slots_text()]);
            }
        }
        tx.execute("DELETE FROM uptime_days WHERE day < ?1", [forget_before])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stability::SlotState;

    #[test]
    fn runs_and_days_round_trip() {
        let mut s = Store::open_in_memory().unwrap();
        let a = s.start_run(100).unwrap();
        s.run_alive(a, 200).unwrap();
        s.stop_run(a, 250).unwrap();
        let b = s.start_run(1_000).unwrap();
        s.run_alive(b, 1_500).unwrap();
        s.run_alive(b, 1_400).unwrap();
        let runs = s.daemon_runs(300).unwrap();
        assert_eq!(runs.len(), 2, "the run before `since` comes too: its end starts a gap");
        assert_eq!(
            (runs[0].stopped_at, runs[1].alive_at, runs[1].stopped_at),
            (Some(250), 1_500, None)
        );

        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let mut slots = [SlotState::Unknown; 12];
        slots[3] = SlotState::Up;
        let day = UptimeDay { remailer_id: id, family: ChainType::Mix, day: 20_000, slots };
        let old = UptimeDay { day: 19_000, ..day.clone() };
        s.save_uptime_days(&[old, day.clone()], 19_500).unwrap();
        assert_eq!(s.uptime_days(0).unwrap(), vec![day.clone()], "the old day was forgotten");
        let changed = UptimeDay { slots: [SlotState::Down; 12], ..day.clone() };
        s.save_uptime_days(std::slice::from_ref(&changed), 0).unwrap();
        assert_eq!(s.uptime_days(20_000).unwrap(), vec![changed]);
    }
}
