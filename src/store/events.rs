//! Status events and the watch the next build compares against.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Result, Store, StoreError};
use crate::model::event::{Event, EventKind, EventRemailer, Watch, Watched};
use crate::model::remailer::is_listed;

impl Store {
    /// What the last build saw.
    pub fn watch(&self) -> Result<Watch> {
        let mut stmt = self.conn.prepare_cached("SELECT subject, value, since FROM watch")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, Watched { value: r.get(1)?, since: r.get(2)? }))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores a build's events and the watch it leaves (written as the changes from
    /// `previous`, what the build read: most builds change nothing and write nothing), in
    /// one transaction; returns the events with their ids.
    pub fn record_events(
        &mut self,
        previous: &Watch,
        watch: &Watch,
        events: &[Event],
    ) -> Result<Vec<Event>> {
        if events.is_empty() && previous == watch {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let mut stored = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (kind, at, recorded_at, remailer_id, address, nick, family,
                                     detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in events {
                let r = e.remailer.as_ref();
                // A remailer removed since the build read it: keep the event, unlinked.
                let linked: Option<i64> = match r {
                    Some(r) => tx
                        .query_row("SELECT id FROM remailers WHERE id = ?1", [r.id], |row| {
                            row.get(0)
                        })
                        .ok(),
                    None => None,
                };
                insert.execute(params![
                    e.kind.as_str(),
                    e.at,
                    e.recorded_at,
                    linked,
                    r.map(|r| r.address.as_str()),
                    r.and_then(|r| r.nick.as_deref()),
                    e.family.map(|f| f.as_str()),
                    e.detail,
                ])?;
                stored.push(Event { id: tx.last_insert_rowid(), ..e.clone() });
            }
            let mut remove = tx.prepare_cached("DELETE FROM watch WHERE subject = ?1")?;
            for subject in previous.keys().filter(|s| !watch.contains_key(*s)) {
                remove.execute([subject])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT INTO watch (subject, value, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (subject) DO UPDATE SET value = excluded.value, since = excluded.since",
            )?;
            for (subject, w) in watch.iter().filter(|(s, w)| previous.get(*s) != Some(w)) {
                put.execute(params![subject, w.value, w.since])?;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// The events recorded at or after `since`, newest first, at most `limit`. Whether a
    /// remailer's event is public follows the remailer as it is now.
    pub fn events_since(&self, since: i64, limit: usize) -> Result<Vec<Event>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id, e.kind, e.at, e.recorded_at, e.remailer_id, e.address, e.nick,
                    e.family, e.detail, r.hidden, r.caps
             FROM events e LEFT JOIN remailers r ON r.id = e.remailer_id
             WHERE e.recorded_at >= ?1 ORDER BY e.id DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![since, limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            let kind = EventKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event kind `{kind}`")))?;
            let family = match r.get::<_, Option<String>>(7)? {
                Some(f) => Some(f.parse().map_err(StoreError::Corrupt)?),
                None => None,
            };
            let address: Option<String> = r.get(5)?;
            let hidden: Option<bool> = r.get(9)?;
            let caps: Option<String> = r.get(10)?;
            let remailer = address.map(|address| EventRemailer {
                id: r.get::<_, Option<i64>>(4).ok().flatten().unwrap_or(0),
                address,
                nick: r.get(6).ok().flatten(),
                // A removed remailer is no longer published.
                listed: hidden.is_some_and(|h| is_listed(h, caps.as_deref())),
            });
            out.push(Event {
                id: r.get(0)?,
                kind,
                at: r.get(2)?,
                recorded_at: r.get(3)?,
                remailer,
                family,
                detail: r.get(8)?,
            });
        }
        Ok(out)
    }

    /// How many events of each kind were ever recorded (the `/metrics` counter).
    pub fn event_counts(&self) -> Result<BTreeMap<EventKind, u64>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT kind, COUNT(*) FROM events GROUP BY kind")?;
        let mut rows = stmt.query([])?;
        let mut out = BTreeMap::new();
        while let Some(r) = rows.next()? {
            if let Some(kind) = EventKind::parse(&r.get::<_, String>(0)?) {
                out.insert(kind, r.get::<_, i64>(1)? as u64);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChainType;

    #[test]
    fn events_and_the_watch_round_trip() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_remailer("a@x", 0).unwrap();
        let id = s.find_remailer("a@x").unwrap().id;
        let event = |kind, remailer: Option<EventRemailer>| Event {
            id: 0,
            kind,
            at: 10,
            recorded_at: 20,
            remailer,
            family: Some(ChainType::Mix),
            detail: "why".into(),
        };
        let r = EventRemailer { id, address: "a@x".into(), nick: Some("a".into()), listed: true };
        let gone = EventRemailer { id: 999, address: "gone@x".into(), nick: None, listed: true };
        let watch =
            Watch::from([("status:1:mix".into(), Watched { value: "up".into(), since: 5 })]);
        let stored = s
            .record_events(
                &Watch::new(),
                &watch,
                &[
                    event(EventKind::Silent, Some(r)),
                    event(EventKind::PingerDown, None),
                    event(EventKind::Silent, Some(gone)),
                ],
            )
            .unwrap();
        assert!(stored[0].id < stored[1].id);
        assert_eq!(s.watch().unwrap(), watch);
        let read = s.events_since(0, 10).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[2].remailer.as_ref().unwrap().nick.as_deref(), Some("a"));
        assert!(read[2].is_public() && read[1].is_public());
        assert!(!read[0].is_public(), "a remailer we do not know is not published");
        assert!(s.events_since(21, 10).unwrap().is_empty());
        assert_eq!(s.event_counts().unwrap()[&EventKind::Silent], 2);
        s.record_events(&watch, &Watch::new(), &[]).unwrap();
        assert!(s.watch().unwrap().is_empty(), "what is no longer watched goes");
        let changed =
            Watch::from([("pinger:mail".into(), Watched { value: "ok".into(), since: 9 })]);
        s.record_events(&Watch::new(), &changed, &[]).unwrap();
        let again =
            Watch::from([("pinger:mail".into(), Watched { value: "failing".into(), since: 10 })]);
        s.record_events(&changed, &again, &[]).unwrap();
        assert_eq!(s.watch().unwrap(), again);
    }
}
