-- Tags are deleted softly: a deleted tag keeps its row (and so its
-- notifications in every inbox) with `deleted_at` set, and its name is
-- free again (unique among live tags only). PostgreSQL never reuses ids,
-- so unlike SQLite nothing else changes here.
ALTER TABLE tags ADD COLUMN deleted_at BIGINT;
ALTER TABLE tags DROP CONSTRAINT tags_name_key;
CREATE UNIQUE INDEX tags_live_name ON tags (name) WHERE deleted_at IS NULL;
