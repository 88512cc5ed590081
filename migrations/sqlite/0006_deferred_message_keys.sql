-- A message's foreign keys are checked at commit, not row by row.
--
-- A multi-row INSERT checked against immediate foreign keys may fail
-- halfway, so SQLite keeps a statement journal to undo just that
-- statement: every page the insert touches is copied there first. The
-- group commit never needs half a statement undone (a refused batch is
-- rolled back whole, then stored one publish at a time), so its
-- statements say `OR ROLLBACK` and these keys are checked at `COMMIT`.
-- Cascading deletes are unchanged.
--
-- The table is rebuilt the way SQLite documents (foreign keys are off
-- while migrations run). Its AUTOINCREMENT counter is carried over, so
-- the ids of messages already pruned are never handed out again.
CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (channel_id, seq)
);
INSERT INTO messages_new SELECT id, channel_id, seq, sender_id, content, created_at FROM messages;
DELETE FROM sqlite_sequence WHERE name = 'messages_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages_new', seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
