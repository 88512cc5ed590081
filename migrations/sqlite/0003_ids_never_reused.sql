-- Ids are never reused. Without AUTOINCREMENT SQLite hands out max(id) + 1,
-- so deleting the newest topic let the next one take its id (and the audit
-- log named two topics by one id). Tables with their own ids are rebuilt
-- with AUTOINCREMENT the way SQLite documents. Foreign keys are off while
-- migrations run (see `Store::migrate`): with them on, dropping a table
-- would cascade into its children.
--
-- Tags are also deleted softly from now on: a deleted tag keeps its row
-- (and so its notifications in every inbox) with `deleted_at` set, and its
-- name is free again (unique among live tags only).
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    read_watermark BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
INSERT INTO users_new SELECT id, username, password_hash, is_admin, read_watermark, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE channels_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('topic', 'direct')),
    name TEXT UNIQUE,
    direct_key TEXT UNIQUE,
    private INTEGER NOT NULL DEFAULT 0,
    owner_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
INSERT INTO channels_new SELECT id, kind, name, direct_key, private, owner_id, last_seq, created_at FROM channels;
DROP TABLE channels;
ALTER TABLE channels_new RENAME TO channels;

CREATE TABLE messages_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (channel_id, seq)
);
INSERT INTO messages_new SELECT id, channel_id, seq, sender_id, content, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;

CREATE TABLE tags_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
INSERT INTO tags_new SELECT id, name, last_seq, created_at, NULL FROM tags;
DROP TABLE tags;
ALTER TABLE tags_new RENAME TO tags;
CREATE UNIQUE INDEX tags_live_name ON tags (name) WHERE deleted_at IS NULL;

CREATE TABLE subscriptions_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    start_seq BIGINT NOT NULL,
    end_seq BIGINT,
    delivered_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO subscriptions_new SELECT id, user_id, tag_id, start_seq, end_seq, delivered_seq, created_at FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_new RENAME TO subscriptions;
CREATE UNIQUE INDEX subscriptions_active ON subscriptions (user_id, tag_id) WHERE end_seq IS NULL;
CREATE INDEX subscriptions_by_tag ON subscriptions (tag_id);
CREATE INDEX subscriptions_by_user ON subscriptions (user_id);

CREATE TABLE audit_log_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    actor TEXT,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    action TEXT NOT NULL,
    changes TEXT NOT NULL
);
INSERT INTO audit_log_new SELECT id, created_at, actor, resource, resource_id, action, changes FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_by_resource ON audit_log (resource, id);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
