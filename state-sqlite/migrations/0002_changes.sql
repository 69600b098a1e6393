-- The change log: every committed version of every slot, written by triggers in the same
-- transaction as the write (commits, clears, restores; not physical purges). `seq` rises in
-- commit order: SQLite has one writer at a time.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    scope_id   TEXT    NOT NULL,
    scope_sub  TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    value      TEXT,
    at         INTEGER NOT NULL
);

-- A slot's history, newest first.
CREATE INDEX changes_slot ON changes (kind, scope_id, scope_sub, namespace, key, seq);
-- Retention deletes by age.
CREATE INDEX changes_at ON changes (at);

CREATE TRIGGER slots_log_insert AFTER INSERT ON slots
BEGIN
    INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.updated_at);
END;

-- Only a new version is a change (a padded multi-row upsert rewrites the same row).
CREATE TRIGGER slots_log_update AFTER UPDATE ON slots WHEN NEW.version <> OLD.version
BEGIN
    INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.updated_at);
END;
