-- fathometer schema, version 3: remailer discovery and key management (issue 4).

-- What we learnt from remailer-conf replies, and whether the remailer still answers.
-- "Remailer-Type:" of the latest conf reply, e.g. "Mixmaster 3.0.2d".
ALTER TABLE remailers ADD COLUMN remailer_type TEXT;
-- When the request whose reply set `caps` was sent: an older reply never overwrites a newer.
ALTER TABLE remailers ADD COLUMN caps_updated_at INTEGER;
-- The last time a conf or key reply of this remailer was accepted.
ALTER TABLE remailers ADD COLUMN last_answer_at INTEGER;
-- Scheduled conf requests sent since the last accepted answer; at the configured limit the
-- remailer becomes `unresponsive` (Echolot's ttl). Any accepted answer resets it.
ALTER TABLE remailers ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;
-- Why the status is what it is ("replied: not a remailer", "5 conf requests unanswered").
ALTER TABLE remailers ADD COLUMN status_reason TEXT;

-- Requests for information (remailer-conf, -key, -help, -stats, -adminkey). Each has its own
-- tag in the From: address the remailer answers to, so a reply names its request and its
-- remailer, and nobody without the tag can feed us capabilities or keys.
CREATE TABLE requests (
    id              INTEGER PRIMARY KEY,
    remailer_id     INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('conf', 'key', 'help', 'stats', 'adminkey')),
    -- The scheduled instant (daily, at a hashed offset), or the time of `fathometer add`.
    slot_time       INTEGER NOT NULL,
    -- 1 for requests sent at once after `fathometer add` or a discovery: outside the schedule.
    manual          INTEGER NOT NULL DEFAULT 0 CHECK (manual IN (0, 1)),
    tag             TEXT    NOT NULL UNIQUE,
    outcome         TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (outcome IN ('queued', 'sent', 'answered', 'not_sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    sent_at         INTEGER,
    answered_at     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX requests_slot ON requests (remailer_id, kind, slot_time) WHERE manual = 0;
CREATE INDEX requests_queued ON requests (outcome, next_attempt_at) WHERE outcome = 'queued';

-- The latest reply of each kind per remailer, as received (the "thesaurus"), for publishing.
CREATE TABLE replies (
    remailer_id     INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('conf', 'key', 'help', 'stats', 'adminkey')),
    received_at     INTEGER NOT NULL,
    body            TEXT    NOT NULL,
    PRIMARY KEY (remailer_id, kind)
);

-- Addresses other remailers name in their lists of supported remailers, or that a remailer
-- gives as its own in a reply. One row per (address, who said so); an address becomes a
-- remailer when enough distinct remailers vouch for it (or at once when it names itself).
CREATE TABLE candidates (
    address         TEXT    NOT NULL,
    -- The address of the remailer whose reply named it.
    recommender     TEXT    NOT NULL,
    -- vouched-type1, vouched-type2, or self-conf / self-key (the reply's own address).
    reason          TEXT    NOT NULL,
    seen_at         INTEGER NOT NULL,
    PRIMARY KEY (address, recommender)
);

-- Every change to a key: the key history (added, updated, retired, restored).
CREATE TABLE key_events (
    id              INTEGER PRIMARY KEY,
    key_row_id      INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    at              INTEGER NOT NULL,
    event           TEXT    NOT NULL CHECK (event IN ('added', 'updated', 'retired', 'restored')),
    detail          TEXT
);
CREATE INDEX key_events_by_key ON key_events (key_row_id, at);
