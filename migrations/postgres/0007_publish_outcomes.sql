-- What each group commit stored, by a token the writer picks, so a writer
-- whose connection failed after sending a commit can learn whether it
-- landed instead of guessing. A row with no outcome is a commit that
-- never landed: the writer claimed its token, so it never can. Rows are
-- needed for seconds; the pruner removes those older than ten minutes (a
-- scan a minute, cheaper than an index that every commit would update).
CREATE TABLE publish_outcomes (
    token BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    outcome TEXT
);
