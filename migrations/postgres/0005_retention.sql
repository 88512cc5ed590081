-- Retention: how long a channel keeps its messages.
--
-- `retain_age_secs` and `retain_count` are a topic's own limits; NULL
-- falls back to the server's default. Messages with `seq <= pruned_seq`
-- are gone for good (or about to be: the pruner raises the mark first and
-- deletes after, so a reader that checks the mark never mistakes a pruned
-- range for a gap). `seq` keeps counting from `last_seq`, never from what
-- is left.
ALTER TABLE channels ADD COLUMN pruned_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN retain_age_secs BIGINT;
ALTER TABLE channels ADD COLUMN retain_count BIGINT;
