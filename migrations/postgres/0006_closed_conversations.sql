-- A direct conversation one of whose users was deleted takes no more
-- messages; what it holds stays. Deleting a user closes their
-- conversations from now on, and this closes those of users deleted
-- before (their memberships went with them). The group commit reads the
-- mark on the row it updates anyway, so a publish pays no lookup for it.
ALTER TABLE channels ADD COLUMN closed INTEGER NOT NULL DEFAULT 0;
UPDATE channels SET closed = 1
WHERE kind = 'direct'
  AND (SELECT COUNT(*) FROM memberships m WHERE m.channel_id = channels.id) < 2;
