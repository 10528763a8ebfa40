-- Announced downtime and status events (issue 13).

-- Downtime announced by the pinger's operator (`fathometer downtime add`) or by a remailer's
-- operator in a mail signed with the remailer's admin key (RFC 636: why, and until when).
CREATE TABLE downtimes (
    id             INTEGER PRIMARY KEY,
    remailer_id    INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    starts_at      INTEGER NOT NULL,
    until          INTEGER NOT NULL CHECK (until > starts_at),
    reason         TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('operator', 'signed')),
    -- The fingerprint of the admin key that signed it.
    signer         TEXT,
    -- When it was signed (the signature's creation time), or entered.
    announced_at   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    -- Removed by the operator, or replaced by a newer signed announcement (then
    -- superseded_at too: it still counts as announced until then).
    removed_at     INTEGER,
    superseded_at  INTEGER,
    CHECK ((source = 'signed') = (signer IS NOT NULL))
);
CREATE INDEX downtimes_by_remailer ON downtimes (remailer_id, announced_at);

-- Status events: what changed about a remailer or the pinger, kept for good (the counter in
-- /metrics counts them). A removed remailer's events keep its address and nick.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    remailer_id  INTEGER REFERENCES remailers(id) ON DELETE SET NULL,
    address      TEXT,
    nick         TEXT,
    family       TEXT    CHECK (family IS NULL OR family IN ('mix', 'cpunk')),
    detail       TEXT    NOT NULL
);
CREATE INDEX events_by_recorded ON events (recorded_at);
CREATE INDEX events_by_remailer ON events (remailer_id, id);

-- What the last statistics build saw of each watched subject (`stats/events.rs`): the next
-- build reports what changed.
CREATE TABLE watch (
    subject  TEXT PRIMARY KEY,
    value    TEXT NOT NULL,
    since    INTEGER NOT NULL
) WITHOUT ROWID;
