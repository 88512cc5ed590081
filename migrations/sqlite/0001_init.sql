-- Tidings schema (SQLite). Mirrors migrations/postgres/0001_init.sql.
-- Times are Unix epoch milliseconds (UTC); flags are 0/1 integers, which
-- read the same through sqlx's Any driver on both backends.

-- Usernames and topic names share one namespace; this table enforces it.
CREATE TABLE names (
    name TEXT PRIMARY KEY
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    -- Notifications with an id at or below this mark count as read unless
    -- inbox_state says otherwise: "read all" is one write, not one per item.
    read_watermark BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- A channel is a topic or a direct conversation; both carry a gap-free seq.
CREATE TABLE channels (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('topic', 'direct')),
    name TEXT UNIQUE,
    direct_key TEXT UNIQUE,
    private INTEGER NOT NULL DEFAULT 0,
    owner_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Durable membership plus how far the gateway has delivered to that member.
CREATE TABLE memberships (
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at BIGINT NOT NULL,
    delivered_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (channel_id, seq)
);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- A subscription covers the tag's notifications with start_seq < seq and,
-- once ended, seq <= end_seq: the inbox is derived, never fanned out.
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    start_seq BIGINT NOT NULL,
    end_seq BIGINT,
    delivered_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX subscriptions_active ON subscriptions (user_id, tag_id) WHERE end_seq IS NULL;
CREATE INDEX subscriptions_by_tag ON subscriptions (tag_id);

CREATE TABLE notifications (
    id BIGINT PRIMARY KEY,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tag_id, seq)
);

-- Sparse per-user inbox state: a row exists only once a user changed an item.
CREATE TABLE inbox_state (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    is_read INTEGER,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, notification_id)
);

-- Serializes notification ids so they are handed out in commit order.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('notifications', 0);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    created_at BIGINT NOT NULL,
    actor TEXT,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    action TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX audit_by_resource ON audit_log (resource, id);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
