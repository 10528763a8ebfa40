-- Self-checks the MTA refuses. A permanent refusal is final: the check is abandoned and
-- reported once, instead of being retried (and logged) at every pass of the sender. A
-- temporary one is retried after a growing wait.
ALTER TABLE self_checks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE self_checks ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE self_checks ADD COLUMN abandoned_at INTEGER;

-- Quarantined mail keeps its raw bytes for `[mailbox] quarantine_days`; after that only the
-- verdict remains. The pruning looks up old rows that still hold bytes.
CREATE INDEX mails_with_raw ON mails (processed_at) WHERE raw IS NOT NULL;
