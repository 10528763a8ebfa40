-- fathometer schema, version 2: the mail path (outbox, returns, quarantine, self-check).

-- The outbox lives in `pings`: a queued ping is retried until the MTA answers 250 or its slot
-- ends. The tag is the opaque part of the return address; it is set before the first attempt
-- and never changes, so a copy sent just before a crash still finds its ping.
ALTER TABLE pings ADD COLUMN tag TEXT;
-- 1 when the innermost layer asked the remailer to paste our From: line (the from-lines test).
ALTER TABLE pings ADD COLUMN with_from INTEGER NOT NULL DEFAULT 0 CHECK (with_from IN (0, 1));
ALTER TABLE pings ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- A queued ping is not tried again before this instant (backoff after a transient failure).
ALTER TABLE pings ADD COLUMN next_attempt_at INTEGER;
-- Why the last attempt failed, or why the ping was not sent / bounced.
ALTER TABLE pings ADD COLUMN last_error TEXT;
CREATE UNIQUE INDEX pings_by_tag ON pings (tag) WHERE tag IS NOT NULL;
-- 1 for a ping sent by hand (`fathometer ping`): it belongs to no scheduled slot, so the
-- one-ping-per-slot rule does not apply to it.
ALTER TABLE pings ADD COLUMN manual INTEGER NOT NULL DEFAULT 0 CHECK (manual IN (0, 1));
DROP INDEX pings_single_key_slot;
CREATE UNIQUE INDEX pings_single_key_slot ON pings (key1_id, slot_time)
    WHERE remailer2_id IS NULL AND key1_id IS NOT NULL AND manual = 0;
DROP INDEX pings_chain_slot;
CREATE UNIQUE INDEX pings_chain_slot ON pings (remailer1_id, remailer2_id, chain_type, slot_time)
    WHERE remailer2_id IS NOT NULL AND manual = 0;
CREATE INDEX pings_queued ON pings (outcome, next_attempt_at) WHERE outcome = 'queued';

-- Every mail the ingester finished with, keyed by the SHA-256 of its bytes. The row is written
-- in the same transaction as the mail's effect on `pings`, and the mail is moved out of the
-- inbox only afterwards: a mail seen again after a crash is recognised here and counted once.
CREATE TABLE mails (
    id            INTEGER PRIMARY KEY,
    digest        TEXT    NOT NULL UNIQUE,
    -- Where it was read: 'maildir:<file name>' or 'imap:<uidvalidity>:<uid>'.
    source        TEXT    NOT NULL,
    -- Delivery time (Maildir file time, IMAP INTERNALDATE, or the local Received: header).
    delivered_at  INTEGER,
    processed_at  INTEGER NOT NULL,
    -- returned: a genuine first copy; duplicate: a further copy of a genuine return;
    -- forged: not made with our secret; corrupted: ours, but altered in transit; bounced: a
    -- delivery status notification naming a ping; self_check: our own control mail; reply: a
    -- remailer's answer to a request (kept raw for discovery); unknown: none of these.
    kind          TEXT    NOT NULL CHECK (kind IN ('returned', 'duplicate', 'forged', 'corrupted',
                                                   'bounced', 'self_check', 'reply', 'unknown')),
    ping_id       INTEGER REFERENCES pings(id) ON DELETE SET NULL,
    -- The reason a mail was quarantined, a bounce's diagnostic, a reply's request type.
    detail        TEXT,
    -- The raw mail, kept for quarantined mail and remailer replies only.
    raw           BLOB
);
CREATE INDEX mails_by_ping ON mails (ping_id);
CREATE INDEX mails_by_kind ON mails (kind, processed_at);

-- The pinger's own control mails (decision 8), one per cycle.
CREATE TABLE self_checks (
    id            INTEGER PRIMARY KEY,
    tag           TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    -- When the MTA accepted it; NULL if it never got out.
    sent_at       INTEGER,
    returned_at   INTEGER,
    last_error    TEXT
);
CREATE INDEX self_checks_by_sent ON self_checks (sent_at);

-- What the From: header of a return looked like, per remailer, ping type and whether we asked
-- for our own From: line to be pasted: tells clients whether a remailer honours `##` From:.
CREATE TABLE from_lines (
    remailer_id   INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    ping_type     TEXT    NOT NULL,
    with_from     INTEGER NOT NULL CHECK (with_from IN (0, 1)),
    from_header   TEXT,
    seen_at       INTEGER NOT NULL,
    PRIMARY KEY (remailer_id, ping_type, with_from)
);
