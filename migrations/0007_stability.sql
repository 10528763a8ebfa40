-- Long-term stability (issue 13).

-- Each run of the daemon: when it started, when it last showed life (every tick), and when
-- it stopped cleanly, if it did. The gaps between runs are the pinger's own downtime: a ping
-- in flight then that did not come back is never held against a remailer.
CREATE TABLE daemon_runs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    alive_at    INTEGER NOT NULL,
    stopped_at  INTEGER
);
CREATE INDEX daemon_runs_by_start ON daemon_runs (started_at);

-- A year of what was observed, compactly: per remailer, family (mix or cpunk) and UTC day,
-- twelve 2-hour slots, each 'u' (up), 'd' (down) or '.' (unknown).
CREATE TABLE uptime_days (
    remailer_id  INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    family       TEXT    NOT NULL CHECK (family IN ('mix', 'cpunk')),
    day          INTEGER NOT NULL,
    slots        TEXT    NOT NULL CHECK (length(slots) = 12),
    PRIMARY KEY (remailer_id, family, day)
) WITHOUT ROWID;
CREATE INDEX uptime_days_by_day ON uptime_days (day);
