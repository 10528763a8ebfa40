-- fathometer schema, version 1.
-- Times are unix seconds (UTC). Every change happens in one transaction.

-- Remailers we know and ping.
CREATE TABLE remailers (
    id            INTEGER PRIMARY KEY,
    address       TEXT    NOT NULL UNIQUE,
    -- From the conf reply (or set by hand); a remailer without nick and caps is not listed.
    nick          TEXT,
    -- The whole `$remailer{"nick"} = "<address> ...";` line, verbatim.
    caps          TEXT,
    -- active: answering; unresponsive: stopped answering requests; disabled: by the operator.
    status        TEXT    NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'unresponsive', 'disabled')),
    -- 1 = only in the private lists (Echolot's showit = 0).
    hidden        INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1)),
    first_seen    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Keys a remailer published, one row per (type, key id). cpunk-clear has the pseudo key "none".
CREATE TABLE keys (
    id            INTEGER PRIMARY KEY,
    remailer_id   INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    ping_type     TEXT    NOT NULL
                  CHECK (ping_type IN ('mix', 'cpunk-rsa', 'cpunk-dsa', 'cpunk-clear')),
    key_id        TEXT    NOT NULL,
    -- The key as received (armoured OpenPGP key, or Mix key block); NULL when unknown.
    material      TEXT,
    valid_from    INTEGER,
    valid_until   INTEGER,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    -- Set when the key is superseded or withdrawn; its ping history is kept.
    retired_at    INTEGER,
    UNIQUE (remailer_id, ping_type, key_id)
);

-- Every ping, single (hop 2 columns NULL) or two-hop chain.
CREATE TABLE pings (
    id            INTEGER PRIMARY KEY,
    remailer1_id  INTEGER NOT NULL REFERENCES remailers(id) ON DELETE CASCADE,
    type1         TEXT    NOT NULL
                  CHECK (type1 IN ('mix', 'cpunk-rsa', 'cpunk-dsa', 'cpunk-clear')),
    key1_id       INTEGER REFERENCES keys(id) ON DELETE SET NULL,
    remailer2_id  INTEGER REFERENCES remailers(id) ON DELETE CASCADE,
    type2         TEXT
                  CHECK (type2 IS NULL OR type2 IN ('mix', 'cpunk-rsa', 'cpunk-dsa', 'cpunk-clear')),
    key2_id       INTEGER REFERENCES keys(id) ON DELETE SET NULL,
    -- 'mix' or 'cpunk' for chains, NULL for single pings.
    chain_type    TEXT    CHECK (chain_type IS NULL OR chain_type IN ('mix', 'cpunk')),
    -- The scheduled instant this ping belongs to.
    slot_time     INTEGER NOT NULL,
    -- When the MTA accepted it (250); NULL while queued or if it never got out.
    sent_at       INTEGER,
    -- When the genuine return was delivered (Maildir file time, IMAP INTERNALDATE).
    returned_at   INTEGER,
    -- queued: waiting for the MTA; sent: accepted, awaiting return; returned; not_sent: never
    -- got out (never charged to the remailer); bounced; corrupted (came back altered).
    outcome       TEXT    NOT NULL DEFAULT 'queued'
                  CHECK (outcome IN ('queued', 'sent', 'returned', 'not_sent', 'bounced', 'corrupted')),
    created_at    INTEGER NOT NULL,
    CHECK ((remailer2_id IS NULL) = (chain_type IS NULL)),
    CHECK ((remailer2_id IS NULL) = (type2 IS NULL))
);

-- One ping per key and slot: a restart inside a slot never sends it twice.
CREATE UNIQUE INDEX pings_single_key_slot ON pings (key1_id, slot_time)
    WHERE remailer2_id IS NULL AND key1_id IS NOT NULL;
CREATE UNIQUE INDEX pings_chain_slot ON pings (remailer1_id, remailer2_id, chain_type, slot_time)
    WHERE remailer2_id IS NOT NULL;
CREATE INDEX pings_by_sent ON pings (sent_at);
CREATE INDEX pings_by_remailer ON pings (remailer1_id, sent_at);

-- Small daemon bookkeeping (last scheduler tick, last statistics build, ...).
CREATE TABLE daemon_state (
    name          TEXT PRIMARY KEY,
    value         TEXT NOT NULL
);
