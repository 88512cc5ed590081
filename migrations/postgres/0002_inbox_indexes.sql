-- A user's subscriptions, ended ones included (their notifications stay in
-- the inbox), without scanning everyone's.
CREATE INDEX subscriptions_by_user ON subscriptions (user_id);
