-- The change log: every committed version of every slot, written by a trigger in the same
-- transaction as the write (commits, clears, restores; not physical purges).
--
-- Sequence values are not assigned in commit order across concurrent transactions, so a
-- reader of `seq > cursor` could skip a row that commits late. The trigger therefore takes a
-- transaction-scoped advisory lock before taking its sequence numbers: writers hold it from
-- their log rows to COMMIT, one at a time, so sequence order is commit order. (It fires at
-- the end of the write statement, when a transaction waits for nothing but its COMMIT.)
CREATE TABLE changes (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT COLLATE "C" NOT NULL,
    scope_id   TEXT COLLATE "C" NOT NULL,
    scope_sub  TEXT COLLATE "C" NOT NULL,
    namespace  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    value      TEXT,
    at         BIGINT NOT NULL
);

CREATE INDEX changes_slot ON changes (kind, scope_id, scope_sub, namespace, key, seq);
CREATE INDEX changes_at ON changes (at);

CREATE FUNCTION log_slot_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('state-postgres:changes:' || TG_TABLE_SCHEMA, 0));
    INSERT INTO changes (kind, scope_id, scope_sub, namespace, key, version, value, at)
    VALUES (NEW.kind, NEW.scope_id, NEW.scope_sub, NEW.namespace, NEW.key, NEW.version,
            NEW.value, NEW.updated_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER slots_log AFTER INSERT OR UPDATE ON slots
FOR EACH ROW EXECUTE FUNCTION log_slot_change();
