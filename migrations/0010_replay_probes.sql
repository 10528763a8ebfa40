-- The replay-protection probe (issue 15): one type II ping packet mailed to a remailer twice,
-- byte for byte, some minutes apart. Probes are never pings: nothing here enters the
-- statistics of reliability, latency or history.
CREATE TABLE replay_probes (
    id              INTEGER PRIMARY KEY,
    remailer_id     INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    key_id          INTEGER REFERENCES keys(id) ON DELETE SET NULL,
    tag             TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    -- 1 when started by hand (`fathometer replay-probe`), outside the weekly schedule.
    manual          INTEGER NOT NULL DEFAULT 0 CHECK (manual IN (0, 1)),
    -- The message built for the first attempt, committed before it is handed to the MTA;
    -- the second copy is exactly these bytes.
    envelope_from   TEXT,
    recipient       TEXT,
    message         BLOB,
    first_sent_at   INTEGER,
    second_sent_at  INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    -- Genuine copies that came back (distinct mails; a redelivery of the same bytes is
    -- recognised by the mails table first).
    returns         INTEGER NOT NULL DEFAULT 0,
    first_return_at INTEGER,
    last_return_at  INTEGER,
    verdict         TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (verdict IN ('pending', 'protected', 'replayed', 'inconclusive',
                                       'not_sent')),
    decided_at      INTEGER
);
CREATE INDEX replay_probes_by_remailer ON replay_probes (remailer_id, created_at);
CREATE INDEX replay_probes_pending ON replay_probes (verdict) WHERE verdict = 'pending';

-- Mail kinds gain 'probe' (a copy of a replay probe). SQLite cannot change a CHECK in
-- place: the table is rebuilt with the same rows and indexes.
CREATE TABLE mails_v10 (
    id            INTEGER PRIMARY KEY,
    digest        TEXT    NOT NULL UNIQUE,
    source        TEXT    NOT NULL,
    delivered_at  INTEGER,
    processed_at  INTEGER NOT NULL,
    -- As in 0002, plus probe: a copy of a replay-protection probe.
    kind          TEXT    NOT NULL CHECK (kind IN ('returned', 'duplicate', 'forged', 'corrupted',
                                                   'bounced', 'self_check', 'probe', 'reply',
                                                   'unknown')),
    ping_id       INTEGER REFERENCES pings(id) ON DELETE SET NULL,
    detail        TEXT,
    raw           BLOB
);
INSERT INTO mails_v10 (id, digest, source, delivered_at, processed_at, kind, ping_id, detail, raw)
    SELECT id, digest, source, delivered_at, processed_at, kind, ping_id, detail, raw FROM mails;
DROP TABLE mails;
ALTER TABLE mails_v10 RENAME TO mails;
CREATE INDEX mails_by_ping ON mails (ping_id);
CREATE INDEX mails_by_kind ON mails (kind, processed_at);
CREATE INDEX mails_with_raw ON mails (processed_at) WHERE raw IS NOT NULL;

-- Peers' files gain pgp-all.asc (their OpenPGP keyring, for key consistency) and the
-- community index allpingers.txt the peers may be read from (peer 'allpingers').
CREATE TABLE peer_files_v10 (
    peer           TEXT    NOT NULL,
    file           TEXT    NOT NULL CHECK (file IN ('mlist2.txt', 'rlist2.txt', 'pubring.mix',
                                                    'pgp-all.asc', 'allpingers.txt')),
    body           TEXT,
    fetched_at     INTEGER,
    etag           TEXT,
    last_modified  TEXT,
    attempted_at   INTEGER NOT NULL,
    error          TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (peer, file)
);
INSERT INTO peer_files_v10 SELECT peer, file, body, fetched_at, etag, last_modified,
                                  attempted_at, error, failures FROM peer_files;
DROP TABLE peer_files;
ALTER TABLE peer_files_v10 RENAME TO peer_files;
