-- When a ping was known to have failed: the delivery time of the bounce or the altered copy
-- that showed it. The `methodology` model counts such a ping as a settled failure from that
-- moment on (issue 13), instead of as one still in flight.
ALTER TABLE pings ADD COLUMN failed_at INTEGER;
UPDATE pings
   SET failed_at = (SELECT MIN(COALESCE(m.delivered_at, m.processed_at)) FROM mails m
                     WHERE m.ping_id = pings.id AND m.kind IN ('bounced', 'corrupted'))
 WHERE outcome IN ('bounced', 'corrupted');

-- The build's covering index, now with the failure time.
DROP INDEX pings_window;
CREATE INDEX pings_window
    ON pings (sent_at, remailer2_id, remailer1_id, type1, key1_id, outcome, returned_at,
              failed_at, chain_type)
    WHERE sent_at IS NOT NULL;
