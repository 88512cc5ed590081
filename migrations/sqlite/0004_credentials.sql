-- Credentials that can be taken back.
--
-- `token_generation` is stamped into every token a user is issued; bumping
-- it (password change, disable) ends every token issued before. A deleted
-- user keeps the row (their messages stay, and the name stays taken) with
-- `deleted_at` set and `is_active` off. A revoked refresh token's id stays
-- in `revoked_tokens` until it would have expired anyway; access tokens
-- minted from it carry that id too. API keys are stored as a SHA-256 of
-- the key, which is random and long enough that a slow hash adds nothing.
ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id);
