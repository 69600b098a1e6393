-- The one-call commit becomes ONE statement in autocommit (an implicit transaction): each
-- statement of a multi-statement string costs sqlx a message from its worker thread, and a
-- message that finds the caller parked costs a thread wake-up. The statement carries, in
-- `stale`, how many of the slots it relies on no longer hold what the committer assumed; the
-- trigger refuses the first row of a stale commit, which aborts the whole statement (nothing
-- is written) with the message below, and the committer reads the slots and tries again.
DROP TRIGGER commit_rows_insert;
DROP VIEW commit_rows;

CREATE VIEW commit_rows AS
    SELECT kind, scope_id, scope_sub, namespace, key, version, value, updated_at, expires_at,
           0 AS last, 0 AS stale
    FROM slots WHERE 0;

CREATE TRIGGER commit_rows_insert INSTEAD OF INSERT ON commit_rows
BEGIN
    SELECT RAISE(ABORT, 'state-sqlite: stale commit') WHERE NEW.stale;
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
