-- The change log is written by the store itself from now on, one row per version a commit
-- made: several callers' batches merged into one transaction (group commit) each leave their
-- own versions, where a row trigger on `slots` saw only the transaction's last one.
DROP TRIGGER slots_log_insert;
DROP TRIGGER slots_log_update;

-- What a commit writes, one row per version it made, in commit order: every row is logged;
-- a row flagged `last` (its slot's final version in the transaction) is also stored in
-- `slots`. The store inserts into this view in ONE statement per commit; the trigger does
-- the rest inside SQLite (one more statement would cost a thread hand-off in sqlx).
CREATE VIEW commit_rows AS
    SELECT kind, scope_id, scope_sub, namespace, key, version, value, updated_at, expires_at,
           0 AS last
    FROM slots WHERE 0;

CREATE TRIGGER commit_rows_insert INSTEAD OF INSERT ON commit_rows
BEGIN
    INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.updated_at);
    INSERT INTO slots (kind, scope_id, scope_sub, namespace, key, version, value, updated_at,
                       expires_at)
    SELECT NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
           NEW.value, NEW.updated_at, NEW.expires_at
    WHERE NEW.last
    ON CONFLICT (kind, scope_id, scope_sub, namespace, key) DO UPDATE SET
        version = excluded.version, value = excluded.value,
        updated_at = excluded.updated_at, expires_at = excluded.expires_at;
END;

-- Retention deletes from the oldest change up to the first one inside the retention window
-- (`seq` order is commit order, and times rise with it but for clock steps: a step back keeps
-- a few changes longer, never deletes one too early). An index on `at` cost every logged
-- version an index insert.
DROP INDEX changes_at;
