-- The statistics read every ping of the 12-day window at each build. This index covers that
-- query (send time first, then every column it reads), so SQLite reads the window from the
-- index alone instead of looking up each of tens of thousands of rows in the table.
CREATE INDEX pings_window
    ON pings (sent_at, remailer2_id, remailer1_id, type1, key1_id, outcome, returned_at,
              chain_type)
    WHERE sent_at IS NOT NULL;
