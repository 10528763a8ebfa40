-- The consensus of the pinger network (issue 15): the last good copy of every file fetched
-- from every peer, its validators for the next conditional GET, and how the last attempt
-- went. One row per (peer, file); a failed fetch keeps the last good copy.
CREATE TABLE peer_files (
    peer           TEXT    NOT NULL,
    file           TEXT    NOT NULL CHECK (file IN ('mlist2.txt', 'rlist2.txt', 'pubring.mix')),
    -- The last good copy (NULL until one came) and when it came.
    body           TEXT,
    fetched_at     INTEGER,
    etag           TEXT,
    last_modified  TEXT,
    -- The last attempt, and its error if it failed (a refused file says why, with its line).
    attempted_at   INTEGER NOT NULL,
    error          TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (peer, file)
);
